"""Planner: XDP acceleration of untracked ingress rules."""
from __future__ import annotations

from nodewall.engine.plan.planner import plan
from nodewall.engine.plan.xdp import MAX_SOURCES, why_not_expressible
from nodewall.engine.profile.model import EntityMatch, IcmpMatch

from tests.helpers.planner_kit import chain, hep, netset, policy, policy_ids, ports, profile, rule

BLOCK = netset("blocklist", ("203.0.113.0/24", "2001:db8:bad::/48"), {"list": "drop"},
               file=("/srv/bl.txt", 10, 2))


def _plan(*rules_, sets=(BLOCK,), heps=None, backend="auto", egress=()):
    pol = policy("u", ingress=tuple(rules_), egress=tuple(egress), tier="untracked")
    return plan(profile(heps=heps or [hep()], sets=sets, policies=[pol], backend=backend,
                        inbound=("tcp:22",), outbound=("udp:53",)))


def test_expressible_rules_accelerated_in_order_with_bits_and_failsafe():
    deny = rule("deny", src=EntityMatch(selector='list == "drop"'))
    allow = rule("allow", protocol="tcp", src=EntityMatch(nets=("10.0.0.0/8",)),
                 dst=EntityMatch(ports=ports(6379, "7000:7010")))
    anyone = rule("allow", protocol="udp", dst=EntityMatch(ports=ports(5353)))
    d = _plan(deny, allow, anyone)
    rid = policy_ids(d, "u")
    (xi,) = d.xdp.interfaces
    assert xi.iface == "eth0"
    assert [r.rule_id for r in xi.rules] == rid
    r0, r1, r2 = xi.rules
    assert (r0.action, r0.protocol, r0.dst_ports, r0.family) == ("deny", None, (), 0)
    assert (r1.action, r1.protocol, r1.dst_ports, r1.family) == (
        "allow", 6, ports(6379, "7000:7010"), 4)
    assert (r2.protocol, r2.src_bits) == (17, 0)
    sets = {s.bit: s for s in d.xdp.sets}
    assert r0.src_bits == 1 << 0 and sets[0].origin == "network set blocklist"
    assert (sets[0].count_v4, sets[0].count_v6) == (11, 3)
    assert [str(f) for f in sets[0].files] == ["/srv/bl.txt"]
    assert r1.src_bits == 1 << 1 and sets[1].inline == ("10.0.0.0/8",)
    assert sets[1].origin == f"rule {rid[1]} nets"
    assert [str(f) for f in xi.failsafe] == ["tcp:22"]
    assert [str(f) for f in xi.failsafe_return] == ["udp:53"]
    assert d.xdp.not_accelerated == {}
    # the raw rules are still rendered (backstop)
    assert [r.rule_id for r in chain(d, 4, "raw", "nw-rfi-eth0").rules[2:]] == rid


def test_first_inexpressible_rule_stops_acceleration_of_the_rest():
    a = rule("deny", src=EntityMatch(nets=("198.51.100.0/24",)))
    b = rule("deny", protocol="tcp", src=EntityMatch(ports=ports(1234)))  # source ports
    c = rule("deny", src=EntityMatch(nets=("192.0.2.0/24",)))
    d = _plan(a, b, c)
    ra, rb, rc = policy_ids(d, "u")
    assert [r.rule_id for r in d.xdp.interfaces[0].rules] == [ra]
    assert d.xdp.not_accelerated[rb] == "source ports"
    assert d.xdp.not_accelerated[rc] == f"follows rule {rb}, which XDP cannot express: " \
                                        "source ports"
    assert len(d.xdp.sets) == 1  # c's nets took no bit


def test_no_xdp_interface_when_nothing_is_expressible():
    d = _plan(rule("log"))
    assert d.xdp.interfaces == () and d.xdp.sets == ()
    assert d.xdp.not_accelerated == {policy_ids(d, "u")[0]: "action log"}


def test_iptables_backend_has_empty_xdp():
    d = _plan(rule("deny", src=EntityMatch(nets=("198.51.100.0/24",))), backend="iptables")
    assert d.xdp.interfaces == () and d.xdp.sets == () and d.xdp.not_accelerated == {}
    assert d.table(4, "raw") is not None


def test_xdp_mode_from_settings():
    from dataclasses import replace
    pol = policy("u", ingress=(rule("deny"),), tier="untracked")
    p = profile(heps=[hep()], policies=[pol])
    p = replace(p, settings=replace(p.settings, xdp_mode="generic"))
    assert plan(p).xdp.mode == "generic"


def test_rule_matching_nothing_neither_accelerated_nor_blocking():
    nothing = rule("deny", src=EntityMatch(selector='list == "none"'))
    after = rule("deny", src=EntityMatch(nets=("192.0.2.0/24",)))
    d = _plan(nothing, after)
    rn, ra = policy_ids(d, "u")
    assert [r.rule_id for r in d.xdp.interfaces[0].rules] == [ra]
    assert "selector matches nothing" in d.xdp.not_accelerated[rn]


