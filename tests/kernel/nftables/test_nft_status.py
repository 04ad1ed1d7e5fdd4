"""status (text and JSON) says what the host's `iptables` is, what nodewall writes,
and recommends nftables when the host's `iptables` is iptables-nft while the
generation uses legacy xtables."""
from __future__ import annotations

import pytest
from nodewall.engine.dataplane.iptables.mode import default_backend
from nodewall.engine.system import netns

from tests.conftest import IS_ROOT
from tests.helpers.safety_kit import nw, status, write_profile

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(not IS_ROOT, reason="kernel test: needs root for namespaces")]


def test_status_names_the_packet_filter_and_recommends_nftables(netns_pair, tmp_path):
    ns, state = netns_pair.server, tmp_path / "state"
    command = netns.run_in_netns(ns, default_backend)  # `iptables -V` in the namespace
    profile = write_profile(tmp_path / "p", "p", iface="srv0", members=10, rules=2)

    nw(ns, state, "apply", str(profile))
    report = status(ns, state)
    assert report["packet_filter"] == "iptables"
    assert report["iptables_command"] == command
    assert report["writes"].startswith("iptables-legacy")
    text = nw(ns, state, "status").stdout
    assert f"`iptables` is {command}" in text
    if command == "nft":  # this host: Debian 12's iptables is iptables-nft
        assert 'packet_filter = "nftables"' in report["recommendation"]
        assert "recommendation: this host's `iptables` is iptables-nft" in text
    else:
        assert report["recommendation"] is None and "recommendation:" not in text

    nw(ns, state, "apply", "--backend", "nftables", str(profile))
    report = status(ns, state)
    assert report["packet_filter"] == "nftables" and report["recommendation"] is None
    assert report["writes"].startswith("nftables (table inet nodewall)")
    assert "recommendation:" not in nw(ns, state, "status").stdout
    nw(ns, state, "flush")
