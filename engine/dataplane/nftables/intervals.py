"""CIDR members -> the disjoint, sorted address ranges an nft interval set holds.

An nft interval set stores ranges, not the members as written: overlapping or
adjacent CIDRs become one range (ipset's hash:net keeps each member).  nodewall
merges them itself (`nft` with `auto-merge` needs ~1 GB and ~20 s for 1M CIDRs), so
the kernel set is exactly `merge(members)` and two generations are compared range
by range: the difference is what an update adds and deletes (exact even when a
removed CIDR was covered by another member).

Members are never ipaddress objects: one int per range, `start << bits | end`
(bits = 32 or 128), parsed with inet_pton; the list is what a set holds in memory
while it is loaded (~40 MB per 1M v4 ranges).
"""
from __future__ import annotations

import socket
from array import array
from collections.abc import Iterable, Iterator
from pathlib import Path

from nodewall.engine.nets.scan import iter_member_chunks
from nodewall.engine.plan.desired import Family, IpSetSpec

BITS = {4: 32, 6: 128}


def parse_chunk(chunk: bytes, family: Family, out: list[int]) -> None:
    """Append `start << bits | end` for every b"CIDR\\n" line of `chunk`."""
    bits = BITS[family]
    mask = (1 << bits) - 1
    af = socket.AF_INET if family == 4 else socket.AF_INET6
    pton = socket.inet_pton
    frombytes = int.from_bytes
    append = out.append
    for line in chunk.split():
        addr, _, plen = line.partition(b"/")
        start = frombytes(pton(af, addr.decode()), "big")
        host = bits - int(plen) if plen else 0
        if host:
            start = start >> host << host
            append(start << bits | (start | ((1 << host) - 1)) & mask)
        else:
            append(start << bits | start)


def member_ranges(spec: IpSetSpec, sources: Iterable[IpSetSpec] = ()) -> list[int]:
    """The merged ranges of a hash:net spec (inline + files), or of the union of
    `sources` (a list:set is loaded as one set holding all its members' ranges)."""
    packed: list[int] = []
    for s in (sources or (spec,)):
        for chunk in _chunks(s):
            parse_chunk(chunk, spec.family, packed)
    return merge(packed, spec.family)


def _chunks(spec: IpSetSpec) -> Iterator[bytes]:
    if spec.inline:
        yield ("\n".join(spec.inline) + "\n").encode()
    for path in spec.files:
        yield from iter_member_chunks(Path(path), spec.family)


def merge(packed: list[int], family: Family) -> list[int]:
    """Sort and merge overlapping or adjacent ranges (in place; returns the result)."""
    bits = BITS[family]
    mask = (1 << bits) - 1
    packed.sort()
    out: list[int] = []
    cur_s = cur_e = -2
    append = out.append
    for v in packed:
        s = v >> bits
        if s <= cur_e + 1:
            cur_e = max(cur_e, v & mask)
            continue
        if cur_s >= 0:
            append(cur_s << bits | cur_e)
        cur_s, cur_e = s, v & mask
    if cur_s >= 0:
        append(cur_s << bits | cur_e)
    packed.clear()
    return out


def diff(old: list[int], new: list[int]) -> tuple[list[int], list[int]]:
    """(ranges to add, ranges to delete) turning sorted `old` into sorted `new` (one
    walk over both; no set of a million ints is built)."""
    add: list[int] = []
    rem: list[int] = []
    i = j = 0
    n_old, n_new = len(old), len(new)
    while i < n_old and j < n_new:
        a, b = old[i], new[j]
        if a == b:
            i += 1
            j += 1
        elif a < b:
            rem.append(a)
            i += 1
        else:
            add.append(b)
            j += 1
    rem.extend(old[i:])
    add.extend(new[j:])
    return add, rem


def to_text(packed: int, family: Family) -> str:
    """`10.0.0.0/24` when the range is one prefix, else `a-b` (nft syntax)."""
    bits = BITS[family]
    s, e = packed >> bits, packed & ((1 << bits) - 1)
    af = socket.AF_INET if family == 4 else socket.AF_INET6
    a = socket.inet_ntop(af, s.to_bytes(bits // 8, "big"))
    size = e - s + 1
    if size & (size - 1) == 0 and s % size == 0:
        plen = bits - size.bit_length() + 1
        return a if plen == bits else f"{a}/{plen}"
    return f"{a}-{socket.inet_ntop(af, e.to_bytes(bits // 8, 'big'))}"


# -- manifests: what the kernel set holds, as loaded -------------------------------
def save(path: Path, ranges: list[int], family: Family) -> None:
    """Binary: 2 (v4) or 4 (v6) little 64-bit words per range... as one array."""
    path.parent.mkdir(parents=True, exist_ok=True)
    words = array("Q")
    if family == 4:
        words.extend(ranges)
    else:
        m = (1 << 64) - 1
        for v in ranges:
            words.extend((v >> 192, (v >> 128) & m, (v >> 64) & m, v & m))
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        words.tofile(fh)
    tmp.replace(path)


def load(path: Path, family: Family) -> list[int] | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    words = array("Q")
    words.frombytes(data[:len(data) - len(data) % 8])
    if family == 4:
        return words.tolist()
    it = iter(words)
    return [a << 192 | b << 128 | c << 64 | d for a, b, c, d in zip(it, it, it, it, strict=False)]
