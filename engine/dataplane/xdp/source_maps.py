"""Source sets -> the XDP source maps of a family (values = u64 set bits): host
entries (/32, /128) go to an exact-match hash (key = the raw address), shorter
prefixes to an LPM trie (keys = struct nw_lpm4/6).  The program looks in the hash
first and in the trie on a miss, like ipset's hash:net probing its prefix lengths.

Streaming: CIDR lines arrive in chunks (engine.netsfile when available), are packed
into one bytes buffer of keys per chunk (no per-entry objects survive the chunk)
and fed to the kernel with BPF_MAP_UPDATE_BATCH from a second thread, so parsing
the next chunk overlaps the kernel's insert of this one (ctypes drops the GIL).

Semantics: an LPM lookup returns only the longest matching prefix (and a hash hit
ends the lookup), so an entry's value must carry the bits of every covering prefix
of the other sets, and a CIDR in several sets gets the OR of their bits.  Contents
in dicts (merge, deltas) use LPM-style keys for both kinds; the split into host and
trie entries happens at the map boundary.  When a family has members from one set
only, every value is that set's bit and entries stream straight through; with two
or more sets they are merged as int sets per prefix length (merged_batches).
"""
from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import queue
import socket
import struct
import sys
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import compress
from pathlib import Path

from nodewall.engine.dataplane.xdp import bpf_syscall as sys_
from nodewall.engine.dataplane.xdp.layout import (
    HOST4_KEY_SIZE,
    HOST6_KEY_SIZE,
    LPM4_KEY_SIZE,
    LPM6_KEY_SIZE,
)
from nodewall.engine.errors import InputError, KernelError, Loc
from nodewall.engine.plan.desired import XdpSetSource

CHUNK_LINES = 65536
_PL = [struct.pack("<I", i) for i in range(129)]
_PLEN4 = {str(i): i for i in range(33)}
_PLEN6 = {str(i): i for i in range(129)}
_MASK4 = [((1 << 32) - 1) ^ ((1 << (32 - i)) - 1) for i in range(33)]
_MASK6 = [((1 << 128) - 1) ^ ((1 << (128 - i)) - 1) for i in range(129)]
_VAL = struct.Struct("<Q")


def key_size(family: int, host: bool = False) -> int:
    if host:
        return HOST4_KEY_SIZE if family == 4 else HOST6_KEY_SIZE
    return LPM4_KEY_SIZE if family == 4 else LPM6_KEY_SIZE


def width(family: int) -> int:
    return 32 if family == 4 else 128


def _is_family(cidr: str, family: int) -> bool:
    return (":" in cidr) == (family == 6)


def _file_chunks(path: Path, family: int) -> Iterator[str]:
    """CIDR lines of one family from a nets_file, in chunks of text."""
    try:
        from nodewall.engine.nets.scan import iter_member_chunks  # type: ignore[attr-defined]
    except ImportError:
        iter_member_chunks = None
    if iter_member_chunks is not None:  # 1 MiB chunks: ~15 MB of str objects at a time
        for chunk in iter_member_chunks(path, family, 1 << 20):
            yield chunk.decode("ascii")
        return
    want_v6 = family == 6
    lines: list[str] = []
    with open(path, encoding="utf-8") as fh:
        for raw in fh:
            line = raw.split("#", 1)[0].strip()
            if line and (":" in line) == want_v6:
                lines.append(line)
                if len(lines) >= CHUNK_LINES:
                    yield "\n".join(lines)
                    lines = []
    if lines:
        yield "\n".join(lines)


def source_chunks(src: XdpSetSource, family: int) -> Iterator[str]:
    inline = [c for c in src.inline if _is_family(c, family)]
    for i in range(0, len(inline), CHUNK_LINES):
        yield "\n".join(inline[i:i + CHUNK_LINES])
    for path in src.files:
        yield from _file_chunks(Path(path), family)


