"""Generation history read from the state dir: `nodewall history`, `show N` and
`diff --from N --to M`.  Read-only; old meta.json files (without origin, content or
outcome) read as well.  Flush keeps the records (it only empties the kernel)."""
from __future__ import annotations

import difflib
import hashlib
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nodewall.engine.errors import NothingPending
from nodewall.engine.safety.state_dir import GenerationMeta, StateStore

# recorded outcome (GenerationMeta.outcome) -> the word history shows
RECORDED = {"reverted: confirm-timeout": "reverted by timeout",
            "reverted: watcher-gone": "reverted (confirm watcher gone)",
            "reverted: rolled back": "rolled back",
            "flushed": "flushed", "kept": "kept"}
MAX_TEXT = 1 << 20  # a profile copy shown by `show` (they are small; nets_files are not shown)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class FileHash:
    """A recorded file.  nets_file copies (which may be a gigabyte) are hashed only
    when asked (`show`, and `diff` for two copies of equal size); `history` lists
    them with their size and the path they were copied from."""

    name: str  # "profiles/00-redis.toml" or "nets/<key>.nets"
    sha256: str | None
    size: int = 0
    source: str | None = None  # a nets_file's original path

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "sha256": self.sha256, "size": self.size,
                "source": self.source}


@dataclass(frozen=True)
class HistoryEntry:
    generation: int
    created: float
    origin: str  # cli, tui, agent, ansible, …; "" in records older than origins
    sources: tuple[str, ...]
    backend: str
    content: str  # the profiles' content digest
    outcome: str  # in force / pending confirm / kept / reverted by timeout / rolled back / …
    files: tuple[FileHash, ...]
    current: bool

    def to_json(self) -> dict[str, Any]:
        return {"generation": self.generation, "created": self.created,
                "origin": self.origin or None, "sources": list(self.sources),
                "backend": self.backend, "content": self.content or None,
                "outcome": self.outcome, "current": self.current,
                "files": [f.to_json() for f in self.files]}


def outcome_of(meta: GenerationMeta, current: int | None, pending: int | None) -> str:
    """Pending and in force win over what the record says (a generation rolled back
    to is in force again); otherwise the recorded outcome; else it was kept until a
    later apply replaced it."""
    if meta.generation == pending:
        return "pending confirm"
    if meta.generation == current:
        return "in force"
    if meta.outcome:
        return RECORDED.get(meta.outcome, meta.outcome)
    return "kept"


def _source(copy: Path) -> str | None:
    try:
        return str(json.loads(copy.with_suffix(".json").read_text())["path"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _files(store: StateStore, n: int, hash_nets: bool = False) -> tuple[FileHash, ...]:
    out = [FileHash(f"profiles/{p.name}", _sha256(p), p.stat().st_size)
           for p in store.profile_copies(n)]
    nets = store.nets_dir(n)
    if nets.is_dir():
        out += [FileHash(f"nets/{p.name}", _sha256(p) if hash_nets else None,
                         p.stat().st_size, _source(p))
                for p in sorted(nets.glob("*.nets")) if p.is_file() and not p.is_symlink()]
    return tuple(out)


def _entry(store: StateStore, n: int, current: int | None, pending: int | None) -> HistoryEntry:
    meta = store.meta(n)
    return HistoryEntry(n, meta.created, meta.origin, tuple(meta.sources), meta.backend,
                        meta.content, outcome_of(meta, current, pending), _files(store, n),
                        n == current)


def history(store: StateStore) -> list[HistoryEntry]:
    """Every recorded generation, oldest first."""
    current = store.current()
    pending = store.pending()
    p = pending.generation if pending else None
    return [_entry(store, n, current, p) for n in store.generations()]


def history_lines(entries: list[HistoryEntry], *, files: bool = True) -> list[str]:
    """`nodewall history` as a table (* marks the generation in force); `files`: the
    content digest and the profiles recorded, too wide for the TUI's dialog."""
    if not entries:
        return ["no generation recorded"]
    wide = f" {'outcome':<22} {'content':<12} profiles" if files else " outcome"
    lines = [f"  {'gen':>4}  {'time':<19}  {'origin':<8}{wide}"]
    for e in entries:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.created))
        line = f"{'*' if e.current else ' '} {e.generation:>4}  {when}  {e.origin or '-':<8} "
        if files:
            profiles = ", ".join(f"{f.name.split('/', 1)[1]}@{f.sha256[:8]}" for f in e.files
                                 if f.name.startswith("profiles/"))
            line += f"{e.outcome:<22} {(e.content or '-')[:12]:<12} {profiles}"
        else:
            line += e.outcome
        lines.append(line)
    return lines


