"""netlink.ranges_of: the elements the kernel dumps back into merged ranges (the
inverse of netlink.elements), as the drift check compares them."""
from __future__ import annotations

import struct

from nodewall.engine.dataplane.nftables import intervals, netlink


def _decode(encoded: list[bytes]) -> list[tuple[bytes, bool]]:
    """Each encoded NFTA_LIST_ELEM back to (key, interval end), as a dump holds them."""
    out = []
    for el in encoded:
        n = struct.unpack_from("=H", el)[0]
        parsed = netlink._element(el[4:n])
        assert parsed is not None
        out.append(parsed)
    return out


def test_elements_round_trip_v4_with_open_end_and_zero_marker() -> None:
    packed: list[int] = []
    intervals.parse_chunk(b"10.0.0.0/24\n10.0.2.0/24\n192.0.2.5\n240.0.0.0/4\n", 4, packed)
    ranges = intervals.merge(packed, 4)
    dumped = _decode(list(netlink.elements(ranges, 4)))
    dumped.append((b"\0\0\0\0", True))  # nft's own end marker at 0
    dumped.reverse()  # the kernel dumps an rbtree set from the top
    assert netlink.ranges_of(dumped) == ranges
    assert [intervals.to_text(r, 4) for r in ranges] == [
        "10.0.0.0/24", "10.0.2.0/24", "192.0.2.5", "240.0.0.0/4"]


def test_adjacent_ranges_and_v6() -> None:
    packed: list[int] = []
    intervals.parse_chunk(b"2001:db8::/33\n2001:db8:8000::/33\n::1\n", 6, packed)
    dumped = _decode(list(netlink.elements(sorted(packed), 6)))  # unmerged: an end
    # and a start share a key
    assert intervals.merge(netlink.ranges_of(dumped), 6) == intervals.merge(packed, 6)
    assert netlink.ranges_of([]) == []