def pack_chunk(text: str | list[str], family: int, origin: str = "") -> tuple[bytes, int]:
    """Pack CIDR lines (text, or a list of lines) into LPM keys (host bits cleared).
    Returns (keys, count)."""
    lines = text.split() if isinstance(text, str) else text
    inet = socket.inet_pton
    out: list[bytes] = []
    ap = out.append
    pl_bytes = _PL
    try:
        if family == 4:
            af, mask, plens = socket.AF_INET, _MASK4, _PLEN4
            for line in lines:
                a, _, p = line.partition("/")
                pl = plens[p] if p else 32
                raw = inet(af, a)
                if pl < 32:
                    raw = (int.from_bytes(raw, "big") & mask[pl]).to_bytes(4, "big")
                ap(pl_bytes[pl] + raw)
        else:
            af, mask, plens = socket.AF_INET6, _MASK6, _PLEN6
            for line in lines:
                a, _, p = line.partition("/")
                pl = plens[p] if p else 128
                raw = inet(af, a)
                if pl < 128:
                    raw = (int.from_bytes(raw, "big") & mask[pl]).to_bytes(16, "big")
                ap(pl_bytes[pl] + raw)
    except (KeyError, OSError, ValueError) as exc:
        bad = _first_bad("\n".join(lines), family)
        raise InputError(Loc(origin or "(xdp set)"), f"bad IPv{family} CIDR {bad!r}",
                         hint="one CIDR per line, e.g. 192.0.2.0/24 or 2001:db8::/32") from exc
    return b"".join(out), len(out)


def pack_split(lines: list[str], family: int, origin: str = "") -> tuple[bytes, int, bytes, int]:
    """Like pack_chunk, split: (host keys (raw addresses), count, LPM keys of the
    shorter prefixes, count)."""
    inet = socket.inet_pton
    hosts: list[bytes] = []
    nets: list[bytes] = []
    ah, an = hosts.append, nets.append
    pl_bytes = _PL
    w = width(family)
    af, mask = (socket.AF_INET, _MASK4) if family == 4 else (socket.AF_INET6, _MASK6)
    plens = _PLEN4 if family == 4 else _PLEN6
    nb = w // 8
    try:
        for line in lines:
            a, _, p = line.partition("/")
            pl = plens[p] if p else w
            raw = inet(af, a)
            if pl == w:
                ah(raw)
            else:
                an(pl_bytes[pl] + (int.from_bytes(raw, "big") & mask[pl]).to_bytes(nb, "big"))
    except (KeyError, OSError, ValueError) as exc:
        bad = _first_bad("\n".join(lines), family)
        raise InputError(Loc(origin or "(xdp set)"), f"bad IPv{family} CIDR {bad!r}",
                         hint="one CIDR per line, e.g. 192.0.2.0/24 or 2001:db8::/32") from exc
    return b"".join(hosts), len(hosts), b"".join(nets), len(nets)


def _first_bad(text: str, family: int) -> str:
    af = socket.AF_INET if family == 4 else socket.AF_INET6
    limit = 32 if family == 4 else 128
    for line in text.split():
        a, _, p = line.partition("/")
        try:
            socket.inet_pton(af, a)
            if p and not 0 <= int(p) <= limit:
                return line
        except (OSError, ValueError):
            return line
    return "?"


_file_hashes: dict[tuple[str, int, int, int], str] = {}
RACY_NS = 100_000_000


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's content, memoized per (path, inode, size, mtime): one apply
    asks for it in the plan and the fill.  Like git's racy-timestamp rule, a file
    modified less than RACY_NS before hashing began is not memoized (file times come
    from a coarse clock: a second same-size edit may keep the same mtime)."""
    st = os.stat(path)
    key = (str(Path(path).absolute()), st.st_ino, st.st_size, st.st_mtime_ns)
    if key in _file_hashes:
        return _file_hashes[key]
    started = time.time_ns()
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    if started - st.st_mtime_ns > RACY_NS:
        if len(_file_hashes) > 256:
            _file_hashes.clear()
        _file_hashes[key] = h.hexdigest()
    return h.hexdigest()


def source_digest(sets: Iterable[XdpSetSource], family: int) -> str:
    """What the family's maps are made from: bits, inline CIDRs, file contents."""
    h = hashlib.sha256(f"v2 family {family}\n".encode())
    for s in sorted(sets, key=lambda s: s.bit):
        h.update(f"bit {s.bit}\n".encode())
        for c in s.inline:
            if _is_family(c, family):
                h.update(c.encode() + b"\n")
        for p in s.files:
            h.update(f"file {p} {file_sha256(p)}\n".encode())
    return h.hexdigest()


