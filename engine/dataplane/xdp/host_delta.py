"""Small nets_file / inline edits as in-place changes of a family's host hash: the
members each set gained and lost (from the sources recorded in the metadata and the
nets_file deltas against the previous generation's copies), turned into host-entry
upserts and deletes that keep or_covering_bits' rule."""
from __future__ import annotations

import ctypes
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nodewall.engine.dataplane.xdp import bpf_syscall as bpf
from nodewall.engine.dataplane.xdp.cidr_keys import is_family, width
from nodewall.engine.dataplane.xdp.maps import Pinned
from nodewall.engine.dataplane.xdp.source_merge import or_covering_bits
from nodewall.engine.nets.baseline import BaselineStore, delta_members
from nodewall.engine.plan.desired import XdpSetSource, XdpState

FILE_DELTA_MAX = 65536  # host entries changed in place from nets_file deltas, at most


@dataclass
class HostDelta:
    """The in-place change of a family's host hash."""

    adds: dict[bytes, int]  # upserts now, each with old | new bits
    fixups: dict[bytes, int]  # final values, written after the flip
    deletes: list[bytes]  # keys deleted after the flip


@dataclass
class MemberChanges:
    gained: dict[int, int]  # host address -> bits gained
    lost: dict[int, int]  # host address -> bits lost


class _Unknown(Exception):
    """The change is not known for sure, or not host entries only: reload."""


def _nets(cidrs: Any) -> set[str]:
    return {str(ipaddress.ip_network(c, strict=False)) for c in cidrs}


def _set_members(s: XdpSetSource, r: dict[str, Any], fam: int,
                 baselines: BaselineStore) -> tuple[set[str], set[str]]:
    """(members added, members removed) of one set against its record r."""
    files = [str(Path(f).absolute()) for f in s.files]
    if [f for f, _ in r["files"]] != files:
        raise _Unknown
    new_inline = _nets(c for c in s.inline if is_family(c, fam))
    old_inline = _nets(r["inline"])  # recorded per family
    add, rem = new_inline - old_inline, old_inline - new_inline
    if rem and files:  # a file may still hold it
        raise _Unknown
    for path, size in r["files"]:
        base = baselines.get(Path(path))
        if base is None or base.copy_path.stat().st_size != size:
            raise _Unknown
        delta = baselines.delta(Path(path))
        if delta is None:
            raise _Unknown
        if delta.unchanged:
            continue
        f_add, f_rem = delta_members(delta, fam)
        if f_rem and len(files) > 1:  # another of the set's files may hold it
            raise _Unknown
        add.update(f_add)
        rem.update(m for m in f_rem if m not in new_inline)
    return add, rem - add


def member_changes(xdp: XdpState, fam: int, rec: dict[str, Any],
                   baselines: BaselineStore) -> MemberChanges | None:
    """Host address -> bits gained, and -> bits lost, between the sources recorded in
    the metadata (rec) and xdp's.  None when that is not known for sure or not host
    entries only (a shorter prefix changes the covering bits of every host under it:
    the caller reloads the family)."""
    w = width(fam)
    if set(rec) != {str(s.bit) for s in xdp.sets}:
        return None
    out = MemberChanges({}, {})
    try:
        for s in xdp.sets:
            add, rem = _set_members(s, rec[str(s.bit)], fam, baselines)
            bit = 1 << s.bit
            for members, bits in ((add, out.gained), (rem, out.lost)):
                for m in members:
                    net = ipaddress.ip_network(m)
                    if net.prefixlen != w:
                        return None
                    a = int(net.network_address)
                    bits[a] = bits.get(a, 0) | bit
            if len(out.gained) + len(out.lost) > FILE_DELTA_MAX:
                return None
    except (_Unknown, OSError, ValueError, KeyError, TypeError):
        return None
    return out


def _lookups(fds: dict[bool, int | None], addrs: list[int],
             fam: int) -> tuple[dict[int, int], dict[int, int]]:
    """(host -> its trie's longest match (its covering bits), host -> its host-hash
    value), for the hosts found."""
    w = width(fam)
    full = w.to_bytes(4, "little")
    hkey = ctypes.create_string_buffer(w // 8)
    lkey = ctypes.create_string_buffer(4 + w // 8)
    val = ctypes.c_uint64()
    cover: dict[int, int] = {}
    olds: dict[int, int] = {}
    for a in addrs:
        raw = a.to_bytes(w // 8, "big")
        if fds[False] is not None:
            ctypes.memmove(lkey, full + raw, 4 + w // 8)
            if bpf.map_lookup(fds[False], lkey, val):
                cover[a] = val.value
        if fds[True] is not None:
            ctypes.memmove(hkey, raw, w // 8)
            if bpf.map_lookup(fds[True], hkey, val):
                olds[a] = val.value
    return cover, olds


def host_delta(p: Pinned, fam: int, gen: int, xdp: XdpState, old: dict[str, Any],
               baselines: BaselineStore, count: int) -> HostDelta | None:
    """The in-place change of the family's host hash for small nets_file / inline
    edits (see member_changes), or None for a full reload.  count: the family's
    entries now.

    A host entry's value is (bits of the sets holding the address itself) | (the
    value of the longest covering prefix in the trie, i.e. its covering bits); no
    prefix changes here, so the trie lookup gives the covering bits, the old entry
    minus them the sets that hold the address exactly (bits also in the covering
    value do not matter: they stay set either way).  An entry that would say no
    more than the trie is deleted: a miss falls through to the trie."""
    rec = old.get("sources")
    if not rec or count > old.get("max_entries", 0):
        return None
    changes = member_changes(xdp, fam, rec, baselines)
    if changes is None:
        return None
    gained, lost = changes.gained, changes.lost
    if not gained and not lost:
        return HostDelta({}, {}, [])
    with p.inner_maps(fam, gen) as fds:
        if fds[True] is None and gained:
            return None  # the generation has no host hash: a reload makes one
        addrs = sorted(gained.keys() | lost.keys())
        cover, olds = _lookups(fds, addrs, fam)
    w = width(fam)
    exact = [((olds.get(a, 0) & ~cover.get(a, 0)) & ~lost.get(a, 0)) | gained.get(a, 0)
             for a in addrs]
    new = list(exact)
    or_covering_bits(addrs, new, {w: cover}, w)
    out = HostDelta({}, {}, [])
    full = w.to_bytes(4, "little")
    for a, own, new_v in zip(addrs, exact, new):
        k = full + a.to_bytes(w // 8, "big")
        old_v = olds.get(a)
        if own & ~cover.get(a, 0):
            if old_v != new_v:
                out.adds[k] = new_v | (old_v or 0)
                if old_v is not None and old_v & ~new_v:
                    out.fixups[k] = new_v
        elif old_v is not None:
            out.deletes.append(k)
    return out
