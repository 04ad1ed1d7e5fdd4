"""CIDR text -> the packed keys of the XDP source maps, and the Batch that carries
them (with their u64 set-bit values) to the kernel.

Host entries (/32, /128) are keyed by the raw address (the exact-match hash),
shorter prefixes by struct nw_lpm4/6 (u32 prefix length, little-endian, then the
address with its host bits cleared: the LPM trie).  Contents held in dicts (merges,
deltas) use LPM-style keys for both kinds (a host gets the full prefix length); the
split into host and trie entries happens at the map boundary (batches_from_dict).
"""
from __future__ import annotations

import socket
import struct
import sys
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import compress

from nodewall.engine.dataplane.xdp.layout import (
    HOST4_KEY_SIZE,
    HOST6_KEY_SIZE,
    LPM4_KEY_SIZE,
    LPM6_KEY_SIZE,
)
from nodewall.engine.errors import InputError, Loc

CHUNK_LINES = 65536  # entries per batch (and per parsed chunk of inline CIDRs)
PREFIX_BYTES = [struct.pack("<I", i) for i in range(129)]  # the u32 prefixlen of a key
PLEN4 = {str(i): i for i in range(33)}
PLEN6 = {str(i): i for i in range(129)}
MASK4 = [((1 << 32) - 1) ^ ((1 << (32 - i)) - 1) for i in range(33)]
MASK6 = [((1 << 128) - 1) ^ ((1 << (128 - i)) - 1) for i in range(129)]
VALUE = struct.Struct("<Q")  # a map value: the u64 set bits


def key_size(family: int, host: bool = False) -> int:
    if host:
        return HOST4_KEY_SIZE if family == 4 else HOST6_KEY_SIZE
    return LPM4_KEY_SIZE if family == 4 else LPM6_KEY_SIZE


def width(family: int) -> int:
    return 32 if family == 4 else 128


def mask(pl: int, width: int) -> int:
    """The netmask of prefix length pl as an int of `width` bits."""
    return MASK4[pl] if width == 32 else MASK6[pl]


def is_family(cidr: str, family: int) -> bool:
    return (":" in cidr) == (family == 6)


@dataclass
class Batch:
    keys: bytes
    values: bytes
    count: int
    host: bool = False  # keys are raw addresses for the host hash (else LPM keys)


def bad_cidr_error(lines: list[str], family: int, origin: str) -> InputError:
    bad = first_bad("\n".join(lines), family)
    return InputError(Loc(origin or "(xdp set)"), f"bad IPv{family} CIDR {bad!r}",
                      hint="one CIDR per line, e.g. 192.0.2.0/24 or 2001:db8::/32")


def first_bad(text: str, family: int) -> str:
    """The first line of text that is not a CIDR of the family ("?" if none)."""
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


def pack_split(lines: list[str], family: int, origin: str = "") -> tuple[bytes, int, bytes, int]:
    """Pack CIDR lines: (host keys (raw addresses), count, LPM keys of the shorter
    prefixes (host bits cleared), count)."""
    inet = socket.inet_pton
    hosts: list[bytes] = []
    nets: list[bytes] = []
    ah, an = hosts.append, nets.append
    pl_bytes = PREFIX_BYTES
    w = width(family)
    af, masks = (socket.AF_INET, MASK4) if family == 4 else (socket.AF_INET6, MASK6)
    plens = PLEN4 if family == 4 else PLEN6
    nb = w // 8
    try:
        for line in lines:
            a, _, p = line.partition("/")
            pl = plens[p] if p else w
            raw = inet(af, a)
            if pl == w:
                ah(raw)
            else:
                an(pl_bytes[pl] + (int.from_bytes(raw, "big") & masks[pl]).to_bytes(nb, "big"))
    except (KeyError, OSError, ValueError) as exc:
        raise bad_cidr_error(lines, family, origin) from exc
    return b"".join(hosts), len(hosts), b"".join(nets), len(nets)


def host_ints(blob: bytes, family: int) -> Iterable[int]:
    """Raw host addresses (4 or 16 bytes each, network order) as ints."""
    if family == 4:
        arr = array("I", blob)
        if sys.byteorder == "little":
            arr.byteswap()
        return arr
    return [int.from_bytes(blob[i:i + 16], "big") for i in range(0, len(blob), 16)]


def host_blob(addrs: list[int], family: int) -> bytes:
    """The inverse of host_ints."""
    if family == 4:
        arr = array("I", addrs)
        if sys.byteorder == "little":
            arr.byteswap()
        return arr.tobytes()
    return b"".join(a.to_bytes(16, "big") for a in addrs)


def lpm_entries(blob: bytes, count: int, family: int) -> tuple[list[int], list[int]]:
    """LPM keys -> (prefix lengths, addresses as ints), in key order."""
    if family == 4:
        arr = array("I", blob)
        pls, addrs = arr[0::2], arr[1::2]
        if sys.byteorder == "little":
            addrs.byteswap()
        return list(pls), list(addrs)
    return ([int.from_bytes(blob[i:i + 4], "little") for i in range(0, count * 20, 20)],
            [int.from_bytes(blob[i + 4:i + 20], "big") for i in range(0, count * 20, 20)])


def nets_by_len(blob: bytes, count: int, family: int) -> dict[int, list[int]]:
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


def split_key(key: bytes) -> tuple[int, int]:
    """An LPM-style key -> (prefix length, address as int)."""
    return int.from_bytes(key[:4], "little"), int.from_bytes(key[4:], "big")


def batches_from_dict(content: dict[bytes, int], family: int) -> Iterator[Batch]:
    """LPM-style keyed contents -> host batches (prefix = full width) and trie batches."""
    full = PREFIX_BYTES[width(family)]
    hosts = [(k[4:], v) for k, v in content.items() if k[:4] == full]
    nets = [(k, v) for k, v in content.items() if k[:4] != full]
    for items, host in ((hosts, True), (nets, False)):
        for i in range(0, len(items), CHUNK_LINES):
            part = items[i:i + CHUNK_LINES]
            yield Batch(b"".join(k for k, _ in part), b"".join(VALUE.pack(v) for _, v in part),
                        len(part), host)


def content_dict(batches: Iterable[Batch], family: int) -> dict[bytes, int]:
    """Batches -> contents with LPM-style keys (host keys get the full prefix length)."""
    full = PREFIX_BYTES[width(family)]
    out: dict[bytes, int] = {}
    for b in batches:
        ks = key_size(family, b.host)
        pre = full if b.host else b""
        for i in range(b.count):
            out[pre + b.keys[i * ks:(i + 1) * ks]] = VALUE.unpack_from(b.values, i * 8)[0]
    return out
