"""The `pair` of namespaces the XDP backend tests use: the client also holds the
denied addresses; the server's pins are always removed afterwards."""
from __future__ import annotations

import pytest
from nodewall.engine.dataplane.xdp import maps as xdp_maps
from nodewall.engine.system import netns

from tests.helpers.xdp_kit import DENIED4, DENIED6, flush_xdp


@pytest.fixture
def pair(netns_pair):
    netns_pair.add_client_address(f"{DENIED4}/24")
    netns_pair.add_client_address(f"{DENIED6}/64")
    try:
        yield netns_pair
    finally:  # never leave pins behind, even when a test fails
        netns.run_in_netns(netns_pair.server, flush_xdp)
        leftover = xdp_maps.PIN_ROOT / netns_pair.server
        assert not leftover.exists(), f"pins left in {leftover}"
