"""Apply: the diff preview (PlanPreview), then apply with a confirm timeout; the
countdown itself lives in the header bar of every screen (keep: K, revert: R, each
confirmed with y)."""
from __future__ import annotations

from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Log, Static

from ..fmt import preview_summary
from ..guard import mutating
from ..messages import DiffReady, EngineFailed
from .base import NwScreen
from .dialogs import ApplyDialog

TIMEOUTS = (10.0, 30.0, 60.0, 120.0, 300.0)


class ApplyScreen(NwScreen):
    MODE = "apply"
    HELP = ("The plan shows as the screen opens (d: again).  a applies it with a\n"
            "confirm timeout (t changes it): unless kept (K, y) in time, the engine's\n"
            "watcher reverts, also if the TUI or SSH dies.  R, y reverts now.  Apply\n"
            "uses the files on disk: save edits first.")
    BINDINGS: ClassVar[list] = [
        Binding("d", "diff", "Diff"),
        Binding("a", "apply", "Apply"),
        Binding("t", "cycle_timeout", "Timeout"),
    ]

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.preview = None
        self._busy = False
        self._away = True  # not shown since the last visit (a dialog on top does not count)

    def compose_body(self) -> ComposeResult:
        yield Static("", id="apply-files", markup=False)
        yield Static("press d for the plan", id="apply-summary", markup=False)
        yield Log(id="apply-log", auto_scroll=False)
        yield Static("", id="apply-result", markup=False)

    def on_mount(self) -> None:
        self._files()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self._files()
        if self._away:
            self._fresh_start()
        self._away = False

    def on_screen_suspend(self) -> None:
        # switch_mode sets the new mode before this message is handled; a dialog
        # pushed on top leaves the mode as it is
        self._away = self.app.current_mode != self.MODE

    def _fresh_start(self) -> None:
        """Coming back to the screen: last time's messages go, the plan is computed
        again at once (the files or the kernel may have changed meanwhile)."""
        pending = self.app.pending
        self.query_one("#apply-result", Static).update(
            f"generation {pending.generation} waits: K keep / R revert" if pending else "")
        if self.app.profiles and self.app.client_ready:
            self.preview = None
            self.action_diff()

    def _files(self) -> None:
        names = " ".join(str(p) for p in self.app.profiles) or "(no profiles given)"
        dirty = [b.path.name for b in self.app.buffers.values() if b.dirty]
        warn = f"  ! unsaved edits in {', '.join(dirty)}: apply uses the files on disk" \
            if dirty else ""
        self.query_one("#apply-files", Static).update(
            f"profiles: {names}  confirm timeout {self.app.confirm_timeout:g}s{warn}")

    # -- diff -------------------------------------------------------------------------------
    def action_diff(self) -> None:
        if not self.app.profiles:
            self.app.notify("no profiles given", severity="warning")
            return
        if self._busy or not self.app.client_ready:
            return
        self._busy = True
        self.query_one("#apply-summary", Static).update("computing the plan...")
        self._diff(list(self.app.profiles))

    @work(thread=True, group="diff", exit_on_error=False)
    def _diff(self, paths: list) -> None:
        try:
            self.post_message(DiffReady(self.app.client.diff(paths)))
        except Exception as exc:  # noqa: BLE001 - shown to the operator
            self.post_message(EngineFailed("diff", self.app.render_error(exc)))

    def on_diff_ready(self, msg: DiffReady) -> None:
        self._busy = False
        self.show_preview(msg.preview)

    def on_engine_failed(self, msg: EngineFailed) -> None:
        self._busy = False
        self.preview = None
        self.query_one("#apply-summary", Static).update(f"{msg.what} failed")
        log = self.query_one("#apply-log", Log)
        log.clear()
        log.write_lines(msg.text.splitlines())

    def show_preview(self, p) -> None:
        self.preview = p
        summary = "no changes: the kernel already matches" if p.empty else preview_summary(p)
        self.query_one("#apply-summary", Static).update(summary)
        log = self.query_one("#apply-log", Log)
        log.clear()
        lines = list(p.lines)
        # placements read "xdp" / "xdp on eth0" (the real engine) or "raw only: <why>"
        xdp = [rid for rid, where in p.xdp if where.startswith("xdp")]
        if p.xdp:
            lines.append(f"XDP: {len(xdp)} of {len(p.xdp)} untracked rules in XDP")
            lines += [f"  {rid}: {where}" for rid, where in p.xdp if where != "xdp"]
        lines += [f"warning: {w}" for w in p.warnings]
        log.write_lines(lines)
        self._files()

    # -- apply ------------------------------------------------------------------------------
    def action_cycle_timeout(self) -> None:
        now = self.app.confirm_timeout
        bigger = [t for t in TIMEOUTS if t > now]
        self.app.confirm_timeout = bigger[0] if bigger else TIMEOUTS[0]
        self._files()

    @mutating
    def action_apply(self) -> None:
        if self.preview is None:
            self.app.notify("showing the plan first: press a again to apply")
            self.action_diff()
            return
        if self.app.pending is not None:
            self.app.notify("an apply is waiting for keep/revert", severity="warning")
            return

        def decided(yes: bool | None) -> None:
            if yes:
                self.query_one("#apply-result", Static).update("applying...")
                self.app.start_apply()
        self.app.push_screen(ApplyDialog(self.preview, self.app.confirm_timeout), decided)

    def show_result(self, text: str) -> None:
        self.query_one("#apply-result", Static).update(text)
        self.preview = None  # the kernel moved on: a new apply needs a new plan
