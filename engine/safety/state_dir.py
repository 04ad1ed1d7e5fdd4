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
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nodewall.engine.dataplane.shape import ExpectedShape
from nodewall.engine.errors import EnvironmentProblem, LockBusy, NodewallError
from nodewall.engine.system import netns, procfs
from nodewall.engine.system.files import atomic_write_json, atomic_write_text

DEFAULT_ROOT = Path("/var/lib/nodewall")
KEEP_GENERATIONS = 10
PRIVATE = 0o600  # every state file (the dirs are 0700): profiles may hold secrets


RUN_ROOT = Path("/run/nodewall")

# The lock fds this process holds.  A flock belongs to the open file, which a forked
# child shares: the XDP compiler child (a fork without exec) would keep the lock after
# the apply was killed, and the next command could not recover.  Children drop them.
_HELD_LOCKS: set[int] = set()


def _drop_held_locks_in_child() -> None:
    for fd in _HELD_LOCKS:
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD_LOCKS.clear()


os.register_at_fork(after_in_child=_drop_held_locks_in_child)


class StateCorrupt(NodewallError):
    """A state file nodewall wrote is damaged (by hand, a full disk, a bad restore)."""

    def __init__(self, path: Path, problem: str):
        super().__init__(f"state file {path} {problem}",
                         hint="move it aside (or fix it) and run the command again; "
                              "`nodewall flush` still removes everything nodewall owns")
        self.path = path


def check_private_dir(path: Path) -> None:
    """Refuse a state dir another user owns or can write, or one inside a folder
    another user can write without the sticky bit (they could swap it)."""
    for where in (path, path.parent):
        st = os.stat(where)
        sticky = bool(st.st_mode & stat.S_ISVTX) and where == path.parent
        if where == path and st.st_uid != os.geteuid():
            raise EnvironmentProblem(f"state dir {path} is owned by uid {st.st_uid}, not "
                                     f"by this user (uid {os.geteuid()})",
                                     hint="use a state dir of your own (--state-dir)")
        if st.st_mode & 0o022 and not sticky:
            raise EnvironmentProblem(f"{where} is writable by other users; nodewall "
                                     "will not keep its state there",
                                     hint=f"chmod go-w {where}, or another --state-dir")


