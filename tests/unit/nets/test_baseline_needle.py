"""v4_needle: the text every canonical spelling of an address inside a network starts
with (the delta paths search nets_files for it)."""
from __future__ import annotations

import ipaddress

from nodewall.engine.nets.baseline import v4_needle


def _needle(cidr: str) -> bytes:
    net = ipaddress.ip_network(cidr)
    return v4_needle(int(net.network_address), net.prefixlen)


def test_needle_is_the_fixed_octets():
    assert _needle("10.0.0.0/7") == b""
    assert _needle("10.1.0.0/16") == b"10.1."
    assert _needle("10.1.2.0/23") == b"10.1."
    assert _needle("10.1.2.0/24") == b"10.1.2."


def test_a_host_needle_matches_its_own_line():
    """All four octets fixed: no trailing dot, or `10.1.2.3` itself would not match."""
    assert _needle("10.1.2.3/32") == b"10.1.2.3"
    assert _needle("10.1.2.3/32") in b"10.1.2.3\n"
