"""Incremental nets_file applies.

A BaselineStore keeps, per nets_file (by absolute path), a byte copy of the file as
last applied and its member counts:

    <root>/<sha1(abs path)>.nets     the copy (shutil.copyfile: sendfile, no Python loop)
    <root>/<sha1(abs path)>.json     {"path": ..., "count_v4": n, "count_v6": n}

file_delta() compares the copy with the current file at memcmp speed (common prefix,
then common suffix, both cut at line boundaries) and returns only the differing
region, so a one-line edit of a 1M-line file is validated and applied without
parsing the unchanged bulk.

Multiset rule (duplicates are legal in a nets_file, the kernel set holds each member
once): a member is *added* when the new region holds it more often than the old
region; it is *removed* only when the old region held it more often than the new
region AND no line of the unchanged part of the new file (prefix + suffix) denotes
the same member (same network after normalization, any spelling).  That last check
is a C-speed literal search of the unchanged bytes for the member's fixed leading
octets (v4) or for ':' (v6 lines), each hit being normalized with ipaddress; only a
v4 member shorter than /8 (no fixed octet) falls back to normalizing every v4 line.
"""
from __future__ import annotations

import ctypes
import hashlib
import ipaddress
import json
import mmap
import os
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from nodewall.engine.nets.lines import clean_chunk
from nodewall.engine.system.files import atomic_write_text

_BLOCK = 1 << 20


@dataclass(frozen=True)
class Baseline:
    copy_path: Path
    count_v4: int
    count_v6: int


@dataclass(frozen=True)
class FileDelta:
    """old[start:old_end] was replaced by new[start:new_end]; both are whole lines."""

    old_region: bytes
    new_region: bytes
    start: int
    old_end: int
    new_end: int
    new_path: Path

    @property
    def unchanged(self) -> bool:
        return self.old_region == self.new_region


DELTA_REGION_MAX = 16 << 20  # a changed region larger than this is a reload


