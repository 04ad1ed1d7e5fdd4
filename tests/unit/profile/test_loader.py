"""load_profiles: the design example, defaults and inference, warnings."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
from nodewall.engine.errors import InputErrors, Loc
from nodewall.engine.nets.baseline import BaselineStore
from nodewall.engine.profile.loader import load_profiles
from nodewall.engine.profile.model import (
    DEFAULT_FAILSAFE_INBOUND,
    DEFAULT_FAILSAFE_OUTBOUND,
    DEFAULT_MAX_SET_ENTRIES,
    IcmpMatch,
    PortRange,
)

from tests.helpers.profile_kit import BLOCKLIST, DESIGN_EXAMPLE, errors_of, load, write

# ---------------------------------------------------------------- the DESIGN example

def test_design_example(tmp_path: Path) -> None:
    (tmp_path / "blocklist.txt").write_text(BLOCKLIST)
    path = tmp_path / "redis-host.toml"
    path.write_text(DESIGN_EXAMPLE)
    profile = load_profiles([str(path)])
    f = str(path)
    assert profile.files == (f,)
    assert profile.warnings == ()

    s = profile.settings
    assert (s.backend, s.xdp_mode, s.max_set_entries) == ("auto", "auto", DEFAULT_MAX_SET_ENTRIES)
    assert [str(x) for x in s.failsafe_inbound] == ["tcp:22", "udp:68"]
    assert [str(x) for x in s.failsafe_outbound] == ["udp:53", "udp:67", "tcp:443@10.0.0.0/8"]
    assert s.failsafe_outbound[2].loc == Loc(f, 6, 42)
    assert s.loc == Loc(f, 2, 1)

    (hep,) = profile.host_endpoints
    assert (hep.name, hep.interface, hep.expected_ips) == ("uplink", "eth0", ("192.0.2.10",))
    assert dict(hep.labels) == {"hep": "redis-host"}
    assert hep.loc == Loc(f, 8, 1)

    (ns,) = profile.network_sets
    assert ns.name == "blocklist" and dict(ns.labels) == {"list": "drop"}
    assert ns.nets == ("203.0.113.0/24", "2001:db8:bad::/48")
    assert ns.nets_file is not None
    assert ns.nets_file.path == tmp_path / "blocklist.txt"
    assert (ns.nets_file.count_v4, ns.nets_file.count_v6) == (2, 1)
    assert ns.nets_file.loc == Loc(f, 18, 13)
    assert (ns.count(4), ns.count(6)) == (3, 2)

    names = [p.name for p in profile.policies]
    assert names == ["drop-blocklist", "redis-untracked", "ssh-and-icmp"]
    drop, redis, ssh = profile.policies
    assert drop.types == ("ingress",) and drop.tier == "untracked" and drop.order == 10
    assert drop.ingress[0].action == "deny"
    assert drop.ingress[0].source.selector == 'list == "drop"'
    assert drop.ingress[0].loc == Loc(f, 28, 3)
    assert drop.loc == Loc(f, 20, 1) and drop.profile == f

    assert redis.selector == 'has(hep) && hep == "redis-host"'
    assert redis.types == ("ingress", "egress")  # inferred
    (ing,), (eg,) = redis.ingress, redis.egress
    assert ing.protocol == "tcp" and ing.source.nets == ("10.0.0.0/8",)
    assert ing.destination.ports == (PortRange(6379, 6379),)
    assert ing.destination.loc == Loc(f, 43, 17)
    assert eg.source.ports == (PortRange(6379, 6379),)

    assert ssh.tier == "normal" and ssh.types == ("ingress",)
    assert ssh.ingress[0].destination.ports == (PortRange(22, 22), PortRange(8000, 8080))
    assert ssh.ingress[1].protocol == "icmp"


def test_design_example_errors_point_into_the_blocklist(tmp_path: Path) -> None:
    (tmp_path / "blocklist.txt").write_text("10.0.0.1\n10.0.0.300/24\n")
    path = tmp_path / "redis-host.toml"
    path.write_text(DESIGN_EXAMPLE)
    with pytest.raises(InputErrors) as info:
        load_profiles([path])
    (err,) = info.value.errors
    assert err.loc == Loc(str(tmp_path / "blocklist.txt"), 2, 1)
    assert "bad CIDR '10.0.0.300/24'" in err.message


# ---------------------------------------------------------------- defaults and inference

def test_minimal_profile_defaults(tmp_path: Path) -> None:
    p = load(tmp_path, """
        [[policies]]
        name = "p"
    """)
    assert [str(x) for x in p.settings.failsafe_inbound] == list(DEFAULT_FAILSAFE_INBOUND)
    assert [str(x) for x in p.settings.failsafe_outbound] == list(DEFAULT_FAILSAFE_OUTBOUND)
    (pol,) = p.policies
    assert pol.order == math.inf and pol.selector == "all()" and pol.types == ("ingress",)
    assert (pol.do_not_track, pol.pre_dnat, pol.apply_on_forward) == (False, False, False)


def test_empty_failsafe_lists_disable(tmp_path: Path) -> None:
    p = load(tmp_path, """
        [settings]
        failsafe_inbound = []
        failsafe_outbound = []
        max_set_entries = 10
    """)
    assert p.settings.failsafe_inbound == () and p.settings.failsafe_outbound == ()
    assert p.settings.max_set_entries == 10


@pytest.mark.parametrize("rules,types", [
    ("", ("ingress",)),
    ("[[policies.ingress]]\naction = 'allow'", ("ingress",)),
    ("[[policies.egress]]\naction = 'allow'", ("egress",)),
    ("[[policies.ingress]]\naction = 'allow'\n[[policies.egress]]\naction = 'allow'",
     ("ingress", "egress")),
])
def test_types_inference(tmp_path: Path, rules: str, types: tuple[str, ...]) -> None:
    p = load(tmp_path, "[[policies]]\nname = 'p'\n" + rules + "\n")
    assert p.policies[0].types == types


def test_explicit_types_normalized(tmp_path: Path) -> None:
    p = load(tmp_path, "[[policies]]\nname = 'p'\ntypes = ['egress', 'ingress']\n")
    assert p.policies[0].types == ("ingress", "egress")


def test_policies_sorted_by_order_then_name_across_files(tmp_path: Path) -> None:
    a = write(tmp_path, """
        [[policies]]
        name = "zz"
        order = 5
        [[policies]]
        name = "last"
    """, "a.toml")
    b = write(tmp_path, """
        [[policies]]
        name = "aa"
        order = 5
        [[policies]]
        name = "first"
        order = -1.5
    """, "b.toml")
    p = load_profiles([str(a), b])
    assert [x.name for x in p.policies] == ["first", "aa", "zz", "last"]
    assert p.files == (str(a), str(b))
    assert p.policies[1].profile == str(b)


def test_rule_fields(tmp_path: Path) -> None:
    p = load(tmp_path, """
        [[policies]]
        name = "p"
        [[policies.ingress]]
        action = "pass"
        protocol = 17
        not_protocol = "TCP"
        ip_version = 6
        source = { nets = ["2001:DB8::1"], not_nets = ["2001:db8::/32"], not_ports = ["1:2"] }
        destination = { selector = "has(a)", not_selector = "b in {'y','x'}" }
        [[policies.ingress]]
        action = "log"
        protocol = "icmpv6"
        icmp = { type = 128, code = 0 }
        not_icmp = { type = 1 }
        [[policies.ingress]]
        action = "deny"
        protocol = 99
    """)
    r1, r2, r3 = p.policies[0].ingress
    assert (r1.protocol, r1.not_protocol, r1.ip_version) == ("udp", "tcp", 6)
    assert r1.source.nets == ("2001:db8::1/128",) and r1.source.not_nets == ("2001:db8::/32",)
    assert r1.source.not_ports == (PortRange(1, 2),)
    assert r1.destination.selector == "has(a)"
    assert r1.destination.not_selector == 'b in {"x", "y"}'
    assert r2.icmp == IcmpMatch(128, 0) and r2.not_icmp == IcmpMatch(1, None)
    assert r3.protocol == "99"


def test_nets_are_normalized(tmp_path: Path) -> None:
    p = load(tmp_path, """
        [[network_sets]]
        name = "n"
        nets = ["10.1.2.3/8", "192.0.2.1", "2001:0db8:0000::/32"]
    """)
    assert p.network_sets[0].nets == ("10.0.0.0/8", "192.0.2.1/32", "2001:db8::/32")


def test_hep_interface_star_and_label_keys(tmp_path: Path) -> None:
    p = load(tmp_path, """
        [[host_endpoints]]
        name = "all-ifaces"
        interface = "*"
        expected_ips = ["2001:DB8::10"]
        labels = { "projectcalico.org/name" = "n1", "role" = "", "a_b.c-d" = "x.y-z_1" }
    """)
    (hep,) = p.host_endpoints
    assert hep.interface == "*" and hep.expected_ips == ("2001:db8::10",)
    assert hep.labels["projectcalico.org/name"] == "n1"


def test_nets_file_relative_to_the_profile(tmp_path: Path) -> None:
    sub = tmp_path / "conf"
    sub.mkdir()
    (sub / "lists").mkdir()
    (sub / "lists" / "x.txt").write_text("10.0.0.0/0\n::/0\n")
    path = write(sub, """
        [[network_sets]]
        name = "n"
        nets_file = "lists/x.txt"
    """)
    p = load_profiles([path])
    nf = p.network_sets[0].nets_file
    assert nf is not None and nf.path == sub / "lists" / "x.txt"
    assert (nf.count_v4, nf.count_v6) == (2, 2)  # a /0 is two /1s


def test_baseline_store_is_used(tmp_path: Path) -> None:
    nets = tmp_path / "n.txt"
    nets.write_text("".join(f"10.0.{i // 256}.{i % 256}\n" for i in range(2000)))
    store = BaselineStore(tmp_path / "state")
    text = "[[network_sets]]\nname = 'n'\nnets_file = 'n.txt'\n"
    p1 = load(tmp_path, text, baselines=store)
    store.put(nets, (p1.network_sets[0].count(4), 0))
    nets.write_text(nets.read_text().replace("10.0.3.7\n", "10.0.3.7\n10.9.9.9\n::1\n"))
    p2 = load(tmp_path, text, baselines=store)
    nf = p2.network_sets[0].nets_file
    assert nf is not None and (nf.count_v4, nf.count_v6) == (2001, 1)
    nets.write_text(nets.read_text().replace("10.9.9.9\n", "10.9.9.x\n"))
    errs = errors_of(tmp_path, text)
    assert errs[0].loc == Loc(str(nets), 777, 1)  # 10.0.3.7 is line 776


# ---------------------------------------------------------------- warnings

def test_asymmetric_untracked_allow_warns(tmp_path: Path) -> None:
    p = load(tmp_path, """
        [[host_endpoints]]
        name = "h"
        interface = "eth0"
        [[policies]]
        name = "u"
        do_not_track = true
        apply_on_forward = true
        [[policies.ingress]]
        action = "allow"
        protocol = "tcp"
    """)
    (w,) = p.warnings
    assert w.startswith(f"{tmp_path / 'p.toml'}:9:1: warning: untracked policy 'u' allows "
                        "ingress on host endpoint 'h'")


def test_symmetric_untracked_allow_in_two_policies_is_quiet(tmp_path: Path) -> None:
    p = load(tmp_path, """
        [[host_endpoints]]
        name = "h"
        interface = "eth0"
        labels = { a = "b" }
        [[policies]]
        name = "in"
        do_not_track = true
        apply_on_forward = true
        [[policies.ingress]]
        action = "allow"
        [[policies]]
        name = "out"
        selector = "a == 'b'"
        do_not_track = true
        apply_on_forward = true
        [[policies.egress]]
        action = "allow"
    """)
    assert p.warnings == ()


def test_untracked_not_selecting_any_hep_does_not_warn(tmp_path: Path) -> None:
    p = load(tmp_path, """
        [[host_endpoints]]
        name = "h"
        interface = "*"
        [[policies]]
        name = "u"
        selector = "has(nothing)"
        do_not_track = true
        apply_on_forward = true
        [[policies.egress]]
        action = "allow"
    """)
    assert p.warnings == ()


UNTRACKED_PAIR = """
    [[host_endpoints]]
    name = "h"
    interface = "eth0"
    [[policies]]
    name = "redis"
    do_not_track = true
    apply_on_forward = true
    [[policies.ingress]]
    action = "allow"
    protocol = "tcp"
    destination = {{ ports = [{ingress}] }}
    [[policies.egress]]
    action = "allow"
    protocol = "{egress_proto}"
    source = {{ ports = [{egress}] }}