def sources_record(sets: Iterable[XdpSetSource], family: int) -> dict[str, dict]:
    """What the metadata keeps of a family's sources for the next apply's file deltas:
    per bit the inline CIDRs (as written) and the nets_files with their sizes."""
    return {str(s.bit): {"inline": [c for c in s.inline if _is_family(c, family)],
                         "files": [[str(Path(p).absolute()), os.stat(p).st_size]
                                   for p in s.files]}
            for s in sets}


@dataclass
class Batch:
    keys: bytes
    values: bytes
    count: int
    host: bool = False  # keys are raw addresses for the host hash (else LPM keys)


def iter_batches(sets: Iterable[XdpSetSource], family: int) -> Iterator[Batch]:
    """The family's entries as batches of packed keys and values, host batches (for
    the hash) and trie batches."""
    members = [s for s in sets if (s.count_v4 if family == 4 else s.count_v6) > 0
               or any(_is_family(c, family) for c in s.inline)]
    if not members:
        return
    if len(members) == 1:
        s = members[0]
        val = _VAL.pack(1 << s.bit)
        for text in source_chunks(s, family):
            lines = text.split()
            for i in range(0, len(lines), CHUNK_LINES):  # small batches: the loader
                hk, nh, nk, nn = pack_split(lines[i:i + CHUNK_LINES], family,  # starts early
                                            s.origin)
                if nh:
                    yield Batch(hk, val * nh, nh, True)
                if nn:
                    yield Batch(nk, val * nn, nn)
        return
    sizes = {s.bit: source_size(s, family) for s in members}
    big = [s for s in members if sizes[s.bit] > SMALL_MERGE]
    small = [s for s in members if sizes[s.bit] <= SMALL_MERGE]
    if len(big) == 1 and sum(sizes[s.bit] for s in small) <= SMALL_MERGE:
        yield from streamed_batches(big[0], small, family)
        return
    yield from merged_batches(members, family)


SMALL_MERGE = 65536  # sets up to this size (together) are merged in memory


def source_size(s: XdpSetSource, family: int) -> int:
    """Upper bound of a set's entries in one family (file counts + inline)."""
    return ((s.count_v4 if family == 4 else s.count_v6)
            + sum(1 for c in s.inline if _is_family(c, family)))


def _lpm_entries(blob: bytes, count: int, family: int) -> tuple[list[int], list[int]]:
    """LPM keys -> (prefix lengths, addresses as ints), in key order."""
    if family == 4:
        arr = array("I", blob)
        pls, addrs = arr[0::2], arr[1::2]
        if sys.byteorder == "little":
            addrs.byteswap()
        return list(pls), list(addrs)
    return ([int.from_bytes(blob[i:i + 4], "little") for i in range(0, count * 20, 20)],
            [int.from_bytes(blob[i + 4:i + 20], "big") for i in range(0, count * 20, 20)])


