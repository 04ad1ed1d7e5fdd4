"""Source sets -> the entries of a family's XDP source maps (values = u64 set bits):
host entries (/32, /128) for the exact-match hash, shorter prefixes for the LPM
trie.  The program looks in the hash first and in the trie on a miss, like ipset's
hash:net probing its prefix lengths.

An LPM lookup returns only the longest matching prefix (and a hash hit ends the
lookup), so every value follows or_covering_bits' rule, and a CIDR in several sets
gets the OR of their bits.  When a family has members from one set only, every
value is that set's bit and entries stream straight through; one big set with a few
small ones streams the big one past the merged small ones (streamed_batches); two
or more big sets are merged as int sets per prefix length (merged_batches).
"""
from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Mapping, MutableSequence, Sequence
from dataclasses import dataclass, field
from itertools import compress

from nodewall.engine.dataplane.xdp.cidr_keys import (
    CHUNK_LINES,
    PREFIX_BYTES,
    VALUE,
    Batch,
    batches_from_dict,
    content_dict,
    host_blob,
    host_ints,
    is_family,
    lpm_entries,
    mask,
    nets_by_len,
    pack_split,
    split_key,
    width,
)
from nodewall.engine.dataplane.xdp.sources import source_chunks, source_size
from nodewall.engine.plan.desired import XdpSetSource

SMALL_MERGE = 65536  # sets up to this size (together) are merged in memory


def or_covering_bits(addrs: Sequence[int], values: MutableSequence[int],
                     prefixes: Mapping[int, Mapping[int, int]], width: int,
                     plens: Sequence[int] | None = None) -> None:
    """The rule of every value in the source maps: an entry's value is the OR of the
    bits of every set holding the entry's CIDR itself or any prefix covering it.  (An
    LPM lookup returns only the longest matching prefix, and a host-hash hit ends the
    lookup, so the one value found must answer for every covering prefix.)

    This ORs into values[j] the bits of each prefix in `prefixes` (prefix length ->
    network address -> bits) that covers or equals the entry addrs[j]: a prefix of
    length q whose address is addrs[j] masked to q, and q <= plens[j] (plens: the
    entries' prefix lengths; None: host entries, covered by any length).  Callers
    pass either the prefixes themselves or, for a host in a live map, its trie's
    longest match keyed by the host (full width), whose value obeys the rule already.
    map/compress: no bytecode per entry, only per hit."""
    for q, nets in prefixes.items():
        m = mask(q, width)
        for j in compress(range(len(addrs)), map(nets.__contains__, map(m.__and__, addrs))):
            if plens is None or plens[j] >= q:
                values[j] |= nets[addrs[j] & m]


class _ValuesOf:
    """values[j] of a dict's entries, j indexing addrs (the dict's keys, listed once):
    or_covering_bits updates a dict in place through it."""

    __slots__ = ("addrs", "d")

    def __init__(self, d: dict[int, int], addrs: list[int]):
        self.d, self.addrs = d, addrs

    def __getitem__(self, j: int) -> int:
        return self.d[self.addrs[j]]

    def __setitem__(self, j: int, v: int) -> None:
        self.d[self.addrs[j]] = v


def _or_covering_into(entries: dict[int, int], prefixes: Mapping[int, Mapping[int, int]],
                      width: int) -> None:
    addrs = list(entries)
    or_covering_bits(addrs, _ValuesOf(entries, addrs), prefixes, width)


def _members(sets: Iterable[XdpSetSource], family: int) -> list[XdpSetSource]:
    return [s for s in sets if (s.count_v4 if family == 4 else s.count_v6) > 0
            or any(is_family(c, family) for c in s.inline)]


def _packed_chunks(s: XdpSetSource, family: int) -> Iterator[tuple[bytes, int, bytes, int]]:
    """A set's entries packed (pack_split) in small batches, so the loader starts early."""
    for text in source_chunks(s, family):
        lines = text.split()
        for i in range(0, len(lines), CHUNK_LINES):
            yield pack_split(lines[i:i + CHUNK_LINES], family, s.origin)


