"""Modal dialogs: apply confirmation, quit with pending changes, help, a save that
found the file changed on disk."""
from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
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
            with VerticalScroll(id="help-body"):
                yield Static(self.text, markup=False)
            yield Static("escape closes; up / down / pgup / pgdn scroll",
                         classes="dialog-keys", markup=False)

    def on_mount(self) -> None:
        self.query_one("#help-body").focus()  # the arrows scroll a long help

    def action_close(self) -> None:
        self.dismiss(None)


class ConflictDialog(ModalScreen[str | None]):
    """Saving found the file changed on disk since it was opened: the two versions
    as a diff; m merges (both changes; conflicts marked), o overwrites the disk's
    version, r reloads it (your edit is dropped), escape goes back to editing."""
    BINDINGS: ClassVar[list] = [Binding("m", "answer('merge')", "Merge"),
                                Binding("o", "answer('overwrite')", "Overwrite"),
                                Binding("r", "answer('reload')", "Reload"),
                                Binding("escape", "answer(None)", "Back")]

    def __init__(self, name: str, diff: list[str]):
        super().__init__()
        self.file_name = name
        self.diff = diff

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="conflict"):
            yield Static(f"{self.file_name} changed on disk since you opened it.\n"
                         "- lines: on disk only   + lines: yours only", markup=False)
            with VerticalScroll(id="conflict-diff"):
                yield Static("\n".join(self.diff) or "(same text)", markup=False)
            yield Static("[m]erge both  [o]verwrite the disk's  [r]eload the disk's "
                         "(drop yours)  escape: back", classes="dialog-keys", markup=False)

    def action_answer(self, choice: str | None) -> None:
        self.dismiss(choice)