def streamed_batches(big: XdpSetSource, small: list[XdpSetSource],
                     family: int) -> Iterator[Batch]:
    """One big set and a few small ones in a family, without holding the big one: the
    small sets are merged in memory; the big set streams through in chunks, each entry
    valued big's bit | the bits of small entries equal to or covering it; the small
    entries covered by (or equal to) a big entry are noted on the way and written
    last with their full values."""
    w = width(family)
    nb = w // 8
    full = _PL[w]
    small_content = merge(small, family) if small else {}
    s_hosts: dict[int, int] = {}
    s_nets: dict[int, dict[int, int]] = {}  # prefix length -> address -> bits
    for k, v in small_content.items():
        pl, a = int.from_bytes(k[:4], "little"), int.from_bytes(k[4:], "big")
        if pl == w:
            s_hosts[a] = v
        else:
            s_nets.setdefault(pl, {})[a] = v
    s_lens = sorted(s_nets)
    # small keys by their address masked to each big prefix length (built on first use)
    s_keys = [(int.from_bytes(k[:4], "little"), int.from_bytes(k[4:], "big"), k)
              for k in small_content]
    masked: dict[int, dict[int, list[bytes]]] = {}

    def under(pl: int) -> dict[int, list[bytes]]:
        if pl not in masked:
            m, d = _mask(pl, w), {}
            for spl, a, k in s_keys:
                if spl >= pl:
                    d.setdefault(a & m, []).append(k)
            masked[pl] = d
        return masked[pl]

    bit = 1 << big.bit
    base = array("Q", [bit])
    hit_small: set[bytes] = set()
    for text in source_chunks(big, family):
        lines = text.split()
        for i in range(0, len(lines), CHUNK_LINES):
            hk, nh, nk, nn = pack_split(lines[i:i + CHUNK_LINES], family, big.origin)
            if nh:
                addrs = list(_host_ints(hk, family))
                vals = base * nh
                if s_hosts:
                    for j in compress(range(nh), map(s_hosts.__contains__, addrs)):
                        vals[j] |= s_hosts[addrs[j]]
                for q in s_lens:
                    nets, m = s_nets[q], _mask(q, w)
                    for j in compress(range(nh), map(nets.__contains__, map(m.__and__, addrs))):
                        vals[j] |= nets[addrs[j] & m]
                if s_hosts:
                    hit_small.update(full + a.to_bytes(nb, "big")
                                     for a in compress(addrs, map(s_hosts.__contains__, addrs)))
                yield Batch(hk, vals.tobytes(), nh, True)
            if nn:
                pls, addrs = _lpm_entries(nk, nn, family)
                vals = base * nn
                for q in s_lens:
                    nets, m = s_nets[q], _mask(q, w)
                    for j in compress(range(nn), map(nets.__contains__, map(m.__and__, addrs))):
                        if pls[j] >= q:
                            vals[j] |= nets[addrs[j] & m]
                if s_keys:
                    for pl in set(pls):
                        d = under(pl)
                        if d:
                            for j in compress(range(nn), map(d.__contains__, addrs)):
                                if pls[j] == pl:
                                    hit_small.update(d[addrs[j]])
                yield Batch(nk, vals.tobytes(), nn)
    if small_content:
        yield from batches_from_dict({k: v | (bit if k in hit_small else 0)
                                      for k, v in small_content.items()}, family)


def merge(sets: Iterable[XdpSetSource], family: int) -> dict[bytes, int]:
    """key -> OR of the bits of the sets holding that CIDR or any covering prefix."""
    return content_dict(merged_batches(list(sets), family), family)


def _host_ints(blob: bytes, family: int) -> Iterable[int]:
    """Raw host addresses (4 or 16 bytes each, network order) as ints."""
    if family == 4:
        arr = array("I", blob)
        if sys.byteorder == "little":
            arr.byteswap()
        return arr
    return [int.from_bytes(blob[i:i + 16], "big") for i in range(0, len(blob), 16)]


def _host_blob(addrs: list[int], family: int) -> bytes:
    if family == 4:
        arr = array("I", addrs)
        if sys.byteorder == "little":
            arr.byteswap()
        return arr.tobytes()
    return b"".join(a.to_bytes(16, "big") for a in addrs)


def _covered(addrs: dict[int, int], nets: dict[int, int], mask: int) -> list[int]:
    """The addresses whose mask-ed value is in nets (map/compress: no bytecode per
    address; both iterations walk the same unchanged dict in the same order)."""
    return list(compress(addrs, map(nets.__contains__, map(mask.__and__, addrs))))


