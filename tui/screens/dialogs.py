"""Modal dialogs: apply confirmation, quit with pending changes, help."""
from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from ..fmt import preview_summary


class YesNo(ModalScreen[bool]):
    BINDINGS: ClassVar[list] = [Binding("y,enter", "answer(True)", "Yes"),
                Binding("n,escape", "answer(False)", "No")]

    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.text, markup=False)
            yield Static("[y]es / [n]o", classes="dialog-keys", markup=False)

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class ApplyDialog(YesNo):
    def __init__(self, preview, timeout: float):
        what = "nothing changes (re-apply)" if preview.empty else preview_summary(preview)
        super().__init__(f"Apply these profiles?\n{what}\n\nUnless you keep them (K) within "
                         f"{timeout:g}s, the changes are reverted.")


class QuitDialog(YesNo):
    pass


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list] = [Binding("escape,q,question_mark", "close", "Close")]

    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="help"):
            yield Static(self.text, markup=False)
            yield Static("escape closes", classes="dialog-keys", markup=False)

    def action_close(self) -> None:
        self.dismiss(None)
