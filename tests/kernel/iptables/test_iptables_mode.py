"""iptables mode detection inside a throwaway namespace."""
from __future__ import annotations

import pytest
from nodewall.engine.dataplane.iptables import apply as iptables_apply
from nodewall.engine.dataplane.iptables import mode as iptables_mode
from nodewall.engine.plan.desired import (
    Chain,
    ChainRule,
    DesiredState,
    Hook,
    Match,
    TableState,
    Target,
    XdpState,
)
from nodewall.engine.system.netns import run_in_netns

from tests.conftest import in_ns

pytestmark = pytest.mark.kernel


def test_mode_follows_where_rules_are(netns_one):
    ns = netns_one
    m = run_in_netns(ns, iptables_mode.detect)
    assert (m.kind, m.legacy_rules, m.nft_rules, m.nodewall_rules) == ("none", 0, 0, 0)
    assert m.default in ("legacy", "nft", "unknown")

    chain = Chain("nw-fi", (ChainRule("r1", Match(protocol="icmp"), Target("ACCEPT")),))
    desired = DesiredState((TableState(4, "filter", (chain,), (Hook("INPUT", "nw-fi"),)),),
                           (), XdpState(), {})
    run_in_netns(ns, iptables_apply.apply, desired)
    m = run_in_netns(ns, iptables_mode.detect)
    assert (m.kind, m.nodewall_rules) == ("none", 2)  # ours alone: the host has no mode

    in_ns(ns, "iptables-legacy", "-A", "OUTPUT", "-p", "udp", "--dport", "9", "-j", "DROP")
    assert run_in_netns(ns, iptables_mode.detect).kind == "legacy"

    in_ns(ns, "iptables-nft", "-A", "OUTPUT", "-p", "udp", "--dport", "9", "-j", "DROP")
    m = run_in_netns(ns, iptables_mode.detect)
    assert (m.kind, m.legacy_rules, m.nft_rules) == ("mixed", 1, 1)
    assert "nodewall writes legacy xtables" in m.message()

    in_ns(ns, "iptables-legacy", "-F", "OUTPUT")
    assert run_in_netns(ns, iptables_mode.iptables_mode) == "nft"

