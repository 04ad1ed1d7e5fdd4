"""nodewall's nft sets: declared with libnftables, filled by one hand-written netlink
batch (engine.dataplane.nftables.netlink), before the rules that use them.

Each set holds the merged ranges of its members (engine.dataplane.nftables.intervals);
a list:set is one set with the union of its members' ranges.  What was loaded is
recorded per set under /run/nodewall/<netns>/nftsets/<name>.ranges (tmpfs: gone with
the kernel's sets at reboot), with what it was made of in <name>.source (inline
members; the nets_file's path, size and sha256), so the next apply compares range
lists and sends only the difference (deletes and adds in one transaction) when it is
small.  A small edit of a one-file IPv4 set's nets_file is applied to the recorded
ranges directly (engine.dataplane.nftables.file_delta), without merging the file:

  create   the set does not exist: declare it, fill it
  replace  no record, or a large change: flush + fill in one transaction
  delta    delete the ranges that went, add the new ones, in one transaction
  none     same ranges
"""
from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from nodewall.engine.dataplane.nftables import file_delta, intervals, netlink
from nodewall.engine.dataplane.nftables.observe import NftObserved, run
from nodewall.engine.dataplane.nftables.render import FAMILY, TABLE, set_decl
from nodewall.engine.nets.baseline import BaselineStore
from nodewall.engine.nets.digests import FileDigests
from nodewall.engine.plan.desired import Family, IpSetSpec
from nodewall.engine.system import netns
from nodewall.engine.system.files import atomic_write_text

Action = Literal["create", "replace", "delta", "none"]
RUN_ROOT = Path("/run/nodewall")
DELTA_MIN = 10000  # a delta up to max(DELTA_MIN, ranges / 4) ranges; above: reload
INLINE_MAX = 4096  # sets up to this many ranges change inside the ruleset batch
CONTENT_CHECK_MAX = 65536  # sets of up to this many ranges are compared range by range


def manifest_dir() -> Path:
    return RUN_ROOT / netns.scope_name() / "nftsets"


def manifest_path(name: str, root: Path | None = None) -> Path:
    return (root or manifest_dir()) / f"{name}.ranges"


def source_path(name: str, root: Path | None = None) -> Path:
    return (root or manifest_dir()) / f"{name}.source"


def drop_manifest(name: str, root: Path | None = None) -> None:
    for path in (source_path(name, root), manifest_path(name, root)):
        with contextlib.suppress(OSError):
            path.unlink()


def drop_all_manifests(root: Path | None = None) -> None:
    for pattern in ("*.source", "*.ranges"):
        for p in (root or manifest_dir()).glob(pattern):
            with contextlib.suppress(OSError):
                p.unlink()


