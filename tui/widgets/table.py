"""A DataTable that also moves with j / k (and g / G), as k9s and vi users expect."""
from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding
from textual.widgets import DataTable


class NwTable(DataTable):
    BINDINGS: ClassVar[list] = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g", "scroll_top", "Top", show=False),
        Binding("G", "scroll_bottom", "Bottom", show=False),
    ]
