"""The emergency commands (rollback, flush, panic) of Transactions, and how a state
dir that cannot record a step is reported.  An emergency command needs no disk: with
a full, read-only or damaged state dir it still changes the kernel and says what could
not be recorded."""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nodewall.engine.errors import NodewallError, NothingPending, NothingToDo
from nodewall.engine.safety import panic as panic_mod
from nodewall.engine.safety.state_dir import Journal, StateStore

if TYPE_CHECKING:
    from nodewall.engine.dataplane.orchestrator import Orchestrator
    from nodewall.engine.safety.confirm import CommitConfirm

OnWait = Callable[[str], None] | None
OnWarning = Callable[[str], None] | None
UNSET: Any = object()  # no panic state forced: read the marker


def best_effort(step: Callable[[], Any], warnings: list[str], what: str) -> Any:
    """Run a state-dir step of an emergency command; a failure becomes a warning."""
    try:
        return step()
    except (OSError, NodewallError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else exc.message
        warnings.append(f"could not {what} in the state dir: {reason}")
        return None


class StateUnwritable(NodewallError):
    """The state dir could not record a step (full, read-only, I/O error)."""

    def __init__(self, store: StateStore, what: str, exc: OSError, outcome: str):
        super().__init__(f"could not {what} in the state dir {store.root}: "
                         f"{exc.strerror or exc}; {outcome}",
                         hint="free space in the state dir (or make it writable) and run "
                              "the command again; `nodewall panic on` and `nodewall flush` "
                              "work without it")


class EmergencyCommands:
    """Rollback, flush and panic over the transaction's state dir and kernel (mixed
    into Transactions, which provides recover, _restore, _panic and _set_outcome)."""

    store: StateStore
    kernel: Orchestrator
    gate: CommitConfirm
    _panic_forced: panic_mod.PanicState | None
    _panic_written: panic_mod.PanicState | None

    def _guarded_restore(self, previous: int | None, action: str) -> None:
        """Journaled: the kernel to generation `previous` and `current` with it.  A
        state dir that cannot journal it or record it: the kernel stays (or is put
        back) as `current` says, and the error says so."""
        current = self.store.current()
        try:
            self.store.write_journal(Journal(target=current or 0, previous=previous,
                                             pid=os.getpid(), started=time.time(),
                                             action=action))
        except OSError as exc:
            raise StateUnwritable(self.store, f"journal the {action}", exc,
                                  "the kernel was not changed") from exc
        try:
            self._restore(previous)
        except OSError as exc:
            self._restore(current, record=False)
            best_effort(self.store.clear_journal, [], "clear the journal")
            raise StateUnwritable(self.store, f"record the {action}", exc,
                                  "the kernel was left as it was") from exc
        self.store.clear_journal()

    # -- rollback / flush --------------------------------------------------------
    def rollback(self, *, wait: bool = True, on_wait: OnWait = None,
                 pending_generation: int | None = None, to: int | None = None) -> int | None:
        """Return to the generation before the current one (or the pending one's
        previous).  Returns the generation now in place.  With `pending_generation`,
        only revert that pending apply: if the confirm watcher reverted it (or it was
        kept) a moment ago, refuse instead of rolling back one generation more."""
        with self.store.lock(wait=wait, on_wait=on_wait):
            self.recover()
            pending = self.store.pending()
            current = self.store.current()
            if pending_generation is not None and (
                    pending is None or pending.generation != pending_generation
                    or current != pending_generation):
                raise NothingPending(
                    f"generation {pending_generation} is no longer pending (it was kept, "
                    "or reverted at its deadline); nothing was rolled back",
                    hint="`nodewall status` shows the generation in place")
            if to is not None:
                target = self._rollback_target(to, current)
            elif pending is not None and pending.generation == current:
                target = pending.previous
            else:
                older = [g for g in self.store.generations() if current is None or g < current]
                if current is None:
                    raise NothingPending("nothing has been applied; nothing to roll back")
                target = older[-1] if older else None
            self._guarded_restore(target, "rollback")
            self.store.clear_pending()
            if current is not None:
                try:
                    self.gate.quarantine_rolled_back(current, target)
                except OSError as exc:
                    raise StateUnwritable(
                        self.store, "quarantine the rolled-back content", exc,
                        f"rolled back to {target}, but the agent may apply generation "
                        f"{current}'s content again") from exc
            return target

    def _rollback_target(self, to: int, current: int | None) -> int:
        """`rollback --to N`: N must be recorded and not already in force."""
        if to not in self.store.generations():
            kept = self.store.generations()
            span = f"{kept[0]}..{kept[-1]}" if kept else "none"
            raise NothingPending(f"generation {to} is not recorded (recorded: {span}); "
                                 "nothing was rolled back",
                                 hint="`nodewall history` lists the recorded generations")
        if to == current:
            raise NothingToDo(f"generation {to} is already in force")
        return to

    def flush(self, *, wait: bool = True, on_wait: OnWait = None) -> list[str]:
        """Remove everything nodewall owns (panic mode included).  Journaled when the
        state dir allows it: a flush that dies half-way is completed by the next
        command.  An emergency command needs no disk: with a full, read-only or damaged
        state dir it still flushes.  Returns warnings about what could not be recorded."""
        warnings: list[str] = []
        with self.store.lock(wait=wait, on_wait=on_wait):
            previous = best_effort(self.store.current, warnings, "read the generation")
            best_effort(lambda: self.store.write_journal(Journal(
                target=0, previous=previous, pid=os.getpid(), started=time.time(),
                action="flush")), warnings, "journal the flush")
            best_effort(lambda: panic_mod.clear_marker(self.store.root), warnings,
                        "clear the panic marker")
            best_effort(lambda: self._set_outcome(previous, "flushed"), warnings,
                        "record the flush in the generation's history")
            try:  # what cannot go (a foreign rule uses it) is emptied, and reported
                self.kernel.flush()
            finally:
                for step, what in ((self.store.clear_pending, "clear the pending confirm"),
                                   (lambda: self.store.set_current(None), "record it"),
                                   (self.store.clear_journal, "clear the journal")):
                    best_effort(step, warnings, what)
        return warnings

    # -- panic ---------------------------------------------------------------------
    def set_panic(self, on: bool, *, wait: bool = True, on_wait: OnWait = None,
                  on_warning: OnWarning = None) -> panic_mod.PanicState | None:
        """Panic on: drop everything but failsafe traffic (kept across applies until
        off).  Off: back to the current generation as it was.  Returns the panic state
        now in force (None when off).  An emergency command needs no disk: with a full
        or read-only state dir the kernel still switches, and on_warning(message) is
        told what could not be recorded (then the next apply does not know it)."""
        warnings: list[str] = []
        with self.store.lock(wait=wait, on_wait=on_wait):
            best_effort(self.recover, warnings, "finish an interrupted transaction")
            current = best_effort(self.store.current, warnings, "read the generation")
            old = self._panic()
            state = panic_mod.state_from_settings(
                None, since=old.since if old else None) if on else None
            recorded = best_effort(lambda: self._record_panic(state), warnings,
                                   f"record panic {'on' if on else 'off'}")
            journaled = best_effort(lambda: self.store.write_journal(Journal(
                target=current or 0, previous=current, pid=os.getpid(),
                started=time.time(), action="panic")) or True, warnings,
                "journal the panic switch")
            self._panic_forced = state
            try:
                self._restore(current, record=False)
            finally:
                self._panic_forced = UNSET
            if journaled:
                best_effort(self.store.clear_journal, warnings, "clear the journal")
        if recorded is None:
            warnings.append(f"panic is {'on' if on else 'off'} in the kernel, but the "
                            "state dir does not say so: the next apply or recovery "
                            f"switches it {'off' if on else 'on'} again")
        for warning in warnings:
            if on_warning is not None:
                on_warning(warning)
        return self._panic_written if on else None

    def _record_panic(self, state: panic_mod.PanicState | None) -> bool:
        if state is None:
            panic_mod.clear_marker(self.store.root)
        else:
            panic_mod.write_marker(self.store.root, state)
        return True
