"""The state line under the navigation bar: most urgent first, so that the
countdown and the read-only banner survive at 80 columns."""
from __future__ import annotations

from typing import Any

GRACE = 5.0  # seconds past the deadline before we say the watcher is late


def state_parts(app: Any) -> list[tuple[str, str]]:
    parts: list[tuple[str, str]] = []
    pending = app.pending
    if pending is not None:
        left = pending.deadline - app.clock()
        if left > 0:
            text = f"KEEP generation {pending.generation}? K keep / R revert {left:3.0f}s"
            parts.append((text, "alert"))
        elif left > -GRACE:
            parts.append(("confirm timed out: the engine is reverting...", "alert"))
        else:
            parts.append(("confirm timed out but not reverted yet: press R", "alert"))
    if app.guard.readonly:
        parts.append((app.guard.banner(), "warn"))
    if app.error:
        parts.append((app.error, "alert"))
    if app.outcome and pending is None:
        parts.append((app.outcome, "warn" if "reverted" in app.outcome else ""))
    report = app.state.report
    if report is None:
        if not app.error:
            parts.append(("connecting to the engine...", ""))
    else:
        if report.panic:
            parts.append(("PANIC MODE: only failsafe traffic passes", "alert"))
        if report.last_revert:
            parts.append((revert_text(report.last_revert), "alert"))
        parts.append((f"netns {report.netns or 'host'}", ""))
        gen = "none" if report.generation is None else str(report.generation)
        parts.append((f"gen {gen}", ""))
        if report.drift:
            parts.append((f"drift: {len(report.drift)}", "warn"))
        parts.append((f"iptables {report.iptables_mode}", ""))
        if report.recommendation:
            parts.append(("nftables recommended", "warn"))
    return parts


def revert_text(notice: dict) -> str:
    """An automatic revert not yet acknowledged (status's last_revert), short enough
    for the state line; the palette's "Acknowledge revert" clears it."""
    to = notice.get("reverted_to")
    why = {"confirm-timeout": "confirm timed out",
           "watcher-gone": "watcher gone"}.get(notice.get("reason", ""), notice.get("reason"))
    return (f"REVERTED gen {notice.get('generation')} -> {'none' if to is None else to} "
            f"({why}): ack in ^p")
