"""The two header lines on every screen: navigation, refresh state, and the node's
state (namespace, generation, read-only banner, pending-confirm countdown)."""
from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

SCREENS = (("1", "dashboard", "Dash"), ("2", "rules", "Rules"), ("3", "conntrack", "Conntrack"),
           ("4", "profiles", "Profiles"), ("5", "apply", "Apply"))


class NavBar(Static):
    """`nodewall  1 Dash  2 Rules  ...   every 1s` (current screen in reverse)."""

    def __init__(self, current: str, **kwargs):
        super().__init__(**kwargs)
        self.current = current

    def update_nav(self, interval: float, paused: bool) -> None:
        text = Text("nodewall ", style="bold")
        for key, mode, label in SCREENS:
            style = "reverse bold" if mode == self.current else ""
            text.append(f" {key} {label} ", style=style)
        text.append("  " + ("PAUSED" if paused else f"every {interval:g}s"),
                    style="bold" if paused else "")
        self.update(text)


class StateBar(Static):
    """One line of node state; the countdown and warnings win the space."""

    def update_state(self, parts: list[tuple[str, str]]) -> None:
        """parts: (text, class) where class is '' / 'warn' / 'alert'."""
        text = Text()
        for i, (chunk, kind) in enumerate(parts):
            if i:
                text.append(" | ")
            style = {"warn": "bold", "alert": "bold reverse"}.get(kind, "")
            text.append(chunk, style=style)
        self.update(text)
        self.set_class(any(k == "alert" for _, k in parts), "-alert")
