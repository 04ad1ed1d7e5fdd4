"""A one-file IPv4 nft set's ranges after a small edit of its nets_file, from the
ranges recorded at the last load and the file's delta against the previous
generation's copy, without parsing and merging the whole file again.

Used only when the record says exactly what was loaded: the same inline members and
the same file (path, size and sha256 of the baseline copy).  Members the edit added
are merged into the ranges (with their neighbours); a member it removed (one no
line of the unchanged part denotes any more, engine.nets.baseline's multiset rule,
and no inline member either) takes its whole merged range out, and that range is
rebuilt from the members still inside it: the file's lines with the range's fixed
leading octets (a C-speed search) and the inline members.  Anything else (IPv6, a
range wider than a /16, many changes) returns None: the caller merges the file."""
from __future__ import annotations

import ipaddress
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodewall.engine.dataplane.nftables import intervals
from nodewall.engine.nets.baseline import BaselineStore, delta_members, lines_containing, v4_needle
from nodewall.engine.nets.digests import FileDigests
from nodewall.engine.nets.lines import clean_chunk
from nodewall.engine.plan.desired import IpSetSpec

EDIT_MAX = 4096  # members changed (and lines rescanned per removed range), at most
REBUILD_MIN_PREFIX = 16  # a removed member's range is rebuilt when inside a /16
_MASK = (1 << 32) - 1


def source_record(spec: IpSetSpec, digests: FileDigests) -> dict[str, Any]:
    """What a load of `spec` is made of (kept beside the set's ranges)."""
    return {"inline": sorted(_norm(spec.inline)),
            "files": [[str(Path(f).absolute()), Path(f).stat().st_size,
                       digests.sha256(Path(f))] for f in spec.files]}


def _norm(cidrs: Any) -> set[str]:
    return {str(ipaddress.ip_network(c, strict=False)) for c in cidrs}


@dataclass
class _Edit:
    """Sorted packed ranges changed in place, with what left and what came."""

    ranges: list[int]
    added: set[int] = field(default_factory=set)
    removed: set[int] = field(default_factory=set)

    def _take(self, lo: int, hi: int) -> None:
        for r in self.ranges[lo:hi]:
            if r in self.added:
                self.added.discard(r)
            else:
                self.removed.add(r)
        del self.ranges[lo:hi]

    def _put(self, at: int, new: list[int]) -> None:
        self.ranges[at:at] = new
        for r in new:
            if r in self.removed:
                self.removed.discard(r)
            else:
                self.added.add(r)

    def insert(self, start: int, end: int) -> None:
        """Merge [start, end] in, with every range it overlaps or touches."""
        lo = bisect_left(self.ranges, start << 32)
        if lo and (self.ranges[lo - 1] & _MASK) + 1 >= start:
            lo -= 1
        hi = lo
        while hi < len(self.ranges) and self.ranges[hi] >> 32 <= end + 1:
            hi += 1
        if hi - lo == 1 and self.ranges[lo] >> 32 <= start and self.ranges[lo] & _MASK >= end:
            return  # already covered
        if hi > lo:
            start = min(start, self.ranges[lo] >> 32)
            end = max(end, self.ranges[hi - 1] & _MASK)
        self._take(lo, hi)
        self._put(lo, [start << 32 | end])

    def containing(self, start: int, end: int) -> int | None:
        """Index of the range that holds [start, end], if one does."""
        i = bisect_right(self.ranges, start << 32 | _MASK) - 1
        if i < 0:
            return None
        r = self.ranges[i]
        return i if r >> 32 <= start and r & _MASK >= end else None

    def rebuild(self, i: int, members: list[int]) -> None:
        """Range i replaced by the merged `members` inside it."""
        r = self.ranges[i]
        inside = [m for m in members if m >> 32 >= r >> 32 and m & _MASK <= r & _MASK]
        self._take(i, i + 1)
        self._put(i, intervals.merge(inside, 4))


@dataclass(frozen=True)
class FileDeltaRanges:
    ranges: list[int]  # all, after the change
    added: list[int]
    removed: list[int]


def file_delta_ranges(spec: IpSetSpec, old: list[int], record: dict[str, Any] | None,
                      baselines: BaselineStore, digests: FileDigests) -> FileDeltaRanges | None:
    """The set's ranges after its nets_file's edit (see the module docstring), or None."""
    if (record is None or spec.kind != "hash:net" or spec.family != 4
            or len(spec.files) != 1 or record.get("inline") != sorted(_norm(spec.inline))):
        return None
    path = Path(spec.files[0])
    try:
        [(rec_path, rec_size, rec_sha)] = record["files"]
        base = baselines.get(path)
        if (rec_path != str(path.absolute()) or base is None
                or base.copy_path.stat().st_size != rec_size
                or digests.sha256(base.copy_path) != rec_sha):
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    delta = baselines.delta(path)
    if delta is None:
        return None
    added, removed = delta_members(delta, 4) if not delta.unchanged else ([], [])
    inline = _norm(spec.inline)
    removed = [m for m in removed if m not in inline]
    if len(added) + len(removed) > EDIT_MAX:
        return None
    edit = _Edit(list(old))
    for m in removed:
        if not _take_out(edit, m, path, spec.inline):
            return None
    for m in added:
        net = ipaddress.ip_network(m)
        edit.insert(int(net.network_address), int(net.broadcast_address))
    return FileDeltaRanges(edit.ranges, sorted(edit.added), sorted(edit.removed))


def _take_out(edit: _Edit, member: str, path: Path, inline: tuple[str, ...]) -> bool:
    """Rebuild the range that held `member` from what the new file and the inline
    members still put inside it; False when that is not a small local job."""
    net = ipaddress.ip_network(member)
    i = edit.containing(int(net.network_address), int(net.broadcast_address))
    if i is None:
        return False  # the record does not hold it: not what was loaded
    r = edit.ranges[i]
    start, end = r >> 32, r & _MASK
    prefixlen = 32 - (start ^ end).bit_length()
    if prefixlen < REBUILD_MIN_PREFIX:
        return False
    lines = lines_containing(path, v4_needle(start & ~((1 << (32 - prefixlen)) - 1) & _MASK,
                                             prefixlen), EDIT_MAX)
    if lines is None:
        return False
    chunk = clean_chunk(b"".join(x + b"\n" for x in lines), 4)
    members: list[int] = []
    intervals.parse_chunk(chunk, 4, members)
    intervals.parse_chunk(clean_chunk("".join(f"{c}\n" for c in inline).encode(), 4), 4,
                          members)
    edit.rebuild(i, members)
    return True
