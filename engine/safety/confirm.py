"""Commit-confirm: a change applied with a confirm timeout is reverted unless it is
confirmed in time, and a reverted change never comes back by itself.

The rules (README "Safety"):
  - apply --confirm-timeout S   arms a detached watcher (its own session, so it
    survives the SSH session) that reverts to the last confirmed generation at the
    deadline.  An apply with a timeout while another change is pending supersedes it
    (and says so): the revert still goes back to the last *confirmed* generation.
  - a plain apply while a change is pending is refused: confirm, roll back, or apply
    with a timeout.
  - the watcher is known by boot id, PID and start time; a pending change whose
    watcher is gone (killed, or the machine rebooted) is reverted by the next command
    at once, before anything else (the boot unit's agent included).
  - every automatic revert leaves a notice (status, TUI, metrics) until `nodewall
    ack`, a line in syslog, the outcome in the generation's record, and its content
    digest in quarantine: the agent never re-applies quarantined content; an operator's
    explicit apply lifts it.
"""
from __future__ import annotations

import subprocess
import sys
import syslog
import time
from collections.abc import Callable
from dataclasses import replace

from nodewall.engine.errors import ConfirmPending, NodewallError, NothingPending, Quarantined
from nodewall.engine.safety.results import PendingConfirm
from nodewall.engine.safety.state_dir import Pending, RevertNotice, StateStore
from nodewall.engine.system import netns as netns_mod
from nodewall.engine.system import procfs

Restore = Callable[[int | None, str], None]  # (generation or None, journal action)


def log_to_syslog(message: str) -> None:
    """One line to syslog (the journal on systemd hosts); never fails the caller."""
    try:
        syslog.openlog("nodewall", syslog.LOG_PID, syslog.LOG_DAEMON)
        syslog.syslog(syslog.LOG_WARNING, message)
    except OSError:
        pass


class CommitConfirm:
    def __init__(self, store: StateStore, restore: Restore, cli_args: list[str]):
        self.store = store
        self.restore = restore
        self.cli_args = cli_args  # how the watcher re-enters this namespace/state dir

    # -- before an apply -------------------------------------------------------
    def check_apply(self, confirm_timeout: float | None) -> Pending | None:
        """The pending change an apply would supersede (None if none).  A plain apply
        while one is pending is refused."""
        pending = self.store.pending()
        if pending is not None and confirm_timeout is None:
            raise ConfirmPending(
                f"generation {pending.generation} waits for confirmation "
                f"({pending.seconds_left:.0f}s left); a plain apply now would be reverted "
                "with it",
                hint="`nodewall confirm` keeps it, `nodewall rollback` reverts it, or apply "
                     "with --confirm-timeout S to replace it")
        return pending

    def check_quarantine(self, content: str, explicit: bool) -> None:
        """Refuse reverted content unless an operator applies it explicitly (which
        lifts the quarantine)."""
        entries = self.store.quarantine()
        if content not in entries:
            return
        if not explicit:
            q = entries[content]
            raise Quarantined(
                f"these profiles are generation {q['generation']}'s content, reverted "
                f"automatically ({q['reason']}); not re-applied by the agent",
                hint="fix the profiles, or apply them by hand (`nodewall apply …`, "
                     "with --confirm-timeout) to lift the quarantine")
        del entries[content]
        self.store.set_quarantine(entries)

    # -- after an apply ----------------------------------------------------------
    def arm(self, n: int, previous: int | None, timeout: float) -> PendingConfirm:
        deadline = time.time() + timeout
        self.store.write_pending(Pending(generation=n, previous=previous, deadline=deadline))
        cmd = [sys.executable, "-m", "nodewall.engine.cli", *self.cli_args,
               "_confirm-watcher", "--generation", str(n)]
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True,
                                close_fds=True)
        self.store.write_pending(Pending(
            generation=n, previous=previous, deadline=deadline, watcher_pid=proc.pid,
            watcher_start=procfs.start_time(proc.pid), boot_id=procfs.boot_id()))
        return PendingConfirm(n, previous, deadline, timeout)

    # -- confirm / expire ----------------------------------------------------------
    def confirm(self) -> int:
        """Keep the pending change (the caller holds the lock and ran recovery, so an
        expired or orphaned one is already reverted)."""
        pending = self.store.pending()
        if pending is None:
            notice = self.store.revert_notice()
            raise NothingPending(
                "nothing is waiting for confirmation"
                + (f" ({notice.describe()})" if notice else ""),
                hint="`nodewall status` shows the generation in place")
        if time.time() >= pending.deadline:
            raise NodewallError(f"generation {pending.generation} passed its deadline; "
                                "its watcher is reverting it",
                                hint="apply it again with --confirm-timeout to retry")
        self.store.clear_pending()
        return pending.generation

    def expire_orphan(self) -> str | None:
        """Revert a pending change whose watcher is gone (at once: a dead watcher cannot
        revert it at the deadline, and after a reboot the kernel holds nothing)."""
        pending = self.store.pending()
        if pending is None or pending.watcher_alive():
            return None
        expired = time.time() >= pending.deadline
        self.revert(pending, "confirm-timeout" if expired else "watcher-gone")
        return (f"generation {pending.generation} was never confirmed: reverted to "
                f"{'nothing applied' if pending.previous is None else pending.previous}")

    def watch(self, generation: int, poll: float = 0.2) -> bool:
        """The detached watcher: revert at the deadline unless confirmed.  Returns
        True when it reverted.  The caller takes the lock for the revert."""
        while True:
            pending = self.store.pending()
            if pending is None or pending.generation != generation:
                return False
            if time.time() >= pending.deadline:
                return True
            time.sleep(min(poll, max(0.0, pending.deadline - time.time())))

    def quarantine_rolled_back(self, generation: int, back_to: int | None) -> None:
        """An operator rolled `generation` back: the agent must not bring it again."""
        self._mark_reverted(Pending(generation, back_to, 0.0), "rolled back")

    def revert(self, pending: Pending, reason: str) -> None:
        """Put back the last confirmed generation and leave the traces (the caller
        holds the lock)."""
        current = self.store.current()
        if current == pending.generation:
            self.restore(pending.previous, "confirm-timeout")
        self.store.clear_pending()
        content = self._mark_reverted(pending, reason)
        notice = RevertNotice(pending.generation, pending.previous, time.time(), reason,
                              content)
        self.store.write_revert_notice(notice)
        log_to_syslog(notice.describe())

    def _mark_reverted(self, pending: Pending, reason: str) -> str:
        """The outcome in the generation's record, its content in quarantine."""
        try:
            meta = self.store.meta(pending.generation)
        except (OSError, ValueError):
            return ""
        self.store.write_meta(replace(meta, outcome=f"reverted: {reason}"))
        if meta.content and meta.content != self._content_of(pending.previous):
            entries = self.store.quarantine()
            entries[meta.content] = {"generation": pending.generation, "at": time.time(),
                                     "reason": reason}
            self.store.set_quarantine(entries)
        return meta.content

    def _content_of(self, generation: int | None) -> str:
        try:
            return "" if generation is None else self.store.meta(generation).content
        except (OSError, ValueError):
            return ""


def watcher_cli_args(store: StateStore) -> list[str]:
    args = ["--state-dir", str(store.root)]
    name = netns_mod.current_name()
    return args + (["--netns", name] if name else [])
