"""The nodewall TUI.  `run()` is what `nodewall tui` calls (after entering --netns);
`make_app()` builds the app for tests with an injected service factory.

All engine work runs in thread workers (EngineClient serializes the calls) and
comes back as messages; the UI thread never calls the Service."""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from .client import EngineClient
from .files import Buffer
from .guard import Guard, mutating
from .live import LiveState
from .messages import (
    Applied,
    Commanded,
    Connected,
    Decided,
    EngineFailed,
    SampleArrived,
    StatusArrived,
)
from .palette import palette_commands
from .screens.apply import ApplyScreen
from .screens.base import NwScreen
from .screens.conntrack import ConntrackScreen
from .screens.dashboard import DashboardScreen
from .screens.dialogs import ExplainDialog, HelpScreen, HistoryDialog, QuitDialog, YesNo
from .screens.profiles import ProfilesScreen
from .screens.rules import RulesScreen
from .status_text import drift_text, help_text, quit_reasons, state_parts

MIN_INTERVAL, MAX_INTERVAL = 0.25, 60.0
SAMPLE_EVERY = 5.0  # seconds between conntrack samples (on the conntrack screen only)
def render_error(exc: BaseException) -> str:
    render = getattr(exc, "render", None)
    return render() if callable(render) else f"{type(exc).__name__}: {exc}"