class BaselineStore:
    """One generation's nets_file copies, opened for one transaction: deltas asked for
    several times in it (validation, then the v4 and v6 sets of a network set) are
    computed once; a new transaction opens a new store, so a file edited within one
    clock tick is never served a stale delta."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._deltas: dict[tuple, FileDelta | None] = {}

    def delta(self, path: Path) -> FileDelta | None:
        """`path` against its baseline copy (None: no baseline, or changed too much)."""
        base = self.get(path)
        if base is None:
            return None
        try:
            key = (_stat_key(base.copy_path), _stat_key(path))
        except OSError:
            return None
        if key not in self._deltas:
            self._deltas[key] = _file_delta(base.copy_path, Path(path), DELTA_REGION_MAX)
        return self._deltas[key]

    def _stem(self, path: Path) -> Path:
        key = hashlib.sha1(str(Path(path).absolute()).encode()).hexdigest()
        return self.root / key

    def get(self, path: Path) -> Baseline | None:
        stem = self._stem(path)
        copy, meta = stem.with_suffix(".nets"), stem.with_suffix(".json")
        try:
            data = json.loads(meta.read_text())
            v4, v6 = int(data["count_v4"]), int(data["count_v6"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not copy.is_file():
            return None
        return Baseline(copy, v4, v6)

    def put(self, path: Path, counts: tuple[int, int]) -> Baseline:
        """Record `path` as applied with (count_v4, count_v6).  Atomic per file.  The
        copy is 0600 in a 0700 directory whatever the source's mode (it may be secret)."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        stem = self._stem(path)
        copy, meta = stem.with_suffix(".nets"), stem.with_suffix(".json")
        tmp_copy = stem.with_suffix(".nets.tmp")
        meta.unlink(missing_ok=True)  # no stale counts beside a new copy
        tmp_copy.unlink(missing_ok=True)
        os.close(os.open(tmp_copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        shutil.copyfile(path, tmp_copy)
        os.replace(tmp_copy, copy)
        atomic_write_text(meta, json.dumps({"path": str(Path(path).absolute()),
                                             "count_v4": counts[0], "count_v6": counts[1]}),
                          mode=0o600)
        return Baseline(copy, counts[0], counts[1])

    def drop(self, path: Path) -> None:
        stem = self._stem(path)
        for suffix in (".nets", ".json"):
            stem.with_suffix(suffix).unlink(missing_ok=True)


_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.memcmp.restype = ctypes.c_int
_libc.memcmp.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
_libc.memmem.restype = ctypes.c_void_p
_libc.memmem.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t]
_MAP_FAILED = ctypes.c_void_p(-1).value


class _Raw:
    """A read-only mapping of a whole file by address, so that two files are compared
    with memcmp in place: slicing a Python mmap copies every byte it compares."""

    def __init__(self, path: Path):
        with open(path, "rb") as f:
            self.size = os.fstat(f.fileno()).st_size
            self.addr = 0
            if self.size:
                addr = _libc.mmap(None, self.size, mmap.PROT_READ,
                                  mmap.MAP_SHARED | mmap.MAP_POPULATE, f.fileno(), 0)
                if addr in (None, _MAP_FAILED):
                    raise OSError(ctypes.get_errno(), f"mmap {path}")
                self.addr = addr

    def close(self) -> None:
        if self.addr:
            _libc.munmap(self.addr, self.size)
            self.addr = 0


def _same(a: _Raw, a_off: int, b: _Raw, b_off: int, n: int) -> bool:
    return n <= 0 or _libc.memcmp(a.addr + a_off, b.addr + b_off, n) == 0


def _memfind(raw: _Raw, needle: bytes, lo: int, hi: int) -> int:
    """bytes.find over the mapping, with glibc's memmem (no copy, no GIL-bound loop)."""
    if hi - lo < len(needle) or not raw.addr:
        return -1
    hit = _libc.memmem(raw.addr + lo, hi - lo, needle, len(needle))
    return -1 if not hit else hit - raw.addr


def _common_prefix(a: _Raw, b: _Raw, limit: int) -> int:
    """Length of the common prefix (at most `limit`): memcmp per block, then bisect."""
    n = 0
    while n < limit:
        step = min(_BLOCK, limit - n)
        if _same(a, n, b, n, step):
            n += step
            continue
        while step > 1:  # the first difference lies in [n, n + step)
            half = step // 2
            if _same(a, n, b, n, half):
                n += half
                step -= half
            else:
                step = half
        return n
    return n


def _common_suffix(a: _Raw, b: _Raw, limit: int) -> int:
    """Length of the common suffix (at most `limit`)."""
    la, lb = a.size, b.size
    n = 0
    while n < limit:
        step = min(_BLOCK, limit - n)
        if _same(a, la - n - step, b, lb - n - step, step):
            n += step
            continue
        while step > 1:
            half = step // 2
            if _same(a, la - n - half, b, lb - n - half, half):
                n += half
                step -= half
            else:
                step = half
        return n
    return n


def _map(path: Path) -> tuple[mmap.mmap | bytes, int]:
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            return b"", 0
        # MAP_POPULATE: fault the pages in one go, not one fault per 4 KiB page
        return mmap.mmap(f.fileno(), 0, flags=mmap.MAP_SHARED | mmap.MAP_POPULATE,
                         prot=mmap.PROT_READ), size


def _stat_key(path: Path) -> tuple[str, int, int, int]:
    st = os.stat(path)
    return (str(Path(path).absolute()), st.st_ino, st.st_size, st.st_mtime_ns)


def _line_start(buf: mmap.mmap | bytes, pos: int, region_start: int) -> bool:
    return pos == region_start or buf[pos - 1:pos] == b"\n"


def file_delta(old: Path, new: Path, max_region: int = DELTA_REGION_MAX) -> FileDelta | None:
    """The differing line region of `new` against `old` (the baseline copy), or None
    when there is no baseline or the region is larger than `max_region` bytes."""
    return _file_delta(old, new, max_region)


def _file_delta(old: Path, new: Path, max_region: int) -> FileDelta | None:
    try:
        a, la = _map(old)
        b, lb = _map(new)
        ra, rb = _Raw(old), _Raw(new)
    except OSError:
        return None
    try:
        p = _common_prefix(ra, rb, min(la, lb))
        if p < min(la, lb) or la != lb:  # align to the start of the differing line
            p = b.rfind(b"\n", 0, p) + 1 if p else 0
        s = _common_suffix(ra, rb, min(la, lb) - p)
        if s and not (_line_start(a, la - s, p) and _line_start(b, lb - s, p)):
            nl = b.find(b"\n", lb - s, lb)  # the next line start is common to both
            s = lb - nl - 1 if nl >= 0 else 0
        old_end, new_end = la - s, lb - s
        if old_end - p > max_region or new_end - p > max_region:
            return None
        return FileDelta(bytes(a[p:old_end]), bytes(b[p:new_end]), p, old_end, new_end,
                         Path(new).absolute())
    finally:
        ra.close()
        rb.close()
        for m in (a, b):
            if isinstance(m, mmap.mmap):
                m.close()


def _normalized(region: bytes, family: int) -> Counter[str]:
    members: Counter[str] = Counter()
    if not region:
        return members
    chunk = region if region.endswith(b"\n") else region + b"\n"
    for raw in clean_chunk(chunk, family).split():
        members[str(ipaddress.ip_network(raw.decode(), strict=False))] += 1
    return members


def _line_at(buf: mmap.mmap | bytes, pos: int) -> bytes:
    start = buf.rfind(b"\n", 0, pos) + 1
    end = buf.find(b"\n", pos)
    return buf[start:end if end >= 0 else len(buf)]


def _line_member(line: bytes, family: int) -> list[str]:
    """Normalized members written on one line (0, 1, or 2 for a split /0)."""
    out = clean_chunk(line + b"\n", family)
    return [str(ipaddress.ip_network(r.decode(), strict=False)) for r in out.split()]


def _blocks(buf: mmap.mmap | bytes, lo: int, hi: int) -> list[bytes]:
    """buf[lo:hi] in blocks of whole lines (lo is a line start)."""
    out, pos = [], lo
    while pos < hi:
        end = min(hi, pos + _BLOCK)
        if end < hi:
            nl = buf.rfind(b"\n", pos, end)
            end = nl + 1 if nl >= 0 else hi
        out.append(buf[pos:end])
        pos = end
    return out


def _still_present(buf: mmap.mmap | bytes, raw: _Raw, ranges: list[tuple[int, int]],
                   member: str, family: int) -> bool:
    """Does a line inside `ranges` of `buf` (mapped as `raw` too) denote `member`?"""
    net = ipaddress.ip_network(member)
    needle = b":" if family == 6 else v4_needle(int(net.network_address), net.prefixlen)
    for lo, hi in ranges:
        if not needle:  # shorter than /8: normalize every line of the range
            if any(member in _normalized(block, family) for block in _blocks(buf, lo, hi)):
                return True
            continue
        pos = _memfind(raw, needle, lo, hi)
        seen_line = -1
        while pos >= 0:
            line_start = buf.rfind(b"\n", 0, pos) + 1
            if line_start != seen_line:
                seen_line = line_start
                line = _line_at(buf, pos)
                if member in _line_member(line, family):
                    return True
            nl = buf.find(b"\n", pos, hi)
            if nl < 0:
                break
            pos = _memfind(raw, needle, nl, hi)
    return False


def delta_members(delta: FileDelta, family: int) -> tuple[list[str], list[str]]:
    """(added, removed) normalized members of `family` for the kernel set (see the
    module docstring for the multiset rule).  /0 appears as its two /1 halves."""
    new = _normalized(delta.new_region, family)
    old = _normalized(delta.old_region, family)
    added = sorted((new - old).keys())
    candidates = sorted((old - new).keys())
    if not candidates:
        return added, []
    buf, size = _map(delta.new_path)
    raw = _Raw(delta.new_path)
    try:
        ranges = [(0, delta.start), (delta.new_end, size)]
        removed = [m for m in candidates
                   if not _still_present(buf, raw, ranges, m, family)]
    finally:
        raw.close()
        if isinstance(buf, mmap.mmap):
            buf.close()
    return added, removed


def lines_containing(path: Path, needle: bytes, limit: int) -> list[bytes] | None:
    """The lines of `path` that contain `needle` (mmap.find: C speed, no copy); None
    when there are more than `limit`."""
    out: list[bytes] = []
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return out
        with mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as buf:
            pos = buf.find(needle)
            while pos >= 0:
                start = buf.rfind(b"\n", 0, pos) + 1
                end = buf.find(b"\n", pos)
                end = len(buf) if end < 0 else end
                out.append(buf[start:end])
                if len(out) > limit:
                    return None
                pos = buf.find(needle, end)
    return out


def v4_needle(network: int, prefixlen: int) -> bytes:
    """The text every canonical spelling of an IPv4 address inside network/prefixlen
    starts with: its fixed leading octets, then a dot unless all four are fixed (b""
    below /8)."""
    fixed = prefixlen // 8
    if not fixed:
        return b""
    text = ".".join(str(network >> (24 - 8 * i) & 255) for i in range(fixed)).encode()
    return text + b"." if fixed < 4 else text