def _nets_by_len(blob: bytes, count: int, family: int) -> dict[int, list[int]]:
    """LPM keys -> prefix length -> addresses (ints)."""
    if family == 4:
        arr = array("I", blob)
        pls, addrs = arr[0::2], arr[1::2]
        if sys.byteorder == "little":
            addrs.byteswap()
        return {pl: list(compress(addrs, map(pl.__eq__, pls))) for pl in set(pls)}
    out: dict[int, list[int]] = {}
    for i in range(0, count * 20, 20):
        out.setdefault(int.from_bytes(blob[i:i + 4], "little"), []).append(
            int.from_bytes(blob[i + 4:i + 20], "big"))
    return out


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


def merged_batches(sets: list[XdpSetSource], family: int) -> Iterator[Batch]:
    """The batches of two or more sets of one family, merged without per-entry objects
    beyond one int per address: host entries (/32, /128) and each shorter prefix
    length are unions of int sets (duplicates OR their bits); a prefix then takes the
    bits of the prefixes covering it (shortest lengths first, so theirs are final),
    and a host those of every prefix covering it."""
    w = width(family)
    hosts: list[tuple[int, Iterable[int]]] = []
    nets: dict[int, list[tuple[int, list[int]]]] = {}
    nb = w // 8
    for s in sets:
        bit = 1 << s.bit
        for text in source_chunks(s, family):
            hk, nh, nk, nn = pack_split(text.split(), family, s.origin)
            if nh:
                hosts.append((bit, _host_ints(hk, family)))
            for pl, addrs in _nets_by_len(nk, nn, family).items():
                nets.setdefault(pl, []).append((bit, addrs))
    host_bits = _union_bits(hosts)
    del hosts
    lengths = sorted(nets)
    net_bits = {pl: _union_bits(nets[pl]) for pl in lengths}
    del nets
    for idx, pl in enumerate(lengths):  # covering bits among the prefixes
        cur = net_bits[pl]
        for q in lengths[:idx]:
            shorter, m = net_bits[q], _mask(q, w)
            for a in _covered(cur, shorter, m):
                cur[a] |= shorter[a & m]
    for q in lengths:  # covering bits of the hosts
        shorter, m = net_bits[q], _mask(q, w)
        for a in _covered(host_bits, shorter, m):
            host_bits[a] |= shorter[a & m]
    addrs = list(host_bits)
    for i in range(0, len(addrs), CHUNK_LINES):
        part = addrs[i:i + CHUNK_LINES]
        yield Batch(_host_blob(part, family), array("Q", map(host_bits.__getitem__, part))
                    .tobytes(), len(part), True)
    for pl in lengths:
        items = list(net_bits[pl].items())
        pre = _PL[pl]
        for i in range(0, len(items), CHUNK_LINES):
            part = items[i:i + CHUNK_LINES]
            yield Batch(b"".join(pre + a.to_bytes(nb, "big") for a, _ in part),
                        array("Q", [v for _, v in part]).tobytes(), len(part))


def _mask(pl: int, width: int) -> int:
    return _MASK4[pl] if width == 32 else _MASK6[pl]


def batches_from_dict(content: dict[bytes, int], family: int) -> Iterator[Batch]:
    """LPM-style keyed contents -> host batches (prefix = full width) and trie batches."""
    full = _PL[width(family)]
    hosts = [(k[4:], v) for k, v in content.items() if k[:4] == full]
    nets = [(k, v) for k, v in content.items() if k[:4] != full]
    for items, host in ((hosts, True), (nets, False)):
        for i in range(0, len(items), CHUNK_LINES):
            part = items[i:i + CHUNK_LINES]
            yield Batch(b"".join(k for k, _ in part), b"".join(_VAL.pack(v) for _, v in part),
                        len(part), host)


def content_dict(batches: Iterable[Batch], family: int) -> dict[bytes, int]:
    """Batches -> contents with LPM-style keys (host keys get the full prefix length)."""
    full = _PL[width(family)]
    out: dict[bytes, int] = {}
    for b in batches:
        ks = key_size(family, b.host)
        pre = full if b.host else b""
        for i in range(b.count):
            out[pre + b.keys[i * ks:(i + 1) * ks]] = _VAL.unpack_from(b.values, i * 8)[0]
    return out


def _addr_of(b: bytes) -> int:
    return ctypes.cast(ctypes.c_char_p(b), ctypes.c_void_p).value or 0


