"""rules_holding: the rules whose networks hold an address, through the set
membership explain uses (selector-matched network sets, nets_file lines, inline
CIDRs, XDP sources), pure."""
from __future__ import annotations

import ipaddress

import pytest
from nodewall.engine.explain.holding import rules_holding

from .test_explain import _desired


def _policies(desired, ids) -> set[tuple[str, str, int]]:
    return {(desired.rules[i].policy, desired.rules[i].direction, desired.rules[i].index)
            for i in ids}


@pytest.mark.parametrize("backend", ["iptables", "nftables", "xdp"])
@pytest.mark.parametrize("address,policies", [
    # a line of the nets_file, reached through the selector list == "drop"
    ("203.0.113.7", {("drop-blocklist", "ingress", 0)}),
    ("198.51.100.9", {("drop-blocklist", "ingress", 0)}),  # the set's inline nets
    ("2001:db8::5", {("drop-blocklist", "ingress", 0)}),  # an IPv6 line of the file
    ("10.9.9.9", {("redis-untracked", "ingress", 0)}),  # a CIDR written in the rule
    ("192.0.2.53", {("web", "egress", 0)}),
    ("192.168.7.7", set()),
])
def test_rules_whose_networks_hold_the_address(tmp_path, backend, address, policies):
    desired = _desired(tmp_path, backend)
    found = rules_holding(desired, ipaddress.ip_address(address))
    assert {p for p in _policies(desired, found) if not p[0].startswith("(")} == policies