class NodewallApp(App):
    CSS_PATH = "nodewall.tcss"
    TITLE = "nodewall"
    MODES: ClassVar[dict] = {"dashboard": DashboardScreen, "rules": RulesScreen,
             "conntrack": ConntrackScreen, "profiles": ProfilesScreen, "apply": ApplyScreen}
    DEFAULT_MODE = "dashboard"
    BINDINGS: ClassVar[list] = [
        *(Binding(str(i), f"switch_mode('{m}')", m.title(), show=False)
          for i, m in enumerate(MODES, start=1)),
        Binding("q", "quit_app", "Quit"),
        Binding("ctrl+q", "quit_app", "Quit", show=False, priority=True),  # not past the checks
        Binding("question_mark", "help", "Help"),
        Binding("p", "pause", "Pause", show=False),
        Binding("plus", "faster", "Faster", show=False),
        Binding("minus", "slower", "Slower", show=False),
        Binding("K", "ask_keep", "Keep"),
        Binding("R", "ask_revert", "Revert"),
        Binding("D", "show_drift", "Drift", show=False),
    ]

    def __init__(self, service_factory: Callable[[], Any], profiles: Iterable[Path] = (), *,
                 interval: float = 1.0, readonly: bool = False, confirm_timeout: float = 30.0,
                 clock: Callable[[], float] = time.time, sample_every: float = SAMPLE_EVERY):
        # NO_COLOR: Textual's default turns colours into greys (still colour codes);
        # with ansi_color it strips them instead and the terminal's own colours stay.
        # Selection and cursors then show as reverse video (nodewall.tcss, :nocolor).
        super().__init__(ansi_color=True if os.environ.get("NO_COLOR") is not None else None)
        self.guard = Guard(readonly, "--readonly" if readonly else "")
        self.client = EngineClient(service_factory, self.guard)
        self.client_ready = False
        self.profiles = [Path(p) for p in profiles]
        self.buffers: dict[Path, Buffer] = {p: Buffer.load(p) for p in self.profiles}
        self.interval = min(MAX_INTERVAL, max(MIN_INTERVAL, interval))
        self.confirm_timeout = confirm_timeout
        self.clock = clock
        self.sample_every = sample_every
        self.state = LiveState()
        self.sample = None
        self.sample_error = ""
        self.paused = False
        self.pending = None  # PendingConfirm while an apply waits for keep/revert
        self.outcome = ""  # what became of the last apply ("kept ...", "reverted ...")
        self.error = ""  # the last failed status/connect call
        self.skipped_ticks = 0
        self._status_busy = self._sample_busy = self._connecting = self._deciding = False
        self._sample_at: float | None = None
        self._mut_seq = 0
        self._timer = None
        self.screens_by_mode: dict[str, NwScreen] = {}

    # -- lifecycle -------------------------------------------------------------------------
    def on_mount(self) -> None:
        self._timer = self.set_interval(self.interval, self.tick)
        self.set_interval(1.0, self.second)
        self.tick()

    def tick(self) -> None:
        """One refresh: at most one status call in flight; a busy tick is skipped."""
        if not self.client_ready:
            if not self._connecting:
                self._connecting = True
                self._connect()
            return
        if self.paused:
            return
        self.request_status()

    def request_status(self) -> bool:
        if self._status_busy or not self.client_ready:
            self.skipped_ticks += 1
            return False
        self._status_busy = True
        self._fetch_status()
        return True

    def second(self) -> None:
        """Once a second: countdown, overdue reverts, the conntrack sample cadence."""
        if self.pending is not None and self.clock() >= self.pending.deadline:
            self.request_status()  # show the watcher's revert as soon as it happens
        if (isinstance(self.screen, ConntrackScreen) and not self.paused
                and (self._sample_at is None
                     or self.clock() - self._sample_at >= self.sample_every)):
            self.request_sample()
        self.update_bars()

    def request_sample(self) -> None:
        if self._sample_busy or not self.client_ready:
            return
        self._sample_busy = True
        self._sample_at = self.clock()
        self._fetch_sample()

    # -- workers (thread) ------------------------------------------------------------------
    @work(thread=True, group="connect", exit_on_error=False)
    def _connect(self) -> None:
        try:
            self.post_message(Connected(self.client.connect()))
        except Exception as exc:  # noqa: BLE001 - shown to the operator, retried next tick
            self.post_message(EngineFailed("connect", render_error(exc)))

    @work(thread=True, group="status", exit_on_error=False)
    def _fetch_status(self) -> None:
        try:
            seq, report = self.client.status()
            self.post_message(StatusArrived(report, self.clock(), seq))
        except Exception as exc:  # noqa: BLE001
            self.post_message(EngineFailed("status", render_error(exc)))

    @work(thread=True, group="sample", exit_on_error=False)
    def _fetch_sample(self) -> None:
        try:
            self.post_message(SampleArrived(self.client.conntrack_sample()))
        except Exception as exc:  # noqa: BLE001
            self.post_message(EngineFailed("conntrack sample", render_error(exc)))

    @work(thread=True, group="apply", exit_on_error=False)
    def _apply(self, paths: list[Path], timeout: float | None) -> None:
        try:
            seq, result = self.client.apply(paths, timeout)
            self.post_message(Applied(result, seq))
        except Exception as exc:  # noqa: BLE001
            self.post_message(EngineFailed("apply", render_error(exc)))

    @work(thread=True, group="decide", exit_on_error=False)
    def _decide(self, keep: bool, generation: int | None) -> None:
        try:
            seq = self.client.confirm() if keep else self.client.rollback(generation)
            self.post_message(Decided(keep, seq))
        except Exception as exc:  # noqa: BLE001
            self.post_message(EngineFailed("keep" if keep else "revert", render_error(exc)))

    @work(thread=True, group="command", exit_on_error=False)
    def _command(self, what: str, call: Callable[[], tuple[int, Any]]) -> None:
        try:
            seq, answer = call()
            self.post_message(Commanded(what, "" if answer is None else str(answer), seq))
        except Exception as exc:  # noqa: BLE001
            self.post_message(EngineFailed(what, render_error(exc)))

    # -- results (UI thread) -----------------------------------------------------------------
    def on_connected(self, msg: Connected) -> None:
        self._connecting = False
        self.client_ready = True
        self.error = ""
        if not msg.is_root:
            self.guard.make_readonly("not root: showing what can be read")
            self.readonly_changed()
        self.request_status()

    def on_status_arrived(self, msg: StatusArrived) -> None:
        self._status_busy = False
        self.error = ""
        self.state.update(msg.report, msg.received)
        if msg.seq > self._mut_seq:
            self._reconcile_pending(msg.report)
        if isinstance(self.screen, NwScreen):
            self.screen.show(self.state)
        self.update_bars()

    def _reconcile_pending(self, report) -> None:
        """The report is newer than our last keep/revert/apply: it is the truth."""
        mine, now = self.pending, report.pending_confirm
        if mine is not None and now is None:
            if report.generation == mine.generation:
                self.outcome = f"generation {mine.generation} kept"
            else:
                why = "confirm timeout" if self.clock() >= mine.deadline else "rolled back"
                self.outcome = (f"reverted to generation {report.generation} ({why})")
                self.notify(f"changes {self.outcome}", severity="warning", timeout=10)
        self.pending = now
        if (mine is None) != (now is None):
            self.refresh_bindings()

    def on_sample_arrived(self, msg: SampleArrived) -> None:
        self._sample_busy = False
        self.sample = msg.sample
        if isinstance(self.screen, ConntrackScreen):
            self.screen.show_sample(msg.sample)

    def on_engine_failed(self, msg: EngineFailed) -> None:
        if msg.what == "connect":
            self._connecting = False
            self.error = f"cannot start the engine: {msg.text}"
        elif msg.what == "status":
            self._status_busy = False
            self.error = f"status: {msg.text}"
        elif msg.what == "conntrack sample":
            self._sample_busy = False
            self.sample_error = msg.text
        else:
            self._deciding = False
            self.notify(f"{msg.what} failed: {msg.text}", severity="error", timeout=15)
            screen = self.screens_by_mode.get("apply")
            if screen is not None and msg.what == "apply":
                screen.show_result(f"apply failed: {msg.text}")
        self.update_bars()

    def on_applied(self, msg: Applied) -> None:
        r = msg.result
        self._mut_seq = max(self._mut_seq, msg.seq)
        self.pending = r.pending_confirm
        self.outcome = (f"applied generation {r.generation} in {r.duration_s:.2f}s"
                        if r.changed else f"nothing changed (generation {r.generation})")
        screen = self.screens_by_mode.get("apply")
        if screen is not None:
            warn = "".join(f"\nwarning: {w}" for w in r.warnings)
            screen.show_result(self.outcome + warn)
        self.refresh_bindings()
        self.update_bars()
        self.request_status()

    def on_commanded(self, msg: Commanded) -> None:
        self._deciding = False
        self._mut_seq = max(self._mut_seq, msg.seq)
        self.outcome = f"{msg.what}: done"
        self.notify(f"{msg.what}: done", timeout=8)
        self.update_bars()
        self.request_status()

    def on_decided(self, msg: Decided) -> None:
        self._deciding = False
        self._mut_seq = max(self._mut_seq, msg.seq)
        gen = self.pending.generation if self.pending else "?"
        self.outcome = f"generation {gen} kept" if msg.kept else "changes reverted (R)"
        self.pending = None
        self.refresh_bindings()
        self.update_bars()
        self.request_status()

    # -- screens -----------------------------------------------------------------------------
    def register_screen(self, screen: NwScreen) -> None:
        self.screens_by_mode[screen.MODE] = screen

    def screen_resumed(self, screen: NwScreen) -> None:
        screen.show(self.state)
        self.update_bars(screen)
        if isinstance(screen, ConntrackScreen) and self.sample is None:
            self.request_sample()

    def update_bars(self, screen: Screen | None = None) -> None:
        screen = screen or self.screen
        if isinstance(screen, NwScreen) and screen.is_mounted:
            screen.update_bars(self.interval, self.paused, state_parts(self))

    def readonly_changed(self) -> None:
        prof = self.screens_by_mode.get("profiles")
        if prof is not None:
            prof.readonly_changed()
        self.refresh_bindings()
        self.update_bars()

    def buffer_for(self, path: Path) -> Buffer:
        for key, buf in self.buffers.items():
            if key == path or key.resolve() == Path(path).resolve():
                return buf
        buf = self.buffers[Path(path)] = Buffer.load(Path(path))
        return buf

    def open_rule_source(self, rule) -> None:
        from .fmt import parse_loc
        loc = parse_loc(rule.loc) if rule.loc else None
        if loc is None:
            self.notify(f"rule {rule.id} has no source location", severity="warning")
            return
        self.run_worker(self._open_source(*loc), group="open-source")

    async def _open_source(self, file: str, line: int, col: int) -> None:
        await self.switch_mode("profiles")
        self.screens_by_mode["profiles"].open_at(Path(file), line, col)

    def render_error(self, exc: BaseException) -> str:
        return render_error(exc)

    # -- actions -----------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action in ("keep", "revert", "ask_keep", "ask_revert") and self.pending is None:
            return False
        return self.guard.check_action(action)

    def start_apply(self) -> None:
        if self.guard.permit("apply", self.notify):
            self._apply(list(self.profiles), self.confirm_timeout)

    @mutating
    def action_ask_keep(self) -> None:
        if self.pending is None:
            return
        gen = self.pending.generation
        self.push_screen(YesNo(f"Keep generation {gen}?\nThe changes stay; the countdown "
                               "stops."), lambda yes: self.action_keep() if yes else None)

    @mutating
    def action_ask_revert(self) -> None:
        if self.pending is None:
            return
        gen = self.pending.generation
        self.push_screen(YesNo(f"Revert generation {gen} now?\nThe rules before the apply "
                               "come back."), lambda yes: self.action_revert() if yes else None)

    @mutating
    def action_keep(self) -> None:
        if self.pending is None or self._deciding:
            return
        self._deciding = True
        self._decide(True, self.pending.generation)

    @mutating
    def action_revert(self) -> None:
        if self.pending is None or self._deciding:
            return
        self._deciding = True
        self._decide(False, self.pending.generation)

    @mutating
    def action_ask_panic(self, on: bool) -> None:
        text = ("Panic ON?\nOnly failsafe traffic passes until panic is turned off." if on
                else "Panic OFF?\nThe current generation's rules come back.")
        what = "panic on" if on else "panic off"
        self.push_screen(YesNo(text), lambda yes: self.start_command(
            what, lambda: self.client.set_panic(on)) if yes else None)

    @mutating
    def action_ask_rollback(self) -> None:
        if self.pending is not None:
            self.action_ask_revert()
            return
        gen = self.state.report.generation if self.state.report else None
        self.push_screen(YesNo(f"Roll back generation {gen}?\nThe generation before it "
                               "comes back."),
                         lambda yes: self.start_command(
                             "rollback", self.client.rollback_generation) if yes else None)

    def start_command(self, what: str, call: Callable[[], tuple[int, Any]]) -> None:
        if self._deciding or not self.guard.permit(what.split()[0], self.notify):
            return
        self._deciding = True
        self._command(what, call)

    def action_explain(self) -> None:
        self.push_screen(ExplainDialog())

    def action_history(self) -> None:
        self.push_screen(HistoryDialog())

    def action_show_drift(self) -> None:
        if self.state.report is not None:
            self.push_screen(HelpScreen(drift_text(self.state.report)))

    def action_pause(self) -> None:
        self.paused = not self.paused
        self.update_bars()

    def set_interval_seconds(self, seconds: float) -> None:
        self.interval = min(MAX_INTERVAL, max(MIN_INTERVAL, seconds))
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_interval(self.interval, self.tick)
        self.update_bars()

    def action_faster(self) -> None:
        self.set_interval_seconds(self.interval / 2)

    def action_slower(self) -> None:
        self.set_interval_seconds(self.interval * 2)

    def action_help(self) -> None:
        self.push_screen(HelpScreen(help_text(self.screen)))

    def action_quit_app(self) -> None:
        reasons = quit_reasons(self)
        if not reasons:
            self.exit(0)
            return
        self.push_screen(QuitDialog("\n".join(reasons) + "\n\nQuit anyway?"),
                         lambda yes: self.exit(0) if yes else None)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield from palette_commands(self)

    async def open_apply_screen(self, action: str) -> None:
        await self.switch_mode("apply")
        await self.screens_by_mode["apply"].run_action(action)


def make_app(service_factory: Callable[[], Any], profiles: Iterable[Path] = (), *,
             interval: float = 1.0, readonly: bool = False, **kwargs) -> NodewallApp:
    return NodewallApp(service_factory, profiles, interval=interval, readonly=readonly, **kwargs)


def run(service_factory: Callable[[], Any], profiles: list[Path], *, interval: float,
        readonly: bool, confirm_timeout: float = 30.0) -> int:
    app = make_app(service_factory, profiles, interval=interval, readonly=readonly,
                   confirm_timeout=confirm_timeout)
    code = app.run()
    return int(code or 0)