def iter_batches(sets: Iterable[XdpSetSource], family: int) -> Iterator[Batch]:
    """The family's entries as batches of packed keys and values, host batches (for
    the hash) and trie batches."""
    members = _members(sets, family)
    if not members:
        return
    if len(members) == 1:
        yield from _single_batches(members[0], family)
        return
    sizes = {s.bit: source_size(s, family) for s in members}
    big = [s for s in members if sizes[s.bit] > SMALL_MERGE]
    small = [s for s in members if sizes[s.bit] <= SMALL_MERGE]
    if len(big) == 1 and sum(sizes[s.bit] for s in small) <= SMALL_MERGE:
        yield from streamed_batches(big[0], small, family)
        return
    yield from merged_batches(members, family)


def _single_batches(s: XdpSetSource, family: int) -> Iterator[Batch]:
    """One set alone: every value is its bit (nothing covers across sets)."""
    val = VALUE.pack(1 << s.bit)
    for hk, nh, nk, nn in _packed_chunks(s, family):
        if nh:
            yield Batch(hk, val * nh, nh, True)
        if nn:
            yield Batch(nk, val * nn, nn)


def merge(sets: Iterable[XdpSetSource], family: int) -> dict[bytes, int]:
    """key -> OR of the bits of the sets holding that CIDR or any covering prefix."""
    return content_dict(merged_batches(list(sets), family), family)


# ---- one big set streamed past the small ones ----

@dataclass
class _SmallSets:
    """The small sets of a streamed merge, merged in memory."""

    width: int
    content: dict[bytes, int]  # LPM-style key -> bits (covering bits included)
    by_len: dict[int, dict[int, int]]  # prefix length -> address -> bits (hosts: width)
    keys: list[tuple[int, int, bytes]]  # (prefix length, address, key)
    _under: dict[int, dict[int, list[bytes]]] = field(default_factory=dict)

    @classmethod
    def merged(cls, small: list[XdpSetSource], family: int) -> _SmallSets:
        content = merge(small, family) if small else {}
        by_len: dict[int, dict[int, int]] = {}
        keys = []
        for k, v in content.items():
            pl, a = split_key(k)
            by_len.setdefault(pl, {})[a] = v
            keys.append((pl, a, k))
        return cls(width(family), content, by_len, keys)

    @property
    def hosts(self) -> dict[int, int]:
        return self.by_len.get(self.width, {})

    def under(self, pl: int) -> dict[int, list[bytes]]:
        """Small keys of prefix length >= pl by their address masked to pl: the small
        entries a big entry of length pl covers or equals (built on first use)."""
        if pl not in self._under:
            m, d = mask(pl, self.width), {}
            for spl, a, k in self.keys:
                if spl >= pl:
                    d.setdefault(a & m, []).append(k)
            self._under[pl] = d
        return self._under[pl]


def streamed_batches(big: XdpSetSource, small: list[XdpSetSource],
                     family: int) -> Iterator[Batch]:
    """One big set and a few small ones in a family, without holding the big one: the
    small sets are merged in memory; the big set streams through in chunks, each entry
    valued big's bit | the bits of small entries equal to or covering it; the small
    entries covered by (or equal to) a big entry are noted on the way and written
    last with their full values (the same rule, applied to them)."""
    smalls = _SmallSets.merged(small, family)
    bit = 1 << big.bit
    hit: set[bytes] = set()  # small keys covered by or equal to a big entry
    for hk, nh, nk, nn in _packed_chunks(big, family):
        if nh:
            yield _streamed_hosts(hk, nh, bit, smalls, hit, family)
        if nn:
            yield _streamed_nets(nk, nn, bit, smalls, hit, family)
    if smalls.content:
        yield from batches_from_dict({k: v | (bit if k in hit else 0)
                                      for k, v in smalls.content.items()}, family)


