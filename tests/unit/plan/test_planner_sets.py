"""Planner: nets and selectors -> ipsets, families, port splitting."""
from __future__ import annotations

from nodewall.engine.plan.naming import hosts_set, list_set, netset_set, rule_nets_set
from nodewall.engine.plan.planner import plan
from nodewall.engine.plan.rules import split_ports
from nodewall.engine.profile.model import EntityMatch, PortRange

from tests.helpers.planner_kit import chain, hep, netset, policy, policy_ids, ports, profile, rule


def _body(d, family, n_rules=1, cname="nw-fi-eth0"):
    """The policy rules of a filter chain without failsafe entries (profile() below
    has none): skip ct, invalid (and NDP in v6), drop the default deny."""
    rules = chain(d, family, "filter", cname).rules
    start = 2 + (7 if family == 6 else 0)
    return rules[start:-1]


def _plan(*rules_, sets=(), heps=None, tier="normal"):
    pol = policy("p", ingress=tuple(rules_), tier=tier)
    return plan(profile(heps=heps or [hep()], sets=sets, policies=[pol], inbound=(),
                        outbound=()))


def _sets(d):
    return {s.name: s for s in d.ipsets}


def test_single_net_is_inline_several_make_a_rule_set_per_family():
    one = rule("deny", src=EntityMatch(nets=("10.0.0.0/8",)))
    many = rule("deny", src=EntityMatch(nets=("10.0.0.0/8", "192.168.0.0/16", "fd00::/8")))
    d = _plan(one, many)
    ida, idb = policy_ids(d, "p")
    v4 = _body(d, 4)
    assert [r.rule_id for r in v4] == [ida, idb]
    assert v4[0].match.src_net == "10.0.0.0/8" and v4[0].match.src_sets == ()
    assert v4[1].match.src_sets == (rule_nets_set(idb, "sn", 4),)
    v6 = _body(d, 6)
    assert [r.rule_id for r in v6] == [idb]  # the v4-only rule is not in v6
    assert v6[0].match.src_net == "fd00::/8"  # one v6 net: inline
    s = _sets(d)[rule_nets_set(idb, "sn", 4)]
    assert (s.kind, s.family, s.inline, s.expected_count) == (
        "hash:net", 4, ("10.0.0.0/8", "192.168.0.0/16"), 2)
    assert rule_nets_set(idb, "sn", 6) not in _sets(d)


def test_not_nets_and_destination_nets():
    r = rule("allow", src=EntityMatch(nets=("10.0.0.0/8",), not_nets=("10.1.0.0/16",)),
             dst=EntityMatch(not_nets=("192.0.2.1/32", "192.0.2.2/32", "2001:db8::/32")))
    d = _plan(r)
    rid = policy_ids(d, "p")[0]
    m = _body(d, 4)[0].match
    # src_net is taken: the single not_net goes into a set so that both render
    assert m.src_net == "10.0.0.0/8" and m.not_src_net is None
    assert m.not_src_sets == (rule_nets_set(rid, "sx", 4),)
    assert m.not_dst_sets == (rule_nets_set(rid, "dx", 4),)
    assert d.table(6, "filter") is not None and _body(d, 6) == ()  # source nets v4 only
    r2 = rule("allow", dst=EntityMatch(not_nets=("192.0.2.1/32", "2001:db8::/32")))
    d2 = _plan(r2)
    assert _body(d2, 4)[0].match.not_dst_net == "192.0.2.1/32"
    assert _body(d2, 6)[0].match.not_dst_net == "2001:db8::/32"


def test_selector_one_network_set_uses_its_set():
    ns = netset("blocklist", ("203.0.113.0/24", "2001:db8:bad::/48"), {"list": "drop"},
                file=("/srv/blocklist.txt", 1000, 5))
    d = _plan(rule("deny", src=EntityMatch(selector='list == "drop"')), sets=[ns])
    assert _body(d, 4)[0].match.src_sets == (netset_set("blocklist", 4),)
    assert _body(d, 6)[0].match.src_sets == (netset_set("blocklist", 6),)
    s4 = _sets(d)[netset_set("blocklist", 4)]
    assert (s4.kind, s4.inline, s4.expected_count) == ("hash:net", ("203.0.113.0/24",), 1001)
    assert [str(p) for p in s4.files] == ["/srv/blocklist.txt"]
    assert _sets(d)[netset_set("blocklist", 6)].expected_count == 6