def _load_source(name: str, root: Path | None) -> dict | None:
    try:
        data = json.loads(source_path(name, root).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@dataclass(frozen=True)
class SetChange:
    spec: IpSetSpec
    action: Action
    reason: str
    ranges: list[int] = field(default_factory=list, repr=False)  # all, after the change
    added: list[int] = field(default_factory=list, repr=False)  # delta
    removed: list[int] = field(default_factory=list, repr=False)
    total: int = 0  # ranges after the change
    before: int = -1  # ranges the live set holds, when recorded (-1: not known)
    source: dict | None = field(default=None, repr=False)  # file_delta.source_record
    source_edited: bool = False  # unchanged ranges from an edited file (record the source)

    def describe(self) -> list[str]:
        s = self.spec
        what = f"nft set {s.name}" + (f" ({s.origin})" if s.origin else "")
        if self.action == "create":
            return [f"+ {what}: {self.total} ranges"]
        if self.action == "replace":
            return [f"~ {what}: reload {self.total} ranges ({self.reason})"]
        if self.action == "delta":
            return ([f"+ {what} {intervals.to_text(r, s.family)}" for r in self.added]
                    + [f"- {what} {intervals.to_text(r, s.family)}" for r in self.removed])
        return []


@dataclass(frozen=True)
class SetPlan:
    changes: tuple[SetChange, ...]
    stale: tuple[str, ...]  # sets no spec wants (deleted with the ruleset batch)

    def describe(self) -> list[str]:
        return [x for c in self.changes for x in c.describe()] + \
            [f"- nft set {n}" for n in self.stale]

    def stats(self) -> dict[str, int]:
        return {"sets_added": sum(c.action == "create" for c in self.changes),
                "sets_removed": len(self.stale),
                "set_members_added": sum(len(c.added) if c.action == "delta" else
                                         len(c.ranges) if c.action != "none" else 0
                                         for c in self.changes),
                "set_members_removed": sum(len(c.removed) for c in self.changes)}


def desired_ranges(spec: IpSetSpec, by_name: dict[str, IpSetSpec]) -> list[int]:
    if spec.kind == "list:set":
        return intervals.member_ranges(spec, [by_name[m] for m in spec.members])
    return intervals.member_ranges(spec)


def plan(specs: Sequence[IpSetSpec], observed: NftObserved,
         manifests: Path | None = None, baselines: BaselineStore | None = None,
         digests: FileDigests | None = None) -> SetPlan:
    """baselines: the nets_files of the generation in place (small edits of a one-file
    IPv4 set then change its recorded ranges without merging the file again)."""
    by_name = {s.name: s for s in specs}
    digests = digests or FileDigests()
    changes = []
    for spec in specs:
        source = file_delta.source_record(spec, digests) if spec.kind == "hash:net" else None
        if spec.name not in observed.sets:
            ranges = desired_ranges(spec, by_name)
            changes.append(SetChange(spec, "create", "new", ranges, total=len(ranges),
                                     source=source))
            continue
        old = intervals.load(manifest_path(spec.name, manifests), spec.family)
        if old is None:
            ranges = desired_ranges(spec, by_name)
            changes.append(SetChange(spec, "replace", "no record of what the live set holds",
                                     ranges, total=len(ranges), source=source))
            continue
        recorded = _load_source(spec.name, manifests)
        quick = file_delta.file_delta_ranges(spec, old, recorded, baselines, digests) \
            if baselines is not None and source is not None else None
        if quick is not None:
            ranges, add, rem = quick.ranges, quick.added, quick.removed
        else:
            ranges = desired_ranges(spec, by_name)
            add, rem = intervals.diff(old, ranges)
        change = _change(spec, ranges, add, rem, len(old), source)
        if change.action == "none" and source is not None and source != recorded:
            # the file changed but not the ranges: record what they are now made of,
            # or the next small edit finds the record stale and merges the whole file
            change = replace(change, source_edited=True)
        changes.append(change)
    wanted = set(by_name)
    return SetPlan(tuple(changes), tuple(sorted(n for n in observed.sets if n not in wanted)))


def _change(spec: IpSetSpec, ranges: list[int], add: list[int], rem: list[int],
            before: int, source: dict | None) -> SetChange:
    if not add and not rem:
        change = SetChange(spec, "none", "unchanged", total=len(ranges), before=before,
                           source=source)
        ranges.clear()
        return change
    if len(add) + len(rem) > max(DELTA_MIN, len(ranges) // 4):
        return SetChange(spec, "replace", f"{len(add) + len(rem)} ranges changed",
                         ranges, total=len(ranges), before=before, source=source)
    return SetChange(spec, "delta", "small change", ranges, add, rem,
                     total=len(ranges), before=before, source=source)


def inline(change: SetChange) -> bool:
    """Small enough to go as nft text into the apply's one ruleset batch: nft then
    reads the set's current elements (for its interval checks) and parses every range
    it sends, which is cheap up to INLINE_MAX ranges and slow for a big set, so the
    live set must be known to be small too (a new one is empty)."""
    if change.action == "none" or change.total > INLINE_MAX:
        return False
    return change.action == "create" or 0 <= change.before <= INLINE_MAX


def _elements_cmd(verb: str, name: str, ranges: list[int], family: Family) -> list[str]:
    if not ranges:
        return []
    body = ", ".join(intervals.to_text(r, family) for r in ranges)
    return [f"{verb} element {FAMILY} {TABLE} {name} {{ {body} }}"]


def commands(changes: Sequence[SetChange]) -> list[str]:
    """nft commands that declare and fill `changes` (inline ones), for the ruleset
    batch: before any rule, so the rules of the same transaction can use them."""
    out: list[str] = []
    for c in changes:
        name, fam = c.spec.name, c.spec.family
        if c.action == "create":
            out.append(f"add set {FAMILY} {TABLE} {name} {set_decl(c.spec)}")
        if c.action == "replace":
            out.append(f"flush set {FAMILY} {TABLE} {name}")
        if c.action == "delta":
            out += _elements_cmd("delete", name, c.removed, fam)
            out += _elements_cmd("add", name, c.added, fam)
        else:
            out += _elements_cmd("add", name, c.ranges, fam)
    return out


def forget(changes: Sequence[SetChange], manifests: Path | None = None) -> None:
    """Before a transaction that changes these sets: their content is unknown until it
    is in."""
    for c in changes:
        drop_manifest(c.spec.name, manifests)


def record(changes: Sequence[SetChange], manifests: Path | None = None) -> None:
    """After the transaction: what each set now holds (and what it was made of)."""
    for c in changes:
        intervals.save(manifest_path(c.spec.name, manifests), c.ranges, c.spec.family)
        record_source(c, manifests)


def record_source(change: SetChange, manifests: Path | None = None) -> None:
    if change.source is not None:
        atomic_write_text(source_path(change.spec.name, manifests), json.dumps(change.source))


def record_edited_sources(changes: Sequence[SetChange], manifests: Path | None = None) -> None:
    """After the transaction: the unchanged sets whose file was edited (same ranges)
    record what their ranges are now made of."""
    for c in changes:
        if c.source_edited:
            record_source(c, manifests)


def sync(todo: Sequence[SetChange], observed: NftObserved,
         manifests: Path | None = None) -> None:
    """Big sets, streamed: declare the missing ones (one nft batch; no rule uses a new
    set yet, so packets do not see it), then change every set's elements in ONE
    netlink transaction, then record what each set now holds."""
    if not todo:
        return
    creates = [c.spec for c in todo if c.action == "create"]
    if creates or not observed.present:
        run("\n".join([f"add table {FAMILY} {TABLE}"] + [
            f"add set {FAMILY} {TABLE} {s.name} {set_decl(s)}" for s in creates]),
            "declare sets")
    batch = netlink.Batch(TABLE)
    forget(todo, manifests)
    for c in todo:
        fam = c.spec.family
        if c.action == "delta":
            if c.removed:
                batch.set_elements(c.spec.name, netlink.elements(c.removed, fam), delete=True)
            if c.added:
                batch.set_elements(c.spec.name, netlink.elements(c.added, fam))
        else:
            if c.action == "replace":
                batch.flush_set(c.spec.name)
            batch.set_elements(c.spec.name, netlink.elements(c.ranges, fam))
    batch.send()
    record(todo, manifests)


def family_of(name: str) -> Family:
    """nodewall's set names carry their family: nw-n4-…, nw-sn6-…, nw-l4-…"""
    return 6 if name.split("-")[1].endswith("6") else 4


def content_drift(name: str, manifests: Path | None = None) -> str | None:
    """Why set `name` no longer holds what nodewall loaded, or None: its elements
    (one netlink dump) against the record of the last load, when that record has at
    most CONTENT_CHECK_MAX ranges (a larger set is checked for presence only)."""
    path = manifest_path(name, manifests)
    family = family_of(name)
    try:
        size = path.stat().st_size
    except OSError:
        return None  # no record: the next apply reloads it
    if size // (8 if family == 4 else 32) > CONTENT_CHECK_MAX:
        return None
    loaded = intervals.load(path, family) or []
    live = intervals.merge(netlink.ranges_of(netlink.set_elements(TABLE, name)), family)
    if live == loaded:
        return None
    if len(live) != len(loaded):
        return f"was changed outside nodewall ({len(live)} ranges, applied {len(loaded)})"
    return "was changed outside nodewall (other members)"
