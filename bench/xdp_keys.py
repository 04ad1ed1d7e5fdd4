"""LPM keys for every entry of a CIDR list, hosts included (/32 and /128 as
full-length prefixes): the one trie of bench/floor_lpm.c and of xdp_load's raw
BPF_MAP_UPDATE_BATCH baseline.  nodewall itself splits hosts from shorter prefixes
(engine.dataplane.xdp.cidr_keys.pack_split)."""
from __future__ import annotations

import socket

from nodewall.engine.dataplane.xdp.cidr_keys import (
    MASK4,
    MASK6,
    PLEN4,
    PLEN6,
    PREFIX_BYTES,
    bad_cidr_error,
)


def pack_chunk(text: str | list[str], family: int, origin: str = "") -> tuple[bytes, int]:
    """Pack CIDR lines (text, or a list of lines) into LPM keys (host bits cleared).
    Returns (keys, count)."""
    lines = text.split() if isinstance(text, str) else text
    inet = socket.inet_pton
    out: list[bytes] = []
    ap = out.append
    w, nb = (32, 4) if family == 4 else (128, 16)
    af, masks, plens = ((socket.AF_INET, MASK4, PLEN4) if family == 4
                        else (socket.AF_INET6, MASK6, PLEN6))
    try:
        for line in lines:
            a, _, p = line.partition("/")
            pl = plens[p] if p else w
            raw = inet(af, a)
            if pl < w:
                raw = (int.from_bytes(raw, "big") & masks[pl]).to_bytes(nb, "big")
            ap(PREFIX_BYTES[pl] + raw)
    except (KeyError, OSError, ValueError) as exc:
        raise bad_cidr_error(list(lines), family, origin) from exc
    return b"".join(out), len(out)
