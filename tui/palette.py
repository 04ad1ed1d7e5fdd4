"""The command palette's entries (ctrl+p) beyond Textual's own: screens, refresh,
keep/revert while an apply waits, drift, explain, history, and the commands that
change the kernel (panic, rollback, acknowledge a revert, diff, apply) unless the
TUI is read-only.  Each entry calls the app's action, so the palette asks the same
questions as the keys do."""
from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import Any

from textual.app import SystemCommand


def palette_commands(app: Any) -> Iterable[SystemCommand]:
    """APP is the NodewallApp (its actions, pending apply, guard and last report)."""
    for mode in app.MODES:
        yield SystemCommand(f"Go to {mode}", f"show the {mode} screen",
                            partial(app.switch_mode, mode))
    yield SystemCommand("Pause / resume refresh", "stop or restart the ticks",
                        app.action_pause)
    yield SystemCommand("Refresh faster", "halve the interval", app.action_faster)
    yield SystemCommand("Refresh slower", "double the interval", app.action_slower)
    if app.pending is not None:
        yield SystemCommand("Keep pending changes", "confirm the apply", app.action_keep)
        yield SystemCommand("Revert pending changes", "roll back now", app.action_revert)
    yield SystemCommand("Show drift", "what differs from the recorded generation",
                        app.action_show_drift)
    yield SystemCommand("Explain a packet", "its path through the applied rules "
                        "(nodewall explain)", app.action_explain)
    yield SystemCommand("History", "the recorded generations (nodewall history)",
                        app.action_history)
    if not app.guard.readonly:
        report = app.state.report
        if report is not None and report.panic:
            yield SystemCommand("Panic off", "the generation's rules again",
                                partial(app.action_ask_panic, False))
        else:
            yield SystemCommand("Panic on", "only failsafe traffic passes",
                                partial(app.action_ask_panic, True))
        yield SystemCommand("Rollback", "back to the previous generation (asks)",
                            app.action_ask_rollback)
        if report is not None and report.last_revert:
            yield SystemCommand("Acknowledge revert", "clear the notice of the "
                                "automatic revert (nodewall ack)",
                                partial(app.start_command, "ack",
                                        app.client.acknowledge_revert))
    yield SystemCommand("Diff profiles", "show the plan (apply screen)",
                        partial(app.open_apply_screen, "diff"))
    yield SystemCommand("Apply profiles", "apply with a confirm timeout",
                        partial(app.open_apply_screen, "apply"))
