"""Decide, per desired ipset, how to bring the kernel there, and do it.

  create   the set does not exist: temp set, load, rename
  replace  full reload: temp set, load, swap (atomic for readers)
  delta    a small change: `add` / `del` of the difference only (adds first)
  none     nothing changed

A delta needs to know exactly what the live set holds.  That is a *manifest* per set
under /run/nodewall/<netns>/ipsets/ (tmpfs, so it disappears with the kernel's sets
at reboot): the inline members, the files and their sizes as loaded, and the entry
count the kernel reported afterwards.  The file part of a delta comes from the
nets_file baselines of the previous generation (engine.nets.baseline, memcmp
speed); sync never writes that store — the transaction records the new generation's
copies itself.  Whenever anything is uncertain (no manifest, entry count drifted,
baseline missing, change too large, removals a second source may still cover) the
answer is a full replace, which is always correct.
"""
from __future__ import annotations

import contextlib
import ipaddress
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from nodewall.engine.dataplane.ipsets.load import apply_delta, full_load
from nodewall.engine.dataplane.ipsets.observe import ObservedSet, observe, observe_one
from nodewall.engine.nets.baseline import BaselineStore, delta_members
from nodewall.engine.nets.digests import FileDigests
from nodewall.engine.plan.desired import IpSetSpec
from nodewall.engine.system import netns

Action = Literal["create", "replace", "delta", "none"]
RUN_ROOT = Path("/run/nodewall")
DELTA_MIN = 10000  # a delta up to max(DELTA_MIN, count / 4) members; above: reload


def manifest_dir() -> Path:
    return RUN_ROOT / netns.scope_name() / "ipsets"


@dataclass(frozen=True)
class Manifest:
    kind: str
    family: int
    inline: tuple[str, ...]  # normalized, sorted
    members: tuple[str, ...]  # list:set
    files: tuple[tuple[str, int, str], ...]  # (absolute path, size, sha256) as loaded
    entries: int  # what the kernel reported after the load


def _norm(cidrs: Sequence[str]) -> tuple[str, ...]:
    return tuple(sorted({str(ipaddress.ip_network(c, strict=False)) for c in cidrs}))