def update_batch(fd: int, keys: bytes, values: bytes, count: int, ks: int,
                 chunk: int = CHUNK_LINES) -> None:
    """BPF_MAP_UPDATE_BATCH with a fall-back to smaller chunks and then single
    updates on ENOMEM (and single updates where the kernel has no batch op)."""
    ka, va = _addr_of(keys), _addr_of(values)
    off, step = 0, min(chunk, max(count, 1))
    while off < count:
        n = min(step, count - off)
        done, err = sys_.map_update_batch(fd, ka + off * ks, va + off * 8, n)
        off += done
        if err == 0:
            continue
        if err in (errno.ENOMEM, errno.EINVAL, errno.EOPNOTSUPP, 524) and step > 1:
            step = max(1, step // 8)
            continue
        if err == errno.ENOSPC:
            raise KernelError("XDP source trie is full",
                              hint="the set counts in the profile are lower than the "
                                   "files' contents; re-validate the profile")
        raise KernelError(f"BPF_MAP_UPDATE_BATCH failed: {errno.errorcode.get(err, err)}",
                          hint="check free memory (LPM entries are kernel memory) "
                               "and dmesg")


def delete_keys(fd: int, keys: list[bytes], ks: int) -> None:
    for k in keys:
        buf = ctypes.create_string_buffer(k, ks)
        sys_.map_delete(fd, buf)


def delete_content(host_fd: int | None, trie_fd: int | None, keys: list[bytes],
                   family: int) -> None:
    """Delete LPM-style keys from the host hash (full-width prefixes) or the trie."""
    full = _PL[width(family)]
    hosts = [k[4:] for k in keys if k[:4] == full]
    nets = [k for k in keys if k[:4] != full]
    if hosts and host_fd is not None:
        delete_keys(host_fd, hosts, key_size(family, True))
    if nets and trie_fd is not None:
        delete_keys(trie_fd, nets, key_size(family))


def load(fd_for: Callable[[bool], int], batches: Iterable[Batch],
         family: int) -> tuple[int, int]:
    """Feed batches to the maps from a worker thread while the caller's iterator
    parses the next one.  fd_for(host) gives the map of a batch (the host hash or the
    trie; it may create it on first use).  Returns the entries written (hosts, nets)."""
    q: queue.Queue[Batch | None] = queue.Queue(maxsize=2)
    failure: list[BaseException] = []

    def worker() -> None:
        while True:
            item = q.get()
            if item is None:
                return
            if failure:
                continue
            try:
                update_batch(fd_for(item.host), item.keys, item.values, item.count,
                             key_size(family, item.host))
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
                failure.append(exc)

    t = threading.Thread(target=worker, name="nw-xdp-load", daemon=True)
    t.start()
    total = [0, 0]
    try:
        for b in batches:
            if failure:
                break
            q.put(b)
            total[0 if b.host else 1] += b.count
    finally:
        q.put(None)
        t.join()
    if failure:
        raise failure[0]
    return total[0], total[1]


def dump_content(host_fd: int | None, trie_fd: int | None, family: int) -> dict[bytes, int]:
    """Both maps' entries with LPM-style keys (for deltas on small sets)."""
    out = dump(trie_fd, family) if trie_fd is not None else {}
    if host_fd is not None:
        full = _PL[width(family)]
        out.update({full + k: v for k, v in dump(host_fd, family, True).items()})
    return out


def dump(fd: int, family: int, host: bool = False) -> dict[bytes, int]:
    """Every entry of a trie (host: of a host hash, keys = raw addresses)."""
    ks = key_size(family, host)
    key = ctypes.create_string_buffer(ks)
    nxt = ctypes.create_string_buffer(ks)
    val = ctypes.c_uint64()
    out: dict[bytes, int] = {}
    first = True
    for _ in range(1 << 26):  # bounded: far above any trie we create
        if not sys_.map_next_key(fd, None if first else key, nxt):
            break
        first = False
        ctypes.memmove(key, nxt, ks)
        if sys_.map_lookup(fd, key, val):
            out[key.raw] = val.value
    return out
