"""How an apply changes each family's source maps, decided before anything is
written:

  keep       sources unchanged (same digest) and set bits compatible: untouched;
  empty      nothing of the family any more: its slot is emptied last;
  filedelta  a small nets_file / inline edit of host entries: changed in place
             (host_delta);
  delta      small sets (both sides at most DELTA_MAX) into maps that exist: the
             whole new content diffed against the live maps, changed in place;
  reload     fresh maps in the inactive generation (and then every other family
             that would change in place gets fresh maps too: one flip).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from nodewall.engine.dataplane.xdp.cidr_keys import PREFIX_BYTES, content_dict, width
from nodewall.engine.dataplane.xdp.host_delta import HostDelta, host_delta
from nodewall.engine.dataplane.xdp.maps import Pinned
from nodewall.engine.dataplane.xdp.source_merge import iter_batches
from nodewall.engine.dataplane.xdp.sources import source_digest, sources_record
from nodewall.engine.nets.baseline import BaselineStore
from nodewall.engine.nets.digests import FileDigests
from nodewall.engine.plan.desired import XdpState

DELTA_MAX = 65536  # tries at most this big (old and new) are updated in place
FAMILIES = (4, 6)


def set_count(xdp: XdpState, family: int) -> int:
    """The family's entries in the files of every set (inline CIDRs not counted)."""
    return sum(s.count_v4 if family == 4 else s.count_v6 for s in xdp.sets)


def has_inline(xdp: XdpState, family: int) -> bool:
    return any((":" in c) == (family == 6) for s in xdp.sets for c in s.inline)


def set_bits(xdp: XdpState) -> dict[str, str]:
    """bit -> the set's origin, as the metadata records it."""
    return {str(s.bit): s.origin for s in xdp.sets}


def bits_compatible(old: dict[str, str], new: dict[str, str]) -> bool:
    """No bit means another set than before (the live rule tables test old bits)."""
    return all(old.get(b) in (None, o) for b, o in new.items())


@dataclass
class FamilyPlan:
    family: int
    how: str  # keep / empty / filedelta / delta / reload
    record: dict[str, Any]  # the metadata's tries[family]: digest, count, max_entries, sources
    host_delta: HostDelta | None = None  # filedelta: the changes
    content: dict[bytes, int] | None = None  # delta: the whole new content


@dataclass(frozen=True)
class _Inputs:
    """What every family's decision reads."""

    p: Pinned
    xdp: XdpState
    old_gen: int | None  # None: a fresh program (nothing to change in place)
    compatible: bool
    baselines: BaselineStore | None
    digests: FileDigests


def plan_families(p: Pinned, xdp: XdpState, meta: dict[str, Any], old_gen: int | None,
                  baselines: BaselineStore | None,
                  digests: FileDigests) -> dict[int, FamilyPlan]:
    fresh = old_gen is None
    # an apply killed mid-way (meta "in_flight"): the maps match no record, reload all
    compatible = not fresh and not meta.get("in_flight") and \
        bits_compatible(meta.get("bits", {}), set_bits(xdp))
    inputs = _Inputs(p, xdp, old_gen, compatible, baselines, digests)
    tries = meta.get("tries", {})
    plans = {fam: _plan_family(inputs, fam, tries.get(str(fam), {})) for fam in FAMILIES}
    for fp in plans.values():
        if fp.how == "delta":  # in place only into maps that exist
            fp.content = content_dict(iter_batches(xdp.sets, fp.family), fp.family)
            if not delta_fits(p, fp.family, old_gen, fp.content):  # type: ignore[arg-type]
                fp.how = "reload"
    if fresh or any(fp.how == "reload" for fp in plans.values()):
        for fp in plans.values():  # the fresh generation gets fresh maps for what changed
            if fp.how == "delta":
                fp.how = "reload"
    return plans


def _plan_family(inputs: _Inputs, fam: int, old: dict[str, Any]) -> FamilyPlan:
    xdp = inputs.xdp
    digest = source_digest(xdp.sets, fam, inputs.digests)
    count = set_count(xdp, fam)
    record = {"digest": digest, "count": count, "max_entries": old.get("max_entries", 0),
              "sources": sources_record(xdp.sets, fam)}
    fp = FamilyPlan(fam, "reload", record)
    if inputs.compatible and old.get("digest") == digest:
        fp.how = "keep"
    elif inputs.old_gen is not None and count == 0 and not has_inline(xdp, fam):
        fp.how = "empty"
    elif inputs.compatible and inputs.baselines is not None and (hd := host_delta(
            inputs.p, fam, inputs.old_gen, xdp, old, inputs.baselines,  # type: ignore[arg-type]
            count)) is not None:
        fp.how, fp.host_delta = "filedelta", hd
    elif (inputs.compatible and count <= DELTA_MAX and old.get("count", 0) <= DELTA_MAX
          and 0 < count <= old.get("max_entries", 0)):
        fp.how = "delta"
    return fp


def delta_fits(p: Pinned, fam: int, gen: int, new: dict[bytes, int]) -> bool:
    """Do the maps that new's entries need (host hash, trie) exist in slot gen?"""
    full = PREFIX_BYTES[width(fam)]
    need = {k[:4] == full for k in new}
    for host in need:
        fd = p.inner_fd(fam, gen, host)
        if fd is None:
            return False
        os.close(fd)
    return True