def load_manifest(name: str, root: Path | None = None) -> Manifest | None:
    path = (root or manifest_dir()) / f"{name}.json"
    try:
        d = json.loads(path.read_text())
        return Manifest(d["kind"], int(d["family"]), tuple(d["inline"]), tuple(d["members"]),
                        tuple((str(p), int(s), str(h)) for p, s, h in d["files"]),
                        int(d["entries"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save_manifest(name: str, m: Manifest, root: Path | None = None) -> None:
    root = root or manifest_dir()
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{name}.json.tmp"
    tmp.write_text(json.dumps(asdict(m)))
    os.replace(tmp, root / f"{name}.json")


def drop_manifest(name: str, root: Path | None = None) -> None:
    with contextlib.suppress(OSError):
        ((root or manifest_dir()) / f"{name}.json").unlink()


@dataclass(frozen=True)
class SetChange:
    name: str
    action: Action
    reason: str
    added: tuple[str, ...] = ()  # delta only
    removed: tuple[str, ...] = ()
    expected: int = 0  # members expected after the change
    origin: str = ""

    def describe(self) -> list[str]:
        what = f"ipset {self.name}" + (f" ({self.origin})" if self.origin else "")
        if self.action == "create":
            return [f"+ {what}: {self.expected} members"]
        if self.action == "replace":
            return [f"~ {what}: reload {self.expected} members ({self.reason})"]
        if self.action == "delta":
            return ([f"+ {what} {m}" for m in self.added]
                    + [f"- {what} {m}" for m in self.removed])
        return []


@dataclass(frozen=True)
class IpsetPlan:
    changes: tuple[SetChange, ...]
    stale: tuple[str, ...]  # nw- sets no spec wants (destroy_unused after iptables)

    def describe(self) -> list[str]:
        lines = [line for c in self.changes for line in c.describe()]
        return lines + [f"- ipset {n}" for n in self.stale]

    def stats(self) -> dict[str, int]:
        return {"sets_added": sum(c.action == "create" for c in self.changes),
                "sets_removed": len(self.stale),
                "set_members_added": sum(len(c.added) if c.action == "delta" else
                                         c.expected if c.action != "none" else 0
                                         for c in self.changes),
                "set_members_removed": sum(len(c.removed) for c in self.changes)}


def _files(spec: IpSetSpec) -> tuple[str, ...]:
    return tuple(str(Path(p).absolute()) for p in spec.files)


def _same_contents(spec: IpSetSpec, man: Manifest, digests: FileDigests) -> bool:
    """The set's nets_files hold what was loaded, whatever paths name them now (the
    same file by another path, a generation's own copy after a restore or panic).
    Sizes first: a file of another size holds other bytes, no need to hash it."""
    try:
        if sorted(os.stat(f).st_size for f in _files(spec)) != sorted(
                size for _p, size, _h in man.files):
            return False
        now = sorted(digests.sha256(f) for f in _files(spec))
    except OSError:
        return False
    return now == sorted(h for _p, _s, h in man.files)


def _delta(spec: IpSetSpec, live: ObservedSet, man: Manifest,
           baselines: BaselineStore | None, digests: FileDigests) -> SetChange:
    def full(reason: str) -> SetChange:
        return SetChange(spec.name, "replace", reason, expected=spec.expected_count,
                         origin=spec.origin)

    if spec.kind == "list:set":
        if tuple(spec.members) == man.members and live.entries == len(man.members):
            return SetChange(spec.name, "none", "unchanged", origin=spec.origin)
        return full("list:set members changed")
    new_inline = _norm(spec.inline)
    same_paths = tuple(p for p, _s, _h in man.files) == _files(spec)
    if same_paths and baselines is not None:  # the baselines decide without hashing
        ch = _file_delta(spec, live, man, baselines, new_inline, full)
        if ch is not None:
            return ch
    if _same_contents(spec, man, digests):
        return _inline_delta(spec, live, man, new_inline, full)
    if not same_paths:
        return full("other nets_files")
    return full("no baseline of the nets_file as loaded")


def _file_delta(spec: IpSetSpec, live: ObservedSet, man: Manifest, baselines: BaselineStore,
                new_inline: tuple[str, ...], full) -> SetChange | None:
    """The change from the nets_files' deltas against the previous generation's copies
    (the files of the manifest, by the same paths); None when a copy of a file as
    loaded is missing."""
    add = set(new_inline) - set(man.inline)
    rem = set(man.inline) - set(new_inline)
    if rem and spec.files:
        return full("inline members removed from a set that also has nets_files")
    for path, size, _sha in man.files:
        base = baselines.get(Path(path))
        if base is None or base.copy_path.stat().st_size != size:
            return None
        delta = baselines.delta(Path(path))
        if delta is None:
            return full("nets_file changed too much")
        if delta.unchanged:
            continue
        f_add, f_rem = delta_members(delta, spec.family)
        if f_rem and len(man.files) > 1:
            return full("members removed from one of several nets_files")
        add.update(m for m in f_add if m not in man.inline)  # inline ones are in already
        rem.update(m for m in f_rem if m not in new_inline)
    both = add & rem
    add, rem = add - both, rem - both
    if not add and not rem:
        return SetChange(spec.name, "none", "unchanged", origin=spec.origin)
    if len(add) + len(rem) > max(DELTA_MIN, spec.expected_count // 4):
        return full(f"{len(add) + len(rem)} members changed")
    if live.maxelem is not None and live.entries + len(add) > live.maxelem:
        return full("the set must grow past its maxelem")
    return SetChange(spec.name, "delta", "small change", tuple(sorted(add)),
                     tuple(sorted(rem)), spec.expected_count, spec.origin)


def _inline_delta(spec: IpSetSpec, live: ObservedSet, man: Manifest,
                  new_inline: tuple[str, ...], full) -> SetChange:
    """The files hold what was loaded: only inline members may differ."""
    add = set(new_inline) - set(man.inline)
    rem = set(man.inline) - set(new_inline)
    if not add and not rem:
        return SetChange(spec.name, "none", "unchanged", origin=spec.origin)
    if rem and spec.files:
        return full("inline members removed from a set that also has nets_files")
    return SetChange(spec.name, "delta", "small change", tuple(sorted(add)),
                     tuple(sorted(rem)), spec.expected_count, spec.origin)


def plan(specs: Sequence[IpSetSpec], baselines: BaselineStore | None = None,
         observed: dict[str, ObservedSet] | None = None,
         manifests: Path | None = None, digests: FileDigests | None = None) -> IpsetPlan:
    """What sync() would do (reads set headers and nets_file deltas only)."""
    digests = digests if digests is not None else FileDigests()
    observed = observe() if observed is None else observed
    changes = []
    for spec in specs:
        live = observed.get(spec.name)
        man = load_manifest(spec.name, manifests)
        if live is None:
            ch = SetChange(spec.name, "create", "new", expected=spec.expected_count
                           if spec.kind == "hash:net" else len(spec.members), origin=spec.origin)
        elif man is None or (man.kind, man.family, man.entries) != (
                spec.kind, spec.family, live.entries) or live.kind != spec.kind:
            reason = ("no record of what the live set holds" if man is None else
                      "the live set was changed outside nodewall"
                      if live.entries != man.entries else "type or family changed")
            ch = SetChange(spec.name, "replace", reason, expected=spec.expected_count,
                           origin=spec.origin)
        else:
            ch = _delta(spec, live, man, baselines, digests)
        changes.append(ch)
    wanted = {s.name for s in specs}
    stale = tuple(sorted(n for n in observed if n not in wanted))
    return IpsetPlan(tuple(changes), stale)


@dataclass(frozen=True)
class SyncReport:
    plan: IpsetPlan
    lines_loaded: int  # member lines streamed by full loads


def _ordered(specs: Sequence[IpSetSpec]) -> list[IpSetSpec]:
    """hash:net sets first: a list:set can only hold sets that exist."""
    return sorted(specs, key=lambda s: s.kind == "list:set")


def sync(specs: Sequence[IpSetSpec], baselines: BaselineStore | None = None,
         manifests: Path | None = None, *, observed: dict[str, ObservedSet] | None = None,
         planned: IpsetPlan | None = None, digests: FileDigests | None = None) -> SyncReport:
    """Create or update every desired set (member sets before list:sets).  Sets no
    spec wants are left for destroy_unused(), once iptables no longer uses them.
    `observed` / `planned`: what the caller already read and planned in this same
    transaction (listing a 1M-member set's header makes the kernel walk it)."""
    specs = _ordered(specs)
    observed = observe() if observed is None else observed
    digests = digests if digests is not None else FileDigests()
    p = planned if planned is not None else plan(specs, baselines, observed, manifests,
                                                 digests)
    by_name = {s.name: s for s in specs}
    lines = 0
    for ch in p.changes:
        spec = by_name[ch.name]
        if ch.action == "none":
            continue
        drop_manifest(spec.name, manifests)  # unknown content until this succeeds
        live = observed.get(spec.name)
        if ch.action == "delta" and live is not None:
            apply_delta(spec.name, ch.added, ch.removed)
            # Exact unless another source already held an added member; a wrong count
            # only makes the next sync reload in full.  (Listing even the header of a
            # 1M-member set costs the kernel a walk over it.)
            count = live.entries + len(ch.added) - len(ch.removed)
        else:
            lines += full_load(spec, live).lines
            after = observe_one(spec.name)
            count = after.entries if after else 0
        save_manifest(spec.name, Manifest(
            spec.kind, spec.family, _norm(spec.inline) if spec.kind == "hash:net" else (),
            tuple(spec.members),
            tuple((f, os.stat(f).st_size, digests.sha256(f)) for f in _files(spec)), count),
            manifests)
    return SyncReport(p, lines)