def _streamed_hosts(hk: bytes, nh: int, bit: int, smalls: _SmallSets, hit: set[bytes],
                    family: int) -> Batch:
    addrs = list(host_ints(hk, family))
    vals = array("Q", [bit]) * nh
    or_covering_bits(addrs, vals, smalls.by_len, smalls.width)
    hosts = smalls.hosts
    if hosts:
        full, nb = PREFIX_BYTES[smalls.width], smalls.width // 8
        hit.update(full + a.to_bytes(nb, "big")
                   for a in compress(addrs, map(hosts.__contains__, addrs)))
    return Batch(hk, vals.tobytes(), nh, True)


def _streamed_nets(nk: bytes, nn: int, bit: int, smalls: _SmallSets, hit: set[bytes],
                   family: int) -> Batch:
    pls, addrs = lpm_entries(nk, nn, family)
    vals = array("Q", [bit]) * nn
    or_covering_bits(addrs, vals, smalls.by_len, smalls.width, pls)
    if smalls.keys:
        for pl in set(pls):
            d = smalls.under(pl)
            if d:
                for j in compress(range(nn), map(d.__contains__, addrs)):
                    if pls[j] == pl:
                        hit.update(d[addrs[j]])
    return Batch(nk, vals.tobytes(), nn)


# ---- two or more big sets ----

def _union_bits(parts: list[tuple[int, Iterable[int]]]) -> dict[int, int]:
    """address -> OR of the bits of the parts holding it.  Sets of ints and dict
    operations run in C; only addresses in two or more parts take a Python step."""
    out: dict[int, int] = {}
    for bit, addrs in parts:
        new = set(addrs)
        common = new & out.keys()
        if common:
            new -= common
            for a in common:
                out[a] |= bit
        out.update(dict.fromkeys(new, bit))
    return out


def _unions_by_len(sets: list[XdpSetSource],
                   family: int) -> tuple[dict[int, int], dict[int, dict[int, int]]]:
    """(host address -> bits, prefix length -> address -> bits): each CIDR with the OR
    of the bits of the sets holding it exactly (covering bits not yet)."""
    hosts: list[tuple[int, Iterable[int]]] = []
    nets: dict[int, list[tuple[int, list[int]]]] = {}
    for s in sets:
        bit = 1 << s.bit
        for text in source_chunks(s, family):
            hk, nh, nk, nn = pack_split(text.split(), family, s.origin)
            if nh:
                hosts.append((bit, host_ints(hk, family)))
            for pl, addrs in nets_by_len(nk, nn, family).items():
                nets.setdefault(pl, []).append((bit, addrs))
    host_bits = _union_bits(hosts)
    del hosts
    return host_bits, {pl: _union_bits(nets.pop(pl)) for pl in sorted(nets)}


def merged_batches(sets: list[XdpSetSource], family: int) -> Iterator[Batch]:
    """The batches of two or more sets of one family, merged without per-entry objects
    beyond one int per address: host entries (/32, /128) and each shorter prefix
    length are unions of int sets (duplicates OR their bits); a prefix then takes the
    bits of the prefixes covering it (shortest lengths first, so theirs are final),
    and a host those of every prefix covering it."""
    w = width(family)
    host_bits, net_bits = _unions_by_len(sets, family)
    lengths = sorted(net_bits)
    for idx, pl in enumerate(lengths):
        _or_covering_into(net_bits[pl], {q: net_bits[q] for q in lengths[:idx]}, w)
    _or_covering_into(host_bits, net_bits, w)
    addrs = list(host_bits)
    for i in range(0, len(addrs), CHUNK_LINES):
        part = addrs[i:i + CHUNK_LINES]
        yield Batch(host_blob(part, family), array("Q", map(host_bits.__getitem__, part))
                    .tobytes(), len(part), True)
    nb = w // 8
    for pl in lengths:
        items = list(net_bits[pl].items())
        pre = PREFIX_BYTES[pl]
        for i in range(0, len(items), CHUNK_LINES):
            part = items[i:i + CHUNK_LINES]
            yield Batch(b"".join(pre + a.to_bytes(nb, "big") for a, _ in part),
                        array("Q", [v for _, v in part]).tobytes(), len(part))