def require_generation(store: StateStore, n: int) -> None:
    if n not in store.generations():
        kept = store.generations()
        span = f"{kept[0]}..{kept[-1]}" if kept else "none"
        raise NothingPending(f"generation {n} is not recorded (recorded: {span})",
                             hint="`nodewall history` lists them; old ones are pruned")


@dataclass(frozen=True)
class GenerationRecord:
    entry: HistoryEntry
    profiles: tuple[tuple[str, str], ...]  # (file name, text)
    rules: dict[str, dict]  # rule id -> recorded RuleMeta

    def to_json(self) -> dict[str, Any]:
        return {**self.entry.to_json(),
                "profiles": [{"name": n, "text": t} for n, t in self.profiles],
                "rules": [{"id": rid, **{k: m.get(k) for k in (
                    "policy", "direction", "index", "action", "tier", "summary", "loc")}}
                          for rid, m in sorted(self.rules.items())]}


def show(store: StateStore, n: int) -> GenerationRecord:
    require_generation(store, n)
    pending = store.pending()
    entry = _entry(store, n, store.current(), pending.generation if pending else None)
    texts = tuple((p.name, p.read_bytes()[:MAX_TEXT].decode("utf-8", "replace"))
                  for p in store.profile_copies(n))
    entry = replace(entry, files=_files(store, n, hash_nets=True))
    return GenerationRecord(entry, texts, store.meta(n).rules)


@dataclass(frozen=True)
class GenerationDiff:
    before: int
    after: int
    profile_diff: tuple[str, ...]  # unified diff lines of the profile copies
    files_changed: tuple[tuple[str, str | None, str | None], ...]  # (name, sha before, after)
    rules_added: tuple[tuple[str, dict], ...]
    rules_removed: tuple[tuple[str, dict], ...]
    backend: tuple[str, str]

    @property
    def empty(self) -> bool:
        return not (self.files_changed or self.rules_added or self.rules_removed)

    def to_json(self) -> dict[str, Any]:
        def rule(rid: str, m: dict) -> dict[str, Any]:
            return {"id": rid, "policy": m.get("policy"), "direction": m.get("direction"),
                    "action": m.get("action"), "summary": m.get("summary")}
        return {"from": self.before, "to": self.after,
                "backend": {"from": self.backend[0], "to": self.backend[1]},
                "files": [{"name": n, "from": a, "to": b} for n, a, b in self.files_changed],
                "profile_diff": list(self.profile_diff),
                "plan": {"rules_added": [rule(r, m) for r, m in self.rules_added],
                         "rules_removed": [rule(r, m) for r, m in self.rules_removed]}}


def diff(store: StateStore, before: int, after: int) -> GenerationDiff:
    """Profile-level (file contents) and plan-level (rule ids) differences."""
    require_generation(store, before)
    require_generation(store, after)
    a_files = {f.name: f for f in _files(store, before)}
    b_files = {f.name: f for f in _files(store, after)}
    changed = tuple(
        (name, _digest(store, before, a_files.get(name)), _digest(store, after, b_files.get(name)))
        for name in sorted(a_files.keys() | b_files.keys())
        if _differ(store, (before, a_files.get(name)), (after, b_files.get(name))))
    lines: list[str] = []
    for name, _a, _b in changed:
        if not name.startswith("profiles/"):
            continue
        old = _text(store.generation_dir(before) / name)
        new = _text(store.generation_dir(after) / name)
        lines += difflib.unified_diff(old, new, f"{before}/{name}", f"{after}/{name}",
                                      lineterm="")
    a_meta, b_meta = store.meta(before), store.meta(after)
    added = tuple((r, m) for r, m in sorted(b_meta.rules.items()) if r not in a_meta.rules)
    removed = tuple((r, m) for r, m in sorted(a_meta.rules.items()) if r not in b_meta.rules)
    return GenerationDiff(before, after, tuple(lines), changed, added, removed,
                          (a_meta.backend, b_meta.backend))


def _digest(store: StateStore, n: int, f: FileHash | None) -> str | None:
    if f is None:
        return None
    return f.sha256 or _sha256(store.generation_dir(n) / f.name)


def _differ(store: StateStore, a: tuple[int, FileHash | None],
            b: tuple[int, FileHash | None]) -> bool:
    """Whether two recorded files differ: absent on one side, sizes (no reading), then
    contents."""
    (na, fa), (nb, fb) = a, b
    if fa is None or fb is None:
        return True
    return fa.size != fb.size or _digest(store, na, fa) != _digest(store, nb, fb)


def _text(path: Path) -> list[str]:
    if not path.is_file():
        return []
    return path.read_bytes()[:MAX_TEXT].decode("utf-8", "replace").splitlines()
