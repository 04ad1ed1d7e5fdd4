"""[settings] packet_filter: which packet filter holds the rules, and XDP's backstop."""
from __future__ import annotations

from dataclasses import replace

import pytest
from nodewall.engine.plan.planner import plan
from nodewall.engine.profile.model import EntityMatch
from nodewall.engine.safety.validation import with_backend

from tests.helpers.planner_kit import hep, netset, policy, profile, rule

BLOCK = netset("blocklist", ("203.0.113.0/24",), {"list": "drop"})


def _profile(backend: str = "auto", packet_filter: str = "auto"):
    deny = rule("deny", src=EntityMatch(selector='list == "drop"'))
    p = profile(heps=[hep()], sets=[BLOCK], backend=backend,
                policies=[policy("u", ingress=(deny,), tier="untracked")])
    return replace(p, settings=replace(p.settings, packet_filter=packet_filter))


@pytest.mark.parametrize(("backend", "packet_filter", "auto", "chosen"), [
    ("auto", "auto", "iptables", "iptables"),  # old profiles: legacy xtables host
    ("auto", "auto", "nftables", "nftables"),  # a kernel without legacy xtables
    ("xdp", "nftables", "iptables", "nftables"),
    ("auto", "iptables", "nftables", "iptables"),
    ("nftables", "auto", "iptables", "nftables"),
    ("iptables", "auto", "nftables", "iptables"),
])
def test_packet_filter_choice(backend, packet_filter, auto, chosen) -> None:
    d = plan(_profile(backend, packet_filter), auto_packet_filter=auto)
    assert d.packet_filter == chosen


def test_xdp_keeps_its_stage_in_front_of_an_nftables_backstop() -> None:
    d = plan(_profile("xdp", "nftables"))
    assert d.packet_filter == "nftables"
    assert [i.iface for i in d.xdp.interfaces] == ["eth0"]
    assert plan(_profile("nftables")).xdp.interfaces == ()


def test_cli_backend_names_the_packet_filter() -> None:
    """`--backend iptables` over a profile that asks for an nftables backstop: the CLI
    wins, no conflict; `--backend xdp` keeps the profile's backstop."""
    p = _profile("auto", "nftables")
    assert plan(with_backend(p, "iptables")).packet_filter == "iptables"
    assert plan(with_backend(p, "xdp")).packet_filter == "nftables"
    assert with_backend(p, None) is p