def test_selector_several_matches_make_a_list_set_with_host_ips():
    a = netset("a", ("10.0.0.0/8",), {"zone": "x"})
    b = netset("b", ("10.2.0.0/16",), {"zone": "x"})
    other = netset("c", ("10.3.0.0/16",), {"zone": "y"})
    web = hep("web", "eth1", ("192.0.2.20", "2001:db8::20"), zone="x")
    d = _plan(rule("allow", src=EntityMatch(selector='zone == "x"')),
              sets=[a, b, other], heps=[hep(), web])
    hosts4 = hosts_set(("192.0.2.20/32",), 4)
    members = tuple(sorted((netset_set("a", 4), netset_set("b", 4), hosts4)))
    lst = list_set(members, 4)
    assert _body(d, 4)[0].match.src_sets == (lst,)
    s = _sets(d)
    assert s[lst].kind == "list:set" and s[lst].members == members
    assert s[hosts4].inline == ("192.0.2.20/32",)
    assert netset_set("c", 4) not in s  # only referenced sets are emitted
    # list:sets come after their members
    order = [x.name for x in d.ipsets]
    assert order.index(lst) > max(order.index(m) for m in members)
    assert _body(d, 6)[0].match.src_sets[0].startswith("nw-l6-")


def test_selector_matching_only_hosts_uses_a_host_set_per_family():
    web = hep("web", "eth1", ("192.0.2.20",), role="web")
    d = _plan(rule("allow", dst=EntityMatch(selector='role == "web"')), heps=[hep(), web])
    assert _body(d, 4)[0].match.dst_sets == (hosts_set(("192.0.2.20/32",), 4),)
    assert _body(d, 6) == ()  # web has no v6 address: no v6 rule


def test_selector_matching_nothing_renders_nothing_but_keeps_meta():
    d = _plan(rule("deny", src=EntityMatch(selector='list == "none"')),
              rule("allow", protocol="tcp"))
    rid = policy_ids(d, "p")
    assert [r.rule_id for r in _body(d, 4)] == [rid[1]]
    assert "selector matches nothing" in d.rules[rid[0]].summary
    assert any("never matches" in w and "selector matches nothing" in w for w in d.warnings)


def test_not_selector_uses_not_sets_and_matching_nothing_drops_the_clause():
    ns = netset("bad", ("198.51.100.0/24",), {"list": "bad"})
    d = _plan(rule("allow", src=EntityMatch(not_selector='list == "bad"')),
              rule("allow", src=EntityMatch(not_selector='list == "none"')), sets=[ns])
    v4 = _body(d, 4)
    assert v4[0].match.not_src_sets == (netset_set("bad", 4),)
    assert v4[1].match.not_src_sets == () and v4[1].match.src_sets == ()


def test_nets_and_selector_together_both_apply():
    ns = netset("ok", ("10.0.0.0/8",), {"k": "v"})
    d = _plan(rule("allow", src=EntityMatch(nets=("10.1.0.0/16",), selector='k == "v"')),
              sets=[ns])
    m = _body(d, 4)[0].match
    assert m.src_net == "10.1.0.0/16" and m.src_sets == (netset_set("ok", 4),)


def test_ports_split_beyond_fifteen_slots():
    many = ports(*range(1000, 1013), "2000:2010", "3000:3010")  # 13 + 2 + 2 = 17 slots
    d = _plan(rule("allow", protocol="tcp", dst=EntityMatch(ports=many)))
    body = _body(d, 4)
    assert len(body) == 2 and body[0].rule_id == body[1].rule_id
    assert body[0].match.dst_ports == many[:14] and body[1].match.dst_ports == many[14:]
    assert sum(len(r.match.dst_ports) for r in body) == len(many)


def test_split_ports_counts_ranges_as_two():
    assert split_ports(()) == [()]
    assert split_ports(ports(*range(1, 16))) == [ports(*range(1, 16))]
    assert split_ports(ports(*range(1, 17))) == [ports(*range(1, 16)), ports(16)]
    r = tuple(PortRange(i, i + 1) for i in range(0, 20, 2))  # 10 ranges = 20 slots
    assert split_ports(r) == [r[:7], r[7:]]


