"""`nodewall agent`: reconcile the kernel with a directory of profiles, continuously
(the mode a fleet runs) or once (`--once`, the boot unit).

Each pass: finish an interrupted transaction if no other one runs; skip while a change
waits for `nodewall confirm` (an operator is testing it by hand); report drift against
the recorded generation; apply DIR/*.toml — the apply compares against the kernel, so
it repairs drift and changes nothing (no new generation) when all is in place.  Bad
input never touches the kernel: the pass is logged and the generation in place stays.
"""
from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nodewall.engine.errors import ExitCode, InputError, Loc, NodewallError, Quarantined
from nodewall.engine.safety.panic import expected_now
from nodewall.engine.safety.state_dir import generation_words
from nodewall.engine.safety.transactions import Transactions

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} nodewall agent: {message}",
          file=sys.stderr, flush=True)


OUTCOMES = ("applied", "unchanged", "skipped", "failed", "bad_input")


@dataclass(frozen=True)
class PassResult:
    exit_code: int  # 0 in place / applied, 1 failed (rolled back), 2 bad input
    generation: int | None
    changed: bool = False
    drift: tuple[str, ...] = ()
    message: str = ""
    # one of OUTCOMES: applied (a new generation), unchanged (all in place), skipped
    # (a change waits for confirm, or quarantined content), failed, bad_input
    outcome: str = "unchanged"
    apply_s: float | None = None  # how long the apply took, when one was attempted


PassObserver = Callable[[PassResult], None]


class Agent:
    def __init__(self, tx: Transactions, profiles_dir: Path, log: Log = _stderr,
                 on_pass: PassObserver | None = None):
        self.tx = tx
        self.dir = Path(profiles_dir)
        self.log = log
        self.on_pass = on_pass  # told every pass's result (the metrics exporter)
        self._last = ""

    def profiles(self) -> list[Path]:
        paths = sorted(self.dir.glob("*.toml")) if self.dir.is_dir() else []
        if not paths:
            raise InputError(Loc(str(self.dir)), "no *.toml profile in this directory",
                             hint="put the node's profiles there (the boot unit and the "
                                  "agent apply all of them together)")
        return paths

    def reconcile_once(self) -> PassResult:
        result = self._reconcile()
        if self.on_pass is not None:
            self.on_pass(result)
        return result

    def _reconcile(self) -> PassResult:
        store = self.tx.store
        try:
            recovered = self.tx.recover_if_idle()
        except NodewallError as exc:
            self.log(exc.render())
            return PassResult(exc.exit_code, store.current(), message=exc.render(),
                              outcome=_failure_outcome(exc))
        if recovered:
            self.log(recovered)
        pending = store.pending()
        if pending is not None:
            msg = (f"generation {pending.generation} waits for `nodewall confirm` "
                   f"({pending.seconds_left:.0f}s left); not reconciling meanwhile")
            self.log(msg)
            return PassResult(ExitCode.OK, store.current(), message=msg, outcome="skipped")
        started = None
        try:
            paths = self.profiles()
            drift = tuple(str(d) for d in self.tx.kernel.drift(expected_now(store)))
            for d in drift:
                self.log(f"drift: {d}")
            started = time.monotonic()
            result = self.tx.apply(paths, on_wait=self.log, origin="agent")
        except NodewallError as exc:
            if isinstance(exc, Quarantined):
                prefix = f"keeping {generation_words(store.current())}: "
            elif exc.exit_code == ExitCode.BAD_INPUT:
                prefix = "bad input, kernel left as it is: "
            else:
                prefix = "apply failed: "
            self.log(prefix + exc.render())
            return PassResult(exc.exit_code, store.current(), message=exc.render(),
                              outcome=_failure_outcome(exc),
                              apply_s=None if started is None else time.monotonic() - started)
        apply_s = time.monotonic() - started
        for w in result.warnings:
            self.log(w)
        if result.changed:
            msg = (f"applied generation {result.generation} "
                   f"({len(result.preview.lines)} change(s)"
                   + (f", repaired {len(drift)} drift item(s)" if drift else "") + ")")
            self.log(msg)
        else:
            msg = f"in place: generation {result.generation}"
            if msg != self._last:  # said once, not every pass
                self.log(msg)
        self._last = msg
        return PassResult(ExitCode.OK, result.generation, result.changed, drift, msg,
                          outcome="applied" if result.changed else "unchanged",
                          apply_s=apply_s)

    def run(self, interval: float, *, once: bool = False,
            stop: threading.Event | None = None, max_passes: int | None = None) -> int:
        """Reconcile every `interval` seconds until SIGTERM/SIGINT (or `stop`, or
        `max_passes`).  With once: one pass, its exit code."""
        if once:
            return self.reconcile_once().exit_code
        stop = stop or threading.Event()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
        self.log(f"reconciling {self.dir}/*.toml every {interval:g}s")
        passes = 0
        while not stop.is_set():
            self.reconcile_once()
            passes += 1
            if max_passes is not None and passes >= max_passes:
                break
            stop.wait(interval)
        self.log("stopped")
        return ExitCode.OK


def _failure_outcome(exc: NodewallError) -> str:
    if isinstance(exc, Quarantined):
        return "skipped"
    return "bad_input" if exc.exit_code == ExitCode.BAD_INPUT else "failed"
