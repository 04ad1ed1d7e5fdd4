"""Modal dialogs: apply confirmation, quit with pending changes, help, a save that
found the file changed on disk, explain a packet, the generation history."""
from __future__ import annotations

from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from ..fmt import preview_summary
from ..messages import TextReady


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


DIRECTIONS = ("ingress", "egress", "forward")


def explain_args(text: str) -> dict:
    """`SRC DST[:PORT][/PROTO] [IF] [ingress|egress|forward [OUT-IF]]` -> explain's
    arguments (ValueError: what is missing)."""
    words = text.split()
    if len(words) < 2:
        raise ValueError("write SRC DST[:PORT][/PROTO] [IF] [ingress|egress|forward [OUT-IF]]")
    args = {"src": words[0], "dst": words[1], "iface": None, "direction": "ingress",
            "out_iface": None}
    rest = words[2:]
    if rest and rest[0] not in DIRECTIONS:
        args["iface"] = rest.pop(0)
    if rest:
        args["direction"] = rest.pop(0)
        if args["direction"] not in DIRECTIONS:
            raise ValueError(f"{args['direction']!r}: ingress, egress or forward")
    if rest and args["direction"] == "forward":
        args["out_iface"] = rest.pop(0)
    if rest:
        raise ValueError(f"left over: {' '.join(rest)}")
    return args


class EngineTextDialog(ModalScreen[None]):
    """Lines the engine answers, read in a worker, in a scrolling box."""
    BINDINGS: ClassVar[list] = [Binding("escape", "close", "Close")]
    TITLE_TEXT = ""

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="engine-text"):
            yield Static(self.TITLE_TEXT, markup=False)
            yield from self.compose_inputs()
            with VerticalScroll(id="engine-text-body"):
                yield Static("", id="engine-text-lines", markup=False)
            yield Static("escape closes; up / down / pgup / pgdn scroll",
                         classes="dialog-keys", markup=False)

    def compose_inputs(self) -> ComposeResult:
        return iter(())

    def on_text_ready(self, msg: TextReady) -> None:
        self.show_lines(msg.lines)

    def show_lines(self, lines: list[str]) -> None:
        self.query_one("#engine-text-lines", Static).update("\n".join(lines))

    def action_close(self) -> None:
        self.dismiss(None)


class HistoryDialog(EngineTextDialog):
    TITLE_TEXT = "Generations (nodewall history; rollback --to N from the CLI)"

    def on_mount(self) -> None:
        self.show_lines(["(reading...)"])
        self.query_one("#engine-text-body").focus()
        self._read()

    @work(thread=True, exit_on_error=False)
    def _read(self) -> None:
        try:
            lines = self.app.client.history_lines()
        except Exception as exc:  # noqa: BLE001 - shown to the operator
            lines = [f"(unreadable: {self.app.render_error(exc)})"]
        self.post_message(TextReady(lines))


class ExplainDialog(EngineTextDialog):
    """nodewall explain in the TUI: the packet as one line, the path below it."""
    TITLE_TEXT = ("Explain a packet: SRC DST[:PORT][/PROTO] [IF] [ingress|egress|forward "
                  "[OUT-IF]]\ne.g. 203.0.113.7 10.0.0.1:22/tcp eth0   (10.0.0.1/icmp: a ping)")

    def compose_inputs(self) -> ComposeResult:
        yield Input(placeholder="203.0.113.7 10.0.0.1:22/tcp eth0", id="explain-packet",
                    compact=True)

    def on_mount(self) -> None:
        self._request = 0  # the packet submitted last: an earlier answer is dropped
        self.query_one("#explain-packet", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._request += 1
        try:
            args = explain_args(event.value)
        except ValueError as exc:
            self.show_lines([str(exc)])
            return
        self.show_lines(["(walking the rules...)"])
        self._explain(args, self._request)

    def on_text_ready(self, msg: TextReady) -> None:
        if msg.request != self._request:  # Textual calls the base dialog's handler next
            msg.prevent_default()

    @work(thread=True, exclusive=True, exit_on_error=False)
    def _explain(self, args: dict, request: int) -> None:
        try:
            e = self.app.client.explain(args["src"], args["dst"], iface=args["iface"],
                                        direction=args["direction"],
                                        out_iface=args["out_iface"])
            lines = e.text_lines(verdict_first=True)
        except Exception as exc:  # noqa: BLE001 - the engine's message, as the CLI says it
            lines = [self.app.render_error(exc)]
        self.post_message(TextReady(lines, request))