"""


def test_untracked_replies_are_checked_by_protocol_and_port(tmp_path: Path) -> None:
    """Adding 6380 to the ingress allow alone used to pass silently: its replies (tcp
    from port 6380) fall through to tracked policy."""
    ok = load(tmp_path, UNTRACKED_PAIR.format(ingress="6379", egress="6379",
                                              egress_proto="tcp"))
    assert ok.warnings == ()
    ranged = load(tmp_path, UNTRACKED_PAIR.format(ingress="6379, 6380", egress='"6379:6380"',
                                                  egress_proto="tcp"))
    assert ranged.warnings == ()
    (w,) = load(tmp_path, UNTRACKED_PAIR.format(ingress="6379, 6380", egress="6379",
                                                egress_proto="tcp")).warnings
    assert ":9:1:" in w and "allows ingress tcp to port 6379,6380 on host endpoint 'h'" in w
    assert "(tcp from port 6379,6380)" in w
    w_in, w_out = load(tmp_path, UNTRACKED_PAIR.format(ingress="6379", egress="6379",
                                                       egress_proto="udp")).warnings
    assert "allows ingress tcp to port 6379" in w_in and "untracked egress allow" in w_in
    assert "allows egress udp on host endpoint" in w_out and "(udp from port any)" in w_out