def test_nets_and_selector_together_are_not_expressible():
    r = rule("deny", src=EntityMatch(nets=("203.0.113.0/25",), selector='list == "drop"'))
    assert "AND" in (why_not_expressible(r) or "")


def test_why_not_expressible_reasons():
    ok = [rule("deny"), rule("allow", protocol="sctp", dst=EntityMatch(ports=ports(9))),
          rule("deny", protocol="icmp"), rule("deny", protocol="47"),
          rule("allow", src=EntityMatch(selector="all()"))]
    assert [why_not_expressible(r) for r in ok] == [None] * len(ok)
    bad = {
        "action pass": rule("pass"),
        "not_protocol": rule("deny", not_protocol="tcp"),
        "icmp type/code": rule("deny", protocol="icmp", icmp=IcmpMatch(8)),
        "source not_nets": rule("deny", src=EntityMatch(not_nets=("10.0.0.0/8",))),
        "source not_selector": rule("deny", src=EntityMatch(not_selector="all()")),
        "destination nets": rule("deny", dst=EntityMatch(nets=("10.0.0.0/8",))),
        "destination selector": rule("deny", dst=EntityMatch(selector="all()")),
        "destination not_ports": rule("deny", protocol="tcp",
                                      dst=EntityMatch(not_ports=ports(22))),
        "unknown protocol foo": rule("deny", protocol="foo"),
    }
    assert {k: why_not_expressible(r) for k, r in bad.items()} == {k: k for k in bad}


def test_families_from_sources():
    v6 = rule("deny", src=EntityMatch(nets=("2001:db8::/32",)))
    v4 = rule("deny", ip_version=4)
    d = _plan(v6, v4)
    assert [r.family for r in d.xdp.interfaces[0].rules] == [6, 4]


def test_host_endpoints_selected_as_sources():
    peer = hep("peer", "eth9", ("192.0.2.7", "2001:db8::7"), role="peer")
    pol_sel = 'role == "peer" || list == "drop"'
    d = _plan(rule("allow", src=EntityMatch(selector=pol_sel)), heps=[hep(), peer])
    (xi,) = [x for x in d.xdp.interfaces if x.iface == "eth0"]
    origins = {s.origin: s for s in d.xdp.sets}
    assert set(origins) == {"network set blocklist", "host endpoint peer"}
    assert origins["host endpoint peer"].inline == ("192.0.2.7/32", "2001:db8::7/128")
    assert xi.rules[0].src_bits == (1 << origins["network set blocklist"].bit) | (
        1 << origins["host endpoint peer"].bit)


def test_sources_shared_between_interfaces_and_rules():
    a = rule("deny", src=EntityMatch(selector='list == "drop"'))
    b = rule("allow", protocol="tcp", src=EntityMatch(selector='list == "drop"'))
    d = _plan(a, b, heps=[hep("a", "eth0"), hep("b", "eth1")])
    assert len(d.xdp.sets) == 1
    assert [x.iface for x in d.xdp.interfaces] == ["eth0", "eth1"]
    assert all(r.src_bits == 1 for x in d.xdp.interfaces for r in x.rules)


def test_more_than_64_sources_leave_the_rest_in_raw():
    sets = [netset(f"s{i}", (f"10.{i}.0.0/16",), {"n": str(i)}) for i in range(MAX_SOURCES + 2)]
    rules_ = [rule("deny", src=EntityMatch(selector=f'n == "{i}"'))
              for i in range(MAX_SOURCES + 2)]
    d = _plan(*rules_, sets=sets)
    rid = policy_ids(d, "u")
    assert len(d.xdp.interfaces[0].rules) == MAX_SOURCES
    assert len(d.xdp.sets) == MAX_SOURCES and max(s.bit for s in d.xdp.sets) == 63
    assert "more than 64" in d.xdp.not_accelerated[rid[64]]
    assert d.xdp.not_accelerated[rid[65]].startswith(f"follows rule {rid[64]}")


def test_partial_acceleration_names_the_interface():
    blocker = policy("a-blocker", ingress=(rule("log"),), tier="untracked", order=1,
                     selector='hep == "b"')
    deny = policy("deny", ingress=(rule("deny", src=EntityMatch(nets=("192.0.2.0/24",))),),
                  tier="untracked", order=2)
    d = plan(profile(heps=[hep("a", "eth0"), hep("b", "eth1")], policies=[blocker, deny]))
    rid = policy_ids(d, "deny")[0]
    assert [x.iface for x in d.xdp.interfaces] == ["eth0"]
    assert d.xdp.not_accelerated[rid].startswith("on eth1: follows rule")


def test_only_untracked_ingress_rules_are_candidates():
    normal = policy("n", ingress=(rule("deny"),))
    d = plan(profile(heps=[hep()], policies=[normal]))
    assert d.xdp.interfaces == () and d.xdp.not_accelerated == {}
    d2 = _plan(egress=(rule("deny"),))
    assert d2.xdp.interfaces == ()
