"""Ownership by nodewall's own naming grammar (issue 15, item 4): every chain and set
the planner makes (panic's and temp sets included) is recognised as nodewall's; names
that merely start with `nw-` are not."""
from __future__ import annotations

from pathlib import Path

import pytest
from nodewall.engine.dataplane.ipsets.load import temp_name
from nodewall.engine.plan.naming import (
    endpoint_chain,
    owned_chain_name,
    owned_set_name,
    rule_nets_set,
)
from nodewall.engine.plan.planner import plan
from nodewall.engine.profile.loader import load_profiles
from nodewall.engine.safety import panic

from tests.helpers.profile_kit import DESIGN_EXAMPLE

MIXED_RULE = """
[[policies]]
name = "many-nets"
order = 30
selector = "all()"
types = ["ingress"]
  [[policies.ingress]]
  action = "deny"
  source = { nets = ["192.0.2.0/24", "198.51.100.0/24", "2001:db8::/32", "2001:db9::/32"] }
  [[policies.ingress]]
  action = "deny"
  source = { selector = "all()" }
"""


def test_every_name_the_planner_makes_is_owned(tmp_path: Path):
    (tmp_path / "blocklist.txt").write_text("198.51.100.0/24\n2001:db8:beef::/48\n")
    path = tmp_path / "p.toml"
    path.write_text(DESIGN_EXAMPLE + MIXED_RULE)
    desired = plan(load_profiles([path]))
    desired = panic.overlay(desired, panic.state_from_settings(None, since=0.0))
    chains = {c.name for t in desired.tables for c in t.chains}
    sets = {s.name for s in desired.ipsets}
    assert len(chains) >= 6 and len(sets) >= 4
    assert {n for n in chains if not owned_chain_name(n)} == set()
    assert {n for n in sets if not owned_set_name(n)} == set()
    assert {n for n in sets if not owned_set_name(temp_name(n))} == set()


@pytest.mark.parametrize("name", ["nw-custom", "nw-INPUT2", "nw-fi-", "nw-fi-a b",
                                  "nw-rfi-eth0/1", "nw-", "NW-INPUT"])
def test_foreign_chain_names(name: str):
    assert not owned_chain_name(name)


@pytest.mark.parametrize("name", ["nw-evil", "nw-n4-x", "nw-n4-x-abcdeg", "nw-l4-123",
                                  "nw-t-xyz", "nw-sn4-short"])
def test_foreign_set_names(name: str):
    assert not owned_set_name(name)


def test_long_interface_names_and_rule_sets_are_owned():
    assert owned_chain_name(endpoint_chain("ffo", "a" * 40))
    assert owned_chain_name(endpoint_chain("fi", "*"))
    assert owned_set_name(rule_nets_set("Qx8EZNVezuzEPFBl", "dx", 6))


def test_chain_interface_names_the_endpoint_of_a_chain() -> None:
    from nodewall.engine.plan.naming import chain_interface, endpoint_chain
    assert chain_interface(endpoint_chain("fi", "eth0")) == "eth0"
    assert chain_interface(endpoint_chain("rto", "*")) == "*"
    assert chain_interface(endpoint_chain("ffo", "vlan.100")) == "vlan.100"
    assert chain_interface("nw-untracked-allow") == ""
    assert chain_interface("nw-INPUT") == ""
    assert chain_interface("nw-panic-in") == ""