def test_source_and_destination_ports_split_as_product_with_not_ports_kept():
    src = ports(*range(100, 120))  # 20 slots -> 2 chunks
    dst = ports(*range(200, 220))
    d = _plan(rule("allow", protocol="udp", src=EntityMatch(ports=src),
                   dst=EntityMatch(ports=dst, not_ports=ports(210))))
    body = _body(d, 4)
    assert len(body) == 4
    assert {(r.match.src_ports, r.match.dst_ports) for r in body} == {
        (a, b) for a in (src[:15], src[15:]) for b in (dst[:15], dst[15:])}
    assert all(r.match.not_dst_ports == ports(210) for r in body)


def test_protocol_and_ip_version_select_families():
    d = _plan(rule("allow", protocol="icmp"), rule("allow", protocol="icmpv6"),
              rule("allow", protocol="tcp", ip_version=4), rule("allow", not_protocol="udp"))
    rid = policy_ids(d, "p")
    assert [r.rule_id for r in _body(d, 4)] == [rid[0], rid[2], rid[3]]
    assert [r.rule_id for r in _body(d, 6)] == [rid[1], rid[3]]
    assert _body(d, 4)[2].match.not_protocol == "udp"


def test_network_set_names_are_stable_readable_unique_and_short():
    assert netset_set("blocklist", 4) == netset_set("blocklist", 4)
    assert netset_set("blocklist", 4).startswith("nw-n4-blocklist-")
    assert netset_set("a b", 4) != netset_set("a_b", 4)  # same sanitised text
    long1 = netset_set("x" * 100 + "1", 6)
    long2 = netset_set("x" * 100 + "2", 6)
    assert long1 != long2 and len(long1) <= 31 and len(long2) <= 31
    assert len(rule_nets_set("A" * 16, "dx", 6)) <= 31


def test_subtract_ports():
    from nodewall.engine.plan.rules import subtract_ports
    assert subtract_ports((), ports(0)) == ports("1:65535")
    assert subtract_ports(ports("10:20", 30), ports("15:16", 30, 99)) == ports(
        "10:14", "17:20")
    assert subtract_ports(ports(5), ports("1:10")) == ()
    assert subtract_ports(ports("1:5", "6:8"), ()) == ports("1:8")


def test_long_negated_port_list_becomes_its_complement():
    excluded = ports(*range(1000, 1020))  # 20 slots: too many for one ! --dports
    d = _plan(rule("allow", protocol="tcp", dst=EntityMatch(not_ports=excluded)))
    body = _body(d, 4)
    assert len(body) == 1 and body[0].match.not_dst_ports == ()
    assert body[0].match.dst_ports == ports("0:999", "1020:65535")
    short = _plan(rule("allow", protocol="tcp", dst=EntityMatch(not_ports=ports(22, 80))))
    assert _body(short, 4)[0].match.not_dst_ports == ports(22, 80)
    assert _body(short, 4)[0].match.dst_ports == ()


def test_long_negated_list_within_positive_ports_and_excluding_all():
    excluded = ports(*range(1000, 1020))
    d = _plan(rule("allow", protocol="tcp",
                   dst=EntityMatch(ports=ports("990:1005"), not_ports=excluded)))
    assert _body(d, 4)[0].match.dst_ports == ports("990:999")
    d2 = _plan(rule("allow", protocol="tcp",
                    dst=EntityMatch(ports=ports(1001), not_ports=excluded)))
    assert _body(d2, 4) == ()
    assert "not_ports exclude every port" in d2.rules[policy_ids(d2, "p")[0]].summary


def test_nets_of_one_family_and_selector_of_the_other_render_nowhere():
    peer = hep("peer", "eth1", ("2001:db8::7",), role="peer")
    d = _plan(rule("allow", src=EntityMatch(nets=("10.0.0.0/8",), selector='role == "peer"')),
              heps=[hep(), peer])
    assert _body(d, 4) == () and _body(d, 6) == ()
    assert "no address family" in d.rules[policy_ids(d, "p")[0]].summary
