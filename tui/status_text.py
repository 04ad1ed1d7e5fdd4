"""What the app says in words: the state line under the navigation bar (most urgent
first, so that the countdown and the read-only banner survive at 80 columns), the
drift and help dialogs, and why quitting asks first."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.screen import Screen

from .screens.base import NwScreen

if TYPE_CHECKING:
    from nodewall.engine.observe.report import StatusReport

GLOBAL_HELP = """Global keys
  1 2 3 4 5   dashboard, rules, conntrack, profiles, apply
  q           quit (asks while an apply waits or edits are unsaved)
  ?           this help            ctrl+p  command palette
  p           pause / resume       + / -   refresh faster / slower
  K / R       keep / revert a pending apply (each asks y/n: no single key)
  j / k       down / up in tables      D  what drifted (objects)
"""

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
            parts.append((revert_text(report.last_revert, app.guard.readonly), "alert"))
        parts.append((f"netns {report.netns or 'host'}", ""))
        gen = "none" if report.generation is None else str(report.generation)
        parts.append((f"gen {gen}", ""))
        if report.drift:
            parts.append((f"drift: {len(report.drift)}", "warn"))
        parts.append((f"iptables {report.iptables_mode}", ""))
        if report.recommendation:
            parts.append(("nftables recommended", "warn"))
    return parts


def revert_text(notice: dict, readonly: bool = False) -> str:
    """An automatic revert not yet acknowledged (status's last_revert), short enough
    for the state line; the palette's "Acknowledge revert" clears it (read-only, the
    palette has no such entry: `nodewall ack` as root)."""
    to = notice.get("reverted_to")
    why = {"confirm-timeout": "confirm timed out",
           "watcher-gone": "watcher gone"}.get(notice.get("reason", ""), notice.get("reason"))
    return (f"REVERTED gen {notice.get('generation')} -> {'none' if to is None else to} "
            f"({why}): {'root: nodewall ack' if readonly else 'ack in ^p'}")


def drift_text(report: StatusReport) -> str:
    """The drift dialog (D): what differs from the recorded generation, and how old
    the check is when the tick reused it."""
    if not report.drift:
        text = "No drift: the kernel holds what the current generation recorded."
    else:
        items = "\n".join(f"  - {d}" for d in report.drift)
        text = (f"Drift: {len(report.drift)} object(s) differ from generation "
                f"{report.generation}\n{items}\n\n`nodewall apply` (or a = apply on "
                "screen 5) puts them back.")
    if report.checks_age_s >= 1:
        text += f"\n\n(checked {report.checks_age_s:.0f} s ago)"
    return text


def help_text(screen: Screen) -> str:
    """The global keys, then the screen's own keys and help."""
    text = GLOBAL_HELP
    if isinstance(screen, NwScreen):
        keys = "\n".join(f"  {b.key:<11} {b.description}" for b in screen.BINDINGS)
        text += f"\nThis screen ({screen.MODE})\n{keys}\n\n{screen.HELP}"
    return text


def quit_reasons(app: Any) -> list[str]:
    """Why `q` asks before quitting: an apply waiting for keep, unsaved edits."""
    reasons = []
    if app.pending is not None:
        left = max(0, round(app.pending.deadline - app.clock()))
        reasons.append(f"generation {app.pending.generation} waits for keep: the engine "
                       f"reverts it in {left}s unless kept (K)")
    dirty = [b.path.name for b in app.buffers.values() if b.dirty]
    if dirty:
        reasons.append(f"unsaved edits in {', '.join(dirty)}")
    return reasons
