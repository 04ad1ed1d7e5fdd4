"""`nodewall agent`: reconcile the kernel with a directory of profiles, continuously
(the mode a fleet runs) or once (`--once`, the boot unit).

Each pass: finish an interrupted transaction if no other one runs; skip while a change
waits for `nodewall confirm` (an operator is testing it by hand); report drift against
the recorded generation; apply the directory's snapshot (engine.safety.snapshot: one
version of a mounted ConfigMap, the node's selection from nodes.toml) — the apply
compares against the kernel, so it repairs drift and changes nothing (no new
generation) when all is in place.  Bad input never touches the kernel: the pass is
logged (file:line:col), recorded in STATE_DIR/agent.json and counted by the metrics,
and the generation in place stays.

Between passes the agent waits for a change of the directory (inotify) or the
interval; after consecutive failed passes the interval doubles up to `backoff_max`
(a change still wakes it at once).  SIGTERM/SIGINT only set a flag the loop reads
between passes: a transaction in progress always finishes.
"""
from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nodewall.engine.errors import ExitCode, NodewallError, Quarantined
from nodewall.engine.safety.panic import expected_now
from nodewall.engine.safety.snapshot import NodeIdentity, Snapshot, resolve_root, take_snapshot
from nodewall.engine.safety.state_dir import generation_words
from nodewall.engine.safety.transactions import Transactions
from nodewall.engine.safety.watch import ProfilesWatch
from nodewall.engine.system.files import atomic_write_json

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} nodewall agent: {message}",
          file=sys.stderr, flush=True)


OUTCOMES = ("applied", "unchanged", "skipped", "failed", "bad_input")
FAILURES = ("failed", "bad_input")
BACKOFF_MAX_S = 300.0
SNAPSHOT_TRIES = 3  # reads of a ConfigMap that was swapped while being read
STATUS_FILE = "agent.json"


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
    source: str = ""  # the ConfigMap version read (the `..data` target), "" for a plain dir


PassObserver = Callable[[PassResult], None]


class Agent:
    def __init__(self, tx: Transactions, profiles_dir: Path, log: Log = _stderr,
                 on_pass: PassObserver | None = None, node: NodeIdentity | None = None,
                 backoff_max: float = BACKOFF_MAX_S):
        self.tx = tx
        self.dir = Path(profiles_dir)
        self.log = log
        self.on_pass = on_pass  # told every pass's result (the metrics exporter)
        self.node = node or NodeIdentity()
        self.backoff_max = backoff_max
        self.failures = 0  # consecutive failed / bad-input passes
        self._last = ""

    def snapshot(self) -> Snapshot:
        return take_snapshot(self.dir, self.node)

    def profiles(self) -> list[Path]:
        return list(self.snapshot().paths)

    def reconcile_once(self) -> PassResult:
        for _ in range(SNAPSHOT_TRIES):
            result = self._reconcile()
            if not self._swapped_during(result):
                break
            self.log(f"{self.dir} changed during the pass; reading the new version")
        self.failures = self.failures + 1 if result.outcome in FAILURES else 0
        self._record(result)
        if self.on_pass is not None:
            self.on_pass(result)
        return result

    def _swapped_during(self, result: PassResult) -> bool:
        """A bad-input pass over a ConfigMap version that is no longer current: the
        kubelet removed it while it was read; read the new one."""
        return (result.outcome == "bad_input" and result.source != ""
                and resolve_root(self.dir)[1] != result.source)

    def _record(self, result: PassResult) -> None:
        """STATE_DIR/agent.json: the last pass, for operators and `cat` (best effort:
        a full state dir is reported by the transactions themselves)."""
        try:
            atomic_write_json(self.tx.store.root / STATUS_FILE, {
                "time": time.time(), "outcome": result.outcome,
                "generation": result.generation, "message": result.message,
                "source": result.source, "consecutive_failures": self.failures,
                "node": self.node.name, "profiles_dir": str(self.dir)})
        except OSError as exc:
            self.log(f"cannot record the pass in {STATUS_FILE}: {exc}")

    def next_delay(self, interval: float) -> float:
        """The wait before the next pass when nothing changes: the interval, doubled
        for each consecutive failure up to backoff_max."""
        if self.failures == 0:
            return interval
        return min(interval * 2 ** min(self.failures - 1, 32), max(self.backoff_max, interval))

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
        source = resolve_root(self.dir)[1]
        try:
            snap = self.snapshot()
            source = snap.version
            paths = list(snap.paths)
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
                              outcome=_failure_outcome(exc), source=source,
                              apply_s=None if started is None else time.monotonic() - started)
        apply_s = time.monotonic() - started
        for w in result.warnings:
            self.log(w)
        if result.changed:
            msg = (f"applied generation {result.generation}"
                   + (f" from {source}" if source else "") + " "
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
                          apply_s=apply_s, source=source)

    def run(self, interval: float, *, once: bool = False,
            stop: threading.Event | None = None, max_passes: int | None = None,
            watch: bool = True) -> int:
        """Reconcile on every change of the directory (watch) and at least every
        `interval` seconds until SIGTERM/SIGINT (or `stop`, or `max_passes`).  With
        once: one pass, its exit code."""
        if once:
            return self.reconcile_once().exit_code
        stop = stop or threading.Event()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
        watcher = ProfilesWatch(self.dir, enabled=watch)
        try:
            self._loop(watcher, interval, stop, max_passes)
        finally:
            watcher.close()
        self.log("stopped")
        return ExitCode.OK

    def _loop(self, watcher: ProfilesWatch, interval: float, stop: threading.Event,
              max_passes: int | None) -> None:
        passes = 0
        said = ""
        while not stop.is_set():
            watcher.open()  # before the pass: a change made during it wakes the next wait
            said = self._say_mode(watcher, interval, said)
            self.reconcile_once()
            passes += 1
            if stop.is_set() or (max_passes is not None and passes >= max_passes):
                return
            delay = self.next_delay(interval)
            if delay != interval:
                self.log(f"{self.failures} failed pass(es) in a row: next try in {delay:g}s "
                         f"or on a change")
            watcher.wait(delay, stop)

    def _say_mode(self, watcher: ProfilesWatch, interval: float, said: str) -> str:
        mode = (f"on change (inotify) and every {interval:g}s" if watcher.active
                else f"every {interval:g}s" + (f" (no inotify: {watcher.problem})"
                                               if watcher.problem else ""))
        if mode != said:
            self.log(f"reconciling {self.dir} {mode}")
        return mode


def _failure_outcome(exc: NodewallError) -> str:
    if isinstance(exc, Quarantined):
        return "skipped"
    return "bad_input" if exc.exit_code == ExitCode.BAD_INPUT else "failed"
