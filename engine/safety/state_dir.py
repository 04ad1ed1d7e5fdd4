"""The state dir: recorded generations, the transaction journal, the pending
commit-confirm, and the lock that serializes transactions in one namespace.

Layout (default /var/lib/nodewall, or /var/lib/nodewall/netns/<NAME> with --netns):
    lock                        flock held by every mutating command
    generations/<N>/meta.json   GenerationMeta (files, backend, time, rule metadata, expected kernel shape)
    generations/<N>/profiles/   copies of the applied TOML files (nets_file rewritten to nets/)
    generations/<N>/nets/       copies of the nets_files as applied (also the baselines
                                the next apply diffs against)
    current                     the applied generation number (atomic replace)
    journal.json                present only while a transaction is in flight
    pending.json                present while an apply awaits `nodewall confirm`
    revert.json                 the last automatic revert, until `nodewall ack`
    quarantine.json             contents reverted automatically: the agent never
                                re-applies them (an operator's explicit apply does)
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nodewall.engine.dataplane.shape import ExpectedShape
from nodewall.engine.errors import EnvironmentProblem, LockBusy
from nodewall.engine.system import procfs
from nodewall.engine.system.files import atomic_write_json, atomic_write_text

DEFAULT_ROOT = Path("/var/lib/nodewall")
KEEP_GENERATIONS = 10


def default_state_dir(netns: str | None) -> Path:
    return DEFAULT_ROOT / "netns" / netns if netns else DEFAULT_ROOT


@dataclass(frozen=True)
class GenerationMeta:
    generation: int
    created: float
    sources: list[str]  # the profile paths as given to apply
    backend: str
    rules: dict[str, dict]  # rule_id -> RuleMeta as dict
    content: str = ""  # digest of the applied profiles' content (safety.content)
    origin: str = ""  # who applied it: cli, tui, agent, ansible, …
    outcome: str = ""  # "" while in force or kept; "reverted: …" after an automatic revert
    expected: ExpectedShape = field(default_factory=ExpectedShape)  # for drift checks
    note: str = ""

    @classmethod
    def from_json(cls, data: dict) -> GenerationMeta:
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        fields["expected"] = ExpectedShape.from_json(data.get("expected"))
        return cls(**fields)

    def to_json(self) -> dict[str, Any]:
        plain = {f: getattr(self, f) for f in self.__dataclass_fields__ if f != "expected"}
        return {**plain, "expected": self.expected.to_json()}


@dataclass(frozen=True)
class Pending:
    generation: int
    previous: int | None  # None: the previous state was "nothing applied"
    deadline: float
    watcher_pid: int | None = None
    watcher_start: int | None = None  # its start time (procfs.start_time)
    boot_id: str = ""  # the boot it runs in (a reboot ends every watcher)

    @property
    def seconds_left(self) -> float:
        return max(0.0, self.deadline - time.time())

    def watcher_alive(self) -> bool:
        """The watcher this pending names still runs: same boot, same PID, same start
        time (a PID reused by another process after the watcher died does not count)."""
        if not self.watcher_pid or self.boot_id != procfs.boot_id():
            return False
        return procfs.is_alive(self.watcher_pid) and \
            procfs.start_time(self.watcher_pid) == self.watcher_start


@dataclass(frozen=True)
class RevertNotice:
    """An automatic revert, shown by status and the TUI until acknowledged."""

    generation: int  # what was reverted
    reverted_to: int | None
    at: float
    reason: str  # "confirm-timeout", "watcher-gone"
    content: str = ""  # the reverted profiles' content digest (quarantined)

    def describe(self) -> str:
        to = "nothing applied" if self.reverted_to is None else f"generation {self.reverted_to}"
        why = {"confirm-timeout": "its confirm timeout expired",
               "watcher-gone": "its confirm watcher was gone (killed, or a reboot)"}
        return (f"generation {self.generation} was reverted to {to} at "
                f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(self.at))}: "
                f"{why.get(self.reason, self.reason)}")


@dataclass(frozen=True)
class Journal:
    """An in-flight transaction: the kernel may hold a mix of `previous` and
    `target` until it completes.  Recovery re-applies `previous` (or flushes)."""

    target: int
    previous: int | None
    pid: int
    started: float
    action: str  # "apply", "rollback", "flush", "panic"


class StateStore:
    def __init__(self, root: Path):
        self.root = root

    # -- paths -------------------------------------------------------------
    @property
    def generations_dir(self) -> Path:
        return self.root / "generations"

    def generation_dir(self, n: int) -> Path:
        return self.generations_dir / str(n)

    def ensure(self) -> None:
        try:
            self.generations_dir.mkdir(parents=True, exist_ok=True)
        except PermissionError as exc:
            raise EnvironmentProblem(f"cannot create the state dir {self.root}: {exc}",
                                     hint="run as root or pass --state-dir") from exc

    # -- lock --------------------------------------------------------------
    @contextmanager
    def lock(self, *, wait: bool = True, on_wait=None) -> Iterator[None]:
        """Serialize transactions in this namespace.  on_wait(message) is called
        once if we have to wait for another nodewall."""
        self.ensure()
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = self._lock_holder()
                if not wait:
                    raise LockBusy(f"another nodewall transaction is running here{holder}",
                                   hint="wait for it, or run without --no-wait to queue")
                if on_wait:
                    on_wait(f"waiting for another nodewall transaction{holder} ...")
                fcntl.flock(fd, fcntl.LOCK_EX)
            (self.root / "lock.pid").write_text(str(os.getpid()))
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _lock_holder(self) -> str:
        try:
            return f" (pid {(self.root / 'lock.pid').read_text().strip()})"
        except OSError:
            return ""

    # -- generations -------------------------------------------------------
    def current(self) -> int | None:
        try:
            text = (self.root / "current").read_text().strip()
        except FileNotFoundError:
            return None
        return int(text) if text else None

    def set_current(self, n: int | None) -> None:
        self.ensure()
        atomic_write_text(self.root / "current", "" if n is None else f"{n}\n")

    def generations(self) -> list[int]:
        if not self.generations_dir.exists():
            return []
        return sorted(int(p.name) for p in self.generations_dir.iterdir()
                      if p.name.isdigit() and (p / "meta.json").exists())

    def next_generation(self) -> int:
        existing = [int(p.name) for p in self.generations_dir.iterdir() if p.name.isdigit()] \
            if self.generations_dir.exists() else []
        return max(existing, default=0) + 1

    def meta(self, n: int) -> GenerationMeta:
        return GenerationMeta.from_json(
            json.loads((self.generation_dir(n) / "meta.json").read_text()))

    def write_meta(self, meta: GenerationMeta) -> None:
        atomic_write_json(self.generation_dir(meta.generation) / "meta.json", meta.to_json())

    def profile_copies(self, n: int) -> list[Path]:
        d = self.generation_dir(n) / "profiles"
        return sorted(d.glob("*.toml")) if d.exists() else []

    def nets_dir(self, n: int) -> Path:
        return self.generation_dir(n) / "nets"

    def prune(self, keep: int = KEEP_GENERATIONS) -> None:
        """Drop old generations, never the current or a pending one's previous."""
        protect = {self.current()}
        pending = self.pending()
        if pending:
            protect |= {pending.generation, pending.previous}
        gens = self.generations()
        for n in gens[:-keep] if len(gens) > keep else []:
            if n not in protect:
                shutil.rmtree(self.generation_dir(n), ignore_errors=True)
        # leftovers of prepared-but-never-recorded generations
        for p in self.generations_dir.iterdir():
            if p.name.isdigit() and not (p / "meta.json").exists() and \
                    self.journal() is None:
                shutil.rmtree(p, ignore_errors=True)

    # -- journal / pending -------------------------------------------------
    def _read(self, name: str) -> dict | None:
        try:
            return json.loads((self.root / name).read_text())
        except FileNotFoundError:
            return None

    def journal(self) -> Journal | None:
        data = self._read("journal.json")
        return Journal(**data) if data else None

    def write_journal(self, journal: Journal) -> None:
        self.ensure()
        atomic_write_json(self.root / "journal.json", asdict(journal))

    def clear_journal(self) -> None:
        (self.root / "journal.json").unlink(missing_ok=True)

    def pending(self) -> Pending | None:
        data = self._read("pending.json")
        return Pending(**data) if data else None

    def write_pending(self, pending: Pending) -> None:
        atomic_write_json(self.root / "pending.json", asdict(pending))

    def clear_pending(self) -> None:
        (self.root / "pending.json").unlink(missing_ok=True)

    # -- reverts and quarantine ----------------------------------------------
    def revert_notice(self) -> RevertNotice | None:
        data = self._read("revert.json")
        return RevertNotice(**data) if data else None

    def write_revert_notice(self, notice: RevertNotice) -> None:
        atomic_write_json(self.root / "revert.json", asdict(notice))

    def clear_revert_notice(self) -> None:
        (self.root / "revert.json").unlink(missing_ok=True)

    def quarantine(self) -> dict[str, dict[str, Any]]:
        """{content digest: {generation, at, reason}}: contents that were reverted
        automatically and that nothing but an operator's explicit apply brings back."""
        return self._read("quarantine.json") or {}

    def set_quarantine(self, entries: dict[str, dict[str, Any]]) -> None:
        self.ensure()
        atomic_write_json(self.root / "quarantine.json", entries)