def generation_words(n: int | None) -> str:
    """"generation N", or "nothing applied" for None (never "generation None")."""
    return "nothing applied" if n is None else f"generation {n}"


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
    def __init__(self, root: Path, lock_dir: Path | None = None):
        self.root = root
        self._lock_dir = lock_dir

    # -- paths -------------------------------------------------------------
    @property
    def generations_dir(self) -> Path:
        return self.root / "generations"

    def generation_dir(self, n: int) -> Path:
        return self.generations_dir / str(n)

    def ensure(self) -> None:
        """Create the state dir (0700) or check the one there: it must be ours and not
        writable by anyone else, or a planted file could steer a root command."""
        try:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.generations_dir.mkdir(mode=0o700, exist_ok=True)
        except PermissionError as exc:
            raise EnvironmentProblem(f"cannot create the state dir {self.root}: {exc}",
                                     hint="run as root or pass --state-dir") from exc
        check_private_dir(self.root)

    def lock_dir(self) -> Path:
        """Where the transaction lock lives: per network namespace under /run (tmpfs,
        outside any state dir, so two --state-dir values on one namespace serialize
        and deleting a state dir cannot drop the lock); the state dir itself when
        /run/nodewall is not writable (a non-root user's own test store)."""
        if self._lock_dir is None:
            run = RUN_ROOT / netns.scope_name()
            try:
                run.mkdir(mode=0o700, parents=True, exist_ok=True)
                self._lock_dir = run if os.access(run, os.W_OK) else self.root
            except OSError:
                self._lock_dir = self.root
        return self._lock_dir

    # -- lock --------------------------------------------------------------
    @contextmanager
    def lock(self, *, wait: bool = True, on_wait=None) -> Iterator[None]:
        """Serialize transactions in this namespace.  on_wait(message) is called
        once if we have to wait for another nodewall."""
        self.ensure()
        where = self.lock_dir()
        fd = os.open(where / "tx.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        _HELD_LOCKS.add(fd)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _lock_holder(where)
                if not wait:
                    raise LockBusy(f"another nodewall transaction is running here{holder}",
                                   hint="wait for it, or run without --no-wait to queue") \
                        from None
                if on_wait:
                    on_wait(f"waiting for another nodewall transaction{holder} ...")
                fcntl.flock(fd, fcntl.LOCK_EX)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            yield
        finally:
            _HELD_LOCKS.discard(fd)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    # -- generations -------------------------------------------------------
    def current(self) -> int | None:
        path = self.root / "current"
        try:
            text = path.read_text().strip()
        except FileNotFoundError:
            return None
        if text and not text.isdigit():
            raise StateCorrupt(path, "is not a generation number")
        return int(text) if text else None

    def set_current(self, n: int | None) -> None:
        self.ensure()
        atomic_write_text(self.root / "current", "" if n is None else f"{n}\n", mode=PRIVATE)

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
        path = self.generation_dir(n) / "meta.json"
        data = self._read_json(path)
        if data is None:
            raise StateCorrupt(path, "is missing")
        try:
            return GenerationMeta.from_json(data)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise StateCorrupt(path, "does not hold a generation record") from exc

    def write_meta(self, meta: GenerationMeta) -> None:
        atomic_write_json(self.generation_dir(meta.generation) / "meta.json", meta.to_json(),
                          mode=PRIVATE)

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
        return self._read_json(self.root / name)

    @staticmethod
    def _read_json(path: Path) -> dict | None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateCorrupt(path, f"cannot be read ({exc.strerror})") from exc
        with os.fdopen(fd) as fh:
            try:
                data = json.load(fh)
            except (ValueError, UnicodeDecodeError) as exc:
                raise StateCorrupt(path, "is not valid JSON") from exc
        if not isinstance(data, dict):
            raise StateCorrupt(path, "is not a JSON object")
        return data

    def _record(self, cls, name: str):
        data = self._read(name)
        if not data:
            return None
        try:
            return cls(**data)
        except TypeError as exc:
            raise StateCorrupt(self.root / name, f"does not hold a {cls.__name__} record") \
                from exc

    def journal(self) -> Journal | None:
        return self._record(Journal, "journal.json")

    def write_journal(self, journal: Journal) -> None:
        self.ensure()
        atomic_write_json(self.root / "journal.json", asdict(journal), mode=PRIVATE)

    def clear_journal(self) -> None:
        (self.root / "journal.json").unlink(missing_ok=True)

    def pending(self) -> Pending | None:
        return self._record(Pending, "pending.json")

    def write_pending(self, pending: Pending) -> None:
        atomic_write_json(self.root / "pending.json", asdict(pending), mode=PRIVATE)

    def clear_pending(self) -> None:
        (self.root / "pending.json").unlink(missing_ok=True)

    # -- reverts and quarantine ----------------------------------------------
    def revert_notice(self) -> RevertNotice | None:
        return self._record(RevertNotice, "revert.json")

    def write_revert_notice(self, notice: RevertNotice) -> None:
        atomic_write_json(self.root / "revert.json", asdict(notice), mode=PRIVATE)

    def clear_revert_notice(self) -> None:
        (self.root / "revert.json").unlink(missing_ok=True)

    def quarantine(self) -> dict[str, dict[str, Any]]:
        """{content digest: {generation, at, reason}}: contents that were reverted
        automatically and that nothing but an operator's explicit apply brings back."""
        return self._read("quarantine.json") or {}

    def set_quarantine(self, entries: dict[str, dict[str, Any]]) -> None:
        self.ensure()
        atomic_write_json(self.root / "quarantine.json", entries, mode=PRIVATE)


def _lock_holder(where: Path) -> str:
    """" (pid N)" of the process that holds the lock, if it still runs."""
    try:
        text = (where / "tx.lock").read_text().strip()
    except OSError:
        return ""
    if text.isdigit() and procfs.is_alive(int(text)):
        return f" (pid {text})"
    return ""
