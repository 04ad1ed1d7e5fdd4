"""Small nets_file / inline edits as in-place changes of a family's host hash (and,
for IPv4 prefixes a set gained, of its trie): the members each set gained and lost
(from the sources recorded in the metadata and the nets_file deltas against the
previous generation's copies), turned into upserts and deletes that keep
or_covering_bits' rule.

A gained prefix P (at most 2**PREFIX_SPAN_MAX addresses) only adds bits: P's trie
entry gets its covering value | the bits, and so does every entry inside P (the
source entries inside P are found in the sets' inline CIDRs and by a C-speed search
of their files for P's fixed leading octets, each hit normalized).  A lost prefix,
or a changed host inside a gained prefix, is not an in-place change: the family is
reloaded."""
from __future__ import annotations

import ctypes
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nodewall.engine.dataplane.xdp import bpf_syscall as bpf
from nodewall.engine.dataplane.xdp.cidr_keys import PREFIX_BYTES, is_family, mask, width
from nodewall.engine.dataplane.xdp.maps import Pinned
from nodewall.engine.dataplane.xdp.source_merge import or_covering_bits
from nodewall.engine.nets.baseline import BaselineStore, delta_members, lines_containing, v4_needle
from nodewall.engine.nets.lines import clean_chunk
from nodewall.engine.plan.desired import XdpSetSource, XdpState

FILE_DELTA_MAX = 65536  # host entries changed in place from nets_file deltas, at most
PREFIX_SPAN_MAX = 12  # a gained IPv4 prefix changes in place up to /20 (4096 addresses)


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
    prefixes: dict[tuple[int, int], int]  # (prefix length, network) -> bits gained


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
    """Host address -> bits gained, and -> bits lost, and the IPv4 prefixes gained,
    between the sources recorded in the metadata (rec) and xdp's.  None when that is
    not known for sure, or when a prefix is lost or is too wide to change in place (a
    prefix changes the covering bits of every entry under it: the caller reloads)."""
    w = width(fam)
    if set(rec) != {str(s.bit) for s in xdp.sets}:
        return None
    out = MemberChanges({}, {}, {})
    try:
        for s in xdp.sets:
            add, rem = _set_members(s, rec[str(s.bit)], fam, baselines)
            if not _note_changes(out, add, rem, 1 << s.bit, w):
                return None
            if len(out.gained) + len(out.lost) + len(out.prefixes) > FILE_DELTA_MAX:
                return None
    except (_Unknown, OSError, ValueError, KeyError, TypeError):
        return None
    return out


def _note_changes(out: MemberChanges, add: set[str], rem: set[str], bit: int,
                  w: int) -> bool:
    """Record one set's changes in out; False when they cannot change in place."""
    for members, bits in ((add, out.gained), (rem, out.lost)):
        for m in members:
            net = ipaddress.ip_network(m)
            a = int(net.network_address)
            if net.prefixlen == w:
                bits[a] = bits.get(a, 0) | bit
            elif bits is out.gained and w == 32 and w - net.prefixlen <= PREFIX_SPAN_MAX:
                key = (net.prefixlen, a)
                out.prefixes[key] = out.prefixes.get(key, 0) | bit
            else:
                return False
    return True


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
    changed host lies under a gained prefix (and no prefix is lost), so the trie
    lookup gives the covering bits, the old entry
    minus them the sets that hold the address exactly (bits also in the covering
    value do not matter: they stay set either way).  An entry that would say no
    more than the trie is deleted: a miss falls through to the trie."""
    rec = old.get("sources")
    if not rec or count > old.get("max_entries", 0):
        return None
    changes = member_changes(xdp, fam, rec, baselines)
    if changes is None or _host_under_prefix(changes, width(fam)):
        return None
    gained, lost = changes.gained, changes.lost
    if not gained and not lost and not changes.prefixes:
        return HostDelta({}, {}, [])
    with p.inner_maps(fam, gen) as fds:
        if fds[True] is None and gained:
            return None  # the generation has no host hash: a reload makes one
        if fds[False] is None and changes.prefixes:
            return None  # nor a trie
        addrs = sorted(gained.keys() | lost.keys())
        cover, olds = _lookups(fds, addrs, fam)
        prefix_adds = _prefix_adds(fds, xdp, changes.prefixes) if changes.prefixes else {}
    if prefix_adds is None:
        return None
    out = _host_changes(addrs, cover, olds, gained, lost, width(fam))
    out.adds.update(prefix_adds)
    return out


def _host_changes(addrs: list[int], cover: dict[int, int], olds: dict[int, int],
                  gained: dict[int, int], lost: dict[int, int], w: int) -> HostDelta:
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


def _host_under_prefix(changes: MemberChanges, w: int) -> bool:
    """Does a changed host lie inside a gained prefix (its cover changes as well)?"""
    return any(a & mask(q, w) == net for q, net in changes.prefixes
               for a in changes.gained.keys() | changes.lost.keys())


def _prefix_adds(fds: dict[bool, int | None], xdp: XdpState,
                 prefixes: dict[tuple[int, int], int]) -> dict[bytes, int] | None:
    """IPv4 upserts for gained prefixes: each prefix's trie entry and every entry
    inside it (host hash or trie) get the prefix's bits on top of their value now
    (the prefix's own entry: its longest match, i.e. what covered it so far)."""
    out: dict[bytes, int] = {}
    for (q, net), bits in sorted(prefixes.items()):
        inside = _source_entries_within(xdp, q, net)
        if inside is None:
            return None
        for plen, a in sorted(inside | {(q, net)}):
            k = PREFIX_BYTES[plen] + a.to_bytes(4, "big")
            cur = out.get(k)
            if cur is None:
                cur = _value_at(fds, plen, a)
            if cur is not None or plen < 32:  # an absent host: the trie answers for it
                out[k] = (cur or 0) | bits
    return out


def _value_at(fds: dict[bool, int | None], plen: int, a: int) -> int | None:
    """A host's hash value, or the trie's longest match for a prefix (its own value
    when it is in the trie); None when there is none."""
    val = ctypes.c_uint64()
    if plen == 32:
        fd, key = fds[True], ctypes.create_string_buffer(a.to_bytes(4, "big"), 4)
    else:
        fd, key = fds[False], ctypes.create_string_buffer(PREFIX_BYTES[plen]
                                                          + a.to_bytes(4, "big"), 8)
    if fd is None or not bpf.map_lookup(fd, key, val):
        return None
    return val.value


def _source_entries_within(xdp: XdpState, q: int, net: int) -> set[tuple[int, int]] | None:
    """(prefix length, network) of every IPv4 source entry strictly inside net/q, from
    every set's inline CIDRs and files (None: too many to change in place)."""
    m = mask(q, 32)
    out: set[tuple[int, int]] = set()
    needle = v4_needle(net, q)
    for s in xdp.sets:
        texts = [c.encode() for c in s.inline if is_family(c, 4)]
        for f in s.files:
            lines = lines_containing(Path(f), needle, FILE_DELTA_MAX)
            if lines is None:
                return None
            texts += lines
        for raw in clean_chunk(b"".join(t + b"\n" for t in texts), 4).split():
            n = ipaddress.ip_network(raw.decode(), strict=False)
            a = int(n.network_address)
            if n.prefixlen > q and a & m == net:
                out.add((n.prefixlen, a))
        if len(out) > FILE_DELTA_MAX:
            return None
    return out
