"""Filling the pinned maps for one apply, generation by generation.

The program reads nw_active (0 or 1) once per packet and then only that
generation's rule tables and source maps.  Rule tables are never rewritten in
place (an array value is copied without a lock): any change goes to the inactive
generation, then one update of nw_active flips every packet to it.  Source maps
that stay (keep, and in-place deltas) serve both generations; in-place changes
upsert each entry with old | new bits first and take the old bits away only after
the flip (compatible bits never mean two sets).

fill() steps, in order: counter slots; each family's plan (family_plan); the
generation to write (Switch); stale tables cleared; each family's maps written;
the rule tables; the flip; emptied families; deletes and fix-ups; the metadata.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from nodewall.engine.dataplane.xdp.cidr_keys import batches_from_dict
from nodewall.engine.dataplane.xdp.family_plan import (
    FAMILIES,
    FamilyPlan,
    has_inline,
    plan_families,
    set_bits,
    set_count,
)
from nodewall.engine.dataplane.xdp.layout import NW_IFARR_SLOTS, BuildConfig
from nodewall.engine.dataplane.xdp.map_io import (
    delete_content,
    dump_content,
    load,
    write_batches,
    write_content,
)
from nodewall.engine.dataplane.xdp.maps import Pinned, create_hosts, create_trie
from nodewall.engine.dataplane.xdp.rule_rows import (
    allocate_slots,
    counted_ids,
    failsafe_entries,
    iface_value,
)
from nodewall.engine.dataplane.xdp.source_merge import iter_batches
from nodewall.engine.nets.baseline import BaselineStore
from nodewall.engine.nets.digests import FileDigests
from nodewall.engine.plan.desired import XdpInterface, XdpState

HOST_AND_TRIE = (False, True)


@dataclass(frozen=True)
class Switch:
    """Which generation this apply writes, and whether nw_active flips to it."""

    fresh: bool  # a new program: generation 0, written before anything sees it
    old_gen: int | None  # the live generation (None when fresh)
    gen: int
    flip: bool

    @property
    def flips_live(self) -> bool:
        return self.flip and not self.fresh


@dataclass
class Pending:
    """What an in-place change of a family does after the flip."""

    family: int
    deletes: list[bytes]  # LPM-style keys to delete
    fixups: dict[bytes, int]  # final values of entries that lose old bits


def fill(p: Pinned, cfg: BuildConfig, xdp: XdpState, meta: dict[str, Any],
         targets: dict[str, int], fresh: bool, baselines: BaselineStore | None,
         digests: FileDigests) -> None:
    """Write xdp into the pinned maps (fresh: into a new program's empty maps) and
    update meta (gen, slots, actions, bits, tries) to match."""
    old_gen = None if fresh else p.active_gen()
    slots = _assign_slots(p, cfg, xdp, meta, fresh)
    plans = plan_families(p, xdp, meta, old_gen, baselines, digests)
    ifaces: dict[str, XdpInterface] = {}
    for i in xdp.interfaces:
        ifaces.setdefault(i.iface, i)
    values = {name: iface_value(cfg, ifaces[name], slots) for name in targets}
    sw = _switch(p, cfg, plans, old_gen, targets, values)
    if sw.flips_live:
        for idx, g in p.iface_keys():  # stale tables of two applies ago
            if g == sw.gen:
                p.del_iface(idx, g)
    pending = [d for fp in plans.values() if (d := _write_family(p, fp, sw, xdp)) is not None]
    for name, idx in targets.items():
        p.put_iface(idx, sw.gen, values[name])
    _activate(p, sw)
    for fp in plans.values():
        if fp.how == "empty":
            for host in HOST_AND_TRIE:
                p.set_inner(fp.family, sw.gen, None, host)
            fp.record["max_entries"] = 0
    for d in pending:
        _finish(p, d, sw.gen)
    meta["gen"] = sw.gen
    meta["slots"] = slots
    meta["actions"] = {r.rule_id: r.action for i in xdp.interfaces for r in i.rules}
    meta["actions"].update({rid: "failsafe" for i in xdp.interfaces
                            for _, _, rid in failsafe_entries(i)})
    meta["bits"] = set_bits(xdp)
    meta["tries"] = {str(fp.family): fp.record for fp in plans.values()}


def _assign_slots(p: Pinned, cfg: BuildConfig, xdp: XdpState, meta: dict[str, Any],
                  fresh: bool) -> dict[str, int]:
    """Counter slots (per rule id and interface): surviving keys keep theirs; a slot
    changing hands is zeroed."""
    old = meta.get("slots", {})
    slots = allocate_slots(counted_ids(xdp), old if not fresh else {}, cfg.max_slots)
    for rid, s in slots.items():
        if old.get(rid) != s:
            p.zero_slot(s)
    return slots


def _switch(p: Pinned, cfg: BuildConfig, plans: dict[int, FamilyPlan], old_gen: int | None,
            targets: dict[str, int], values: dict[str, Any]) -> Switch:
    if old_gen is None:
        return Switch(True, None, 0, True)
    flip = (any(fp.how == "reload" for fp in plans.values())
            or tables_changed(p, cfg, old_gen, targets, values))
    return Switch(False, old_gen, 1 - old_gen if flip else old_gen, flip)


def tables_changed(p: Pinned, cfg: BuildConfig, gen: int, targets: dict[str, int],
                   values: dict[str, Any]) -> bool:
    """Does generation gen hold other rule tables than values (or more of them)?"""
    for name, idx in targets.items():
        cur = p.get_iface(cfg, idx, gen)
        if cur is None or bytes(cur) != bytes(values[name]):
            return True
    return any(g == gen and idx not in targets.values() for idx, g in p.iface_keys())


def _write_family(p: Pinned, fp: FamilyPlan, sw: Switch, xdp: XdpState) -> Pending | None:
    """Write one family's maps as planned; return what waits for the flip."""
    fam = fp.family
    if fp.how == "reload":
        reload(p, fam, sw.gen, xdp, fp.record)
        return None
    pending = None
    if fp.how == "delta":  # in place in the live maps: adds now, deletes last
        assert fp.content is not None and sw.old_gen is not None
        pending = delta_adds(p, fam, sw.old_gen, fp.content)
    elif fp.how == "filedelta":  # the same, for the host entries a nets_file edit touched
        assert fp.host_delta is not None and sw.old_gen is not None
        if fp.host_delta.adds:
            with p.inner_maps(fam, sw.old_gen) as fds:
                write_content(fds, fp.host_delta.adds, fam)
        pending = Pending(fam, fp.host_delta.deletes, fp.host_delta.fixups)
    if fp.how in ("keep", "delta", "filedelta") and sw.flips_live:
        for host in HOST_AND_TRIE:  # the same maps serve the new generation
            fd = p.inner_fd(fam, sw.old_gen, host)  # type: ignore[arg-type]
            p.set_inner(fam, sw.gen, fd, host)
            if fd is not None:
                os.close(fd)
    return pending


def _activate(p: Pinned, sw: Switch) -> None:
    """Flip every packet to the new generation, then drop what only the old one used."""
    if sw.flips_live:
        old_gen: int = sw.old_gen  # type: ignore[assignment]
        p.set_active(sw.gen)  # every packet from here on sees the new generation
        for idx, g in p.iface_keys():
            if g == old_gen and idx >= NW_IFARR_SLOTS:
                p.del_iface(idx, g)  # hash entries go (RCU); array slots stay until
                # the next flip clears them: a packet still on the old gen reads them
        for fam in FAMILIES:
            for host in HOST_AND_TRIE:
                p.set_inner(fam, old_gen, None, host)
    elif sw.fresh:
        p.set_active(0)


def _finish(p: Pinned, d: Pending, gen: int) -> None:
    """After the flip: entries take their final values, gone keys are deleted."""
    with p.inner_maps(d.family, gen) as fds:
        write_content(fds, d.fixups, d.family)
        delete_content(fds[True], fds[False], d.deletes, d.family)


def _max_entries(n: int) -> int:
    return max(1024, n + n // 4 + 1024)


def reload(p: Pinned, fam: int, gen: int, xdp: XdpState, record: dict[str, Any]) -> None:
    """Fresh maps for the family in slot gen: the host hash and the trie, each
    created on its first entry (a family without host entries has no hash, one
    without shorter prefixes no trie: the program skips an empty slot)."""
    count = set_count(xdp, fam)
    for host in HOST_AND_TRIE:
        p.set_inner(fam, gen, None, host)
    if count == 0 and not has_inline(xdp, fam):
        record["max_entries"] = 0
        return
    size = _max_entries(count)
    fds: dict[bool, int] = {}

    def fd_for(host: bool) -> int:
        if host not in fds:
            fds[host] = create_hosts(fam, size) if host else create_trie(fam, size)
        return fds[host]

    try:
        load(fd_for, iter_batches(xdp.sets, fam), fam)
        for host, fd in fds.items():
            p.set_inner(fam, gen, fd, host)  # one update swaps each map in
    finally:
        for fd in fds.values():
            os.close(fd)
    record["max_entries"] = size


def delta_adds(p: Pinned, fam: int, gen: int, new: dict[bytes, int]) -> Pending:
    """Upsert new/changed entries now, each with the OR of its old and new bits (the
    rule tables still live test the old bits, the next generation's the new ones;
    compatible bits never mean two sets).  A shorter prefix added or removed changes
    the covering bits of the host entries under it: new holds them recomputed, so
    they are among the changes.  Return the keys to delete afterwards and the final
    values of the entries that must lose old bits then."""
    with p.inner_maps(fam, gen) as fds:
        old = dump_content(fds[True], fds[False], fam)
        adds = {k: v | old.get(k, 0) for k, v in new.items() if old.get(k) != v}
        write_batches(fds, batches_from_dict(adds, fam), fam)
    fixups = {k: v for k, v in new.items() if k in old and old[k] & ~v}
    return Pending(fam, [k for k in old if k not in new], fixups)
