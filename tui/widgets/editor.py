"""The TOML editor.  It starts in view mode: keys are not text there, so the screen
keys (1-5), `?` and the app's keys work while it has the focus.  enter starts
editing (keys are text), escape stops it.  Read-only (--readonly, not root) never
edits."""
from __future__ import annotations

from textual import events
from textual.message import Message
from textual.widgets import TextArea


class TomlEditor(TextArea):
    class ModeChanged(Message):
        def __init__(self, editing: bool):
            super().__init__()
            self.editing = editing

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.read_only = True
        self.may_edit = True  # False under the read-only guard
        self.editing = False

    def set_editing(self, on: bool) -> None:
        on = on and self.may_edit
        changed = on != self.editing
        self.editing = on
        self.read_only = not on
        if changed:
            self.post_message(self.ModeChanged(on))

    def set_may_edit(self, may: bool) -> None:
        self.may_edit = may
        if not may:
            self.set_editing(False)

    async def _on_key(self, event: events.Key) -> None:
        if self.editing and event.key == "escape":
            event.stop()
            event.prevent_default()
            self.set_editing(False)
            return
        if not self.editing and event.key == "enter" and self.may_edit:
            event.stop()
            event.prevent_default()
            self.set_editing(True)
            return
        # view mode: TextArea's own handler (next in the MRO) ignores the key as it is
        # read-only, so it goes on to the screen's and the app's bindings; editing: it
        # inserts the text
