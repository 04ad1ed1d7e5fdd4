"""Planner layout: tables, hooks, chains and their order."""
from __future__ import annotations

from nodewall.engine.plan.desired import MARK_ALLOW, Hook
from nodewall.engine.plan.planner import plan
from nodewall.engine.profile.model import EntityMatch, IcmpMatch

from tests.helpers.planner_kit import (
    chain,
    chain_names,
    hep,
    ids,
    lines,
    policy,
    policy_ids,
    ports,
    profile,
    rule,
    table,
)

MARK = f"-m mark --mark {MARK_ALLOW:#x}/{MARK_ALLOW:#x} -j ACCEPT"
UNTRACKED = "-m conntrack --ctstate UNTRACKED -j ACCEPT"


def test_empty_profile_gives_no_tables_sets_or_xdp():
    d = plan(profile())
    assert d.tables == () and d.ipsets == () and d.xdp.interfaces == ()
    assert d.rules == {} and d.interfaces == ()


def test_policies_without_endpoints_give_no_tables():
    d = plan(profile(policies=[policy("p", ingress=(rule(),), tier="untracked")]))
    assert d.tables == ()


def test_endpoint_alone_gets_failsafe_and_default_deny_in_filter_only():
    d = plan(profile(heps=[hep()], inbound=("tcp:22", "udp:68"), outbound=("udp:53",)))
    assert {(t.family, t.table) for t in d.tables} == {(4, "filter"), (6, "filter")}
    f4 = table(d, 4, "filter")
    assert f4.hooks == (Hook("INPUT", "nw-INPUT"), Hook("OUTPUT", "nw-OUTPUT"))
    # nothing untracked or pre-DNAT: no "already allowed" rule to walk past
    assert lines(d, 4, "filter", "nw-INPUT") == ["-i eth0 -g nw-fi-eth0"]
    assert lines(d, 4, "filter", "nw-OUTPUT") == ["-o eth0 -g nw-fo-eth0"]
    assert lines(d, 4, "filter", "nw-fi-eth0") == [
        "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-m conntrack --ctstate INVALID -j DROP",
        "-p tcp -m multiport --dports 22 -j ACCEPT",
        "-p udp -m multiport --dports 68 -j ACCEPT",
        "-j DROP",
    ]
    assert lines(d, 4, "filter", "nw-fo-eth0")[2:] == [
        "-p udp -m multiport --dports 53 -j ACCEPT", "-j DROP"]
    assert d.interfaces == ("eth0",)


def test_v6_filter_accepts_ndp_before_the_invalid_drop_and_policies():
    d = plan(profile(heps=[hep()], policies=[policy("p", ingress=(rule("deny"),))]))
    got = lines(d, 6, "filter", "nw-fi-eth0")
    ndp = [f"-p icmpv6 -m icmp6 --icmpv6-type {t} -j ACCEPT" for t in range(130, 137)]
    assert got[1:8] == ndp
    assert got[8] == "-m conntrack --ctstate INVALID -j DROP"
    assert got[9] == "-p tcp -m multiport --dports 22 -j ACCEPT"
    assert got[10:] == ["-j DROP", "-j DROP"]  # the policy's deny, then the default deny
    assert lines(d, 6, "filter", "nw-fo-eth0")[1:8] == ndp
    assert not any("icmpv6" in x for x in lines(d, 4, "filter", "nw-fi-eth0"))


def test_normal_actions_in_filter():
    pol = policy("p", ingress=(rule("log"), rule("allow", protocol="tcp"),
                               rule("pass"), rule("deny")))
    d = plan(profile(heps=[hep()], policies=[pol], inbound=(), outbound=()))
    rid = policy_ids(d, "p")
    body = chain(d, 4, "filter", "nw-fi-eth0").rules[2:]
    assert [r.rule_id for r in body[:4]] == rid
    assert body[0].target.kind == "LOG" and body[0].target.log_prefix == f"nw:{rid[0]} "
    assert [r.target.kind for r in body] == ["LOG", "ACCEPT", "DROP", "DROP", "DROP"]
    assert body[1].match.protocol == "tcp"


def test_policy_order_and_rule_order_and_types():
    a = policy("a", ingress=(rule("allow", protocol="udp"),), order=20)
    b = policy("b", ingress=(rule("allow", protocol="tcp"), rule("deny", protocol="sctp")),
               egress=(rule("allow", protocol="udp"),), order=10, types=("ingress",))
    d = plan(profile(heps=[hep()], policies=[a, b], inbound=(), outbound=()))
    protos = [r.match.protocol for r in chain(d, 4, "filter", "nw-fi-eth0").rules[2:-1]]
    assert protos == ["tcp", "sctp", "udp"]
    # b has types = ingress only: its egress rule contributes nothing
    assert [r.match.protocol for r in chain(d, 4, "filter", "nw-fo-eth0").rules[2:-1]] == []


def test_policy_selector_picks_endpoints_by_labels():
    web = hep("web", "eth1", role="web")
    db = hep("db", "eth2", role="db")
    pol = policy("p", ingress=(rule("allow", protocol="tcp"),), selector='role == "db"')
    d = plan(profile(heps=[web, db], policies=[pol], inbound=(), outbound=()))
    assert len(chain(d, 4, "filter", "nw-fi-eth2").rules) == 4
    assert len(chain(d, 4, "filter", "nw-fi-eth1").rules) == 3
    assert lines(d, 4, "filter", "nw-INPUT") == ["-i eth1 -g nw-fi-eth1",
                                                 "-i eth2 -g nw-fi-eth2"]


def test_star_endpoint_comes_after_named_ones_and_never_matches_lo():
    d = plan(profile(heps=[hep("all", "*"), hep("up", "eth0")], inbound=(), outbound=()))
    assert lines(d, 4, "filter", "nw-INPUT") == [
        "-i eth0 -g nw-fi-eth0", "! -i lo -g nw-fi-:all"]
    assert lines(d, 6, "filter", "nw-OUTPUT") == [
        "-o eth0 -g nw-fo-eth0", "! -o lo -g nw-fo-:all"]
    assert "nw-fi-:all" in chain_names(d, 4, "filter")
    assert d.interfaces == ("eth0",)


def test_duplicate_interface_keeps_first_endpoint_by_name_and_warns():
    a, b = hep("a", "eth0", role="a"), hep("b", "eth0", role="b")
    pol = policy("p", ingress=(rule("deny"),), selector='role == "b"')
    d = plan(profile(heps=[b, a], policies=[pol], inbound=(), outbound=()))
    assert len(chain(d, 4, "filter", "nw-fi-eth0").rules) == 3  # b's policy not applied
    assert any("host endpoint 'b' ignored" in w for w in d.warnings)


def test_untracked_raw_layout_and_actions():
    pol = policy("u", tier="untracked", ingress=(
        rule("allow", protocol="tcp", dst=EntityMatch(ports=ports(6379))),
        rule("deny"), rule("log"), rule("pass")),
        egress=(rule("allow", protocol="tcp", src=EntityMatch(ports=ports(6379))),))
    d = plan(profile(heps=[hep()], policies=[pol], inbound=("tcp:22", "udp:68@10.0.0.0/8"),
                     outbound=("udp:53", "tcp:443@10.0.0.0/8")))
    raw = table(d, 4, "raw")
    assert raw.hooks == (Hook("PREROUTING", "nw-PREROUTING"), Hook("OUTPUT", "nw-OUTPUT"))
    assert lines(d, 4, "raw", "nw-PREROUTING") == ["-i eth0 -g nw-rfi-eth0"]
    assert lines(d, 4, "raw", "nw-OUTPUT") == ["-o eth0 -g nw-rto-eth0"]
    rid = policy_ids(d, "u")
    assert lines(d, 4, "raw", "nw-rfi-eth0")[:6] == [
        "-p tcp -m multiport --dports 22 -j ACCEPT",
        "-s 10.0.0.0/8 -p udp -m multiport --dports 68 -j ACCEPT",
        "-p udp -m multiport --sports 53 -j ACCEPT",
        "-s 10.0.0.0/8 -p tcp -m multiport --sports 443 -j ACCEPT",
        "-p tcp -m multiport --dports 6379 -j nw-untracked-allow",
        "-j DROP",
    ]
    rfi = chain(d, 4, "raw", "nw-rfi-eth0").rules
    assert rfi[6].target.kind == "LOG" and rfi[6].target.log_prefix == f"nw:{rid[2]} "
    assert rfi[7].target.kind == "RETURN" and len(rfi) == 8
    # egress: failsafe rules no untracked rule can meet go behind the policy rules
    assert lines(d, 4, "raw", "nw-rto-eth0") == [
        "-d 10.0.0.0/8 -p tcp -m multiport --dports 443 -j ACCEPT",
        "-p tcp -m multiport --sports 6379 -j nw-untracked-allow",
        "-p udp -m multiport --dports 53 -j ACCEPT",
        "-p tcp -m multiport --sports 22 -j ACCEPT",
        "-d 10.0.0.0/8 -p udp -m multiport --sports 68 -j ACCEPT",
    ]
    # no mark: filter recognises the packet by its conntrack state UNTRACKED
    assert lines(d, 4, "raw", "nw-untracked-allow") == ["-j CT --notrack", "-j ACCEPT"]
    # v6 raw: the v4-only failsafe CIDRs are absent
    assert lines(d, 6, "raw", "nw-rfi-eth0")[:2] == [
        "-p tcp -m multiport --dports 22 -j ACCEPT", "-p udp -m multiport --sports 53 -j ACCEPT"]
    # the filter table accepts what raw left untracked, first thing, and has no mark rule
    assert lines(d, 4, "filter", "nw-INPUT") == [UNTRACKED, "-i eth0 -g nw-fi-eth0"]
    assert lines(d, 4, "filter", "nw-OUTPUT") == [UNTRACKED, "-o eth0 -g nw-fo-eth0"]
    # the allow rules name no address, so v6 raw NOTRACKs too and v6 filter accepts it
    assert lines(d, 6, "filter", "nw-INPUT")[0] == UNTRACKED
    # forwarded traffic an untracked policy allowed is accepted in FORWARD the same way
    fwd = policy("fwd", ingress=(rule("deny", protocol="udp"),), forward=True)
    d = plan(profile(heps=[hep()], policies=[pol, fwd]))
    assert lines(d, 4, "filter", "nw-FORWARD")[:2] == [
        UNTRACKED, "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"]


def test_untracked_accept_only_in_families_whose_raw_allows():
    pol = policy("u", tier="untracked", ingress=(
        rule("allow", protocol="tcp", src=EntityMatch(nets=("10.0.0.0/8",))),
        rule("deny", src=EntityMatch(nets=("2001:db8::/32",)))))
    d = plan(profile(heps=[hep()], policies=[pol]))
    assert lines(d, 4, "filter", "nw-INPUT")[0] == UNTRACKED
    assert lines(d, 4, "filter", "nw-OUTPUT")[0] == UNTRACKED
    assert lines(d, 6, "raw", "nw-rfi-eth0")[-1] == "-s 2001:db8::/32 -j DROP"
    assert "nw-untracked-allow" not in chain_names(d, 6, "raw")
    assert lines(d, 6, "filter", "nw-INPUT") == ["-i eth0 -g nw-fi-eth0"]  # nothing NOTRACKed


def test_raw_renders_only_directions_and_families_that_have_rules():
    pol = policy("u", tier="untracked",
                 ingress=(rule("deny", src=EntityMatch(nets=("10.1.0.0/16",))),))
    d = plan(profile(heps=[hep()], policies=[pol]))
    assert table(d, 4, "raw").hooks == (Hook("PREROUTING", "nw-PREROUTING"),)
    assert chain_names(d, 4, "raw") == ["nw-PREROUTING", "nw-rfi-eth0"]  # no allow chain
    assert d.table(6, "raw") is None


def test_untracked_policy_only_on_selected_named_endpoints():
    pol = policy("u", tier="untracked", selector='role == "db"', ingress=(rule("deny"),))
    eps = [hep("db", "eth1", role="db"), hep("web", "eth2", role="web"),
           hep("all", "*", role="db")]
    d = plan(profile(heps=eps, policies=[pol]))
    assert lines(d, 4, "raw", "nw-PREROUTING") == ["-i eth1 -g nw-rfi-eth1"]
    assert any("does not apply to the interface = \"*\"" in w for w in d.warnings)


def test_prednat_mangle_layout():
    pol = policy("pd", tier="prednat", ingress=(
        rule("allow", protocol="tcp", dst=EntityMatch(ports=ports(80))), rule("deny")))
    d = plan(profile(heps=[hep(), hep("all", "*")], policies=[pol], inbound=("tcp:22",)))
    m = table(d, 4, "mangle")
    assert m.hooks == (Hook("PREROUTING", "nw-PREROUTING"),)
    assert lines(d, 4, "mangle", "nw-PREROUTING") == [
        "-i eth0 -g nw-mfi-eth0", "! -i lo -g nw-mfi-:all"]
    assert lines(d, 4, "mangle", "nw-mfi-eth0") == [
        "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-p tcp -m multiport --dports 22 -j ACCEPT",
        "-p tcp -m multiport --dports 80 -j nw-prednat-allow",
        "-j DROP",
    ]
    assert lines(d, 4, "mangle", "nw-prednat-allow") == [
        f"-j MARK --set-xmark {MARK_ALLOW:#x}/{MARK_ALLOW:#x}", "-j ACCEPT"]
    # pre-DNAT keeps the mark (its packets stay tracked); no UNTRACKED accept
    assert lines(d, 4, "filter", "nw-INPUT")[0] == MARK
    assert d.table(4, "raw") is None
    # pre-DNAT rules do not appear in the filter table
    assert len(chain(d, 4, "filter", "nw-fi-eth0").rules) == 4


def test_forward_only_with_apply_on_forward_normal_policy():
    plain = policy("plain", ingress=(rule("allow"),))
    d = plan(profile(heps=[hep()], policies=[plain]))
    assert [h.kernel_chain for h in table(d, 4, "filter").hooks] == ["INPUT", "OUTPUT"]
    fwd = policy("fwd", ingress=(rule("allow", protocol="tcp"), rule("deny", protocol="udp"),
                                 rule("pass")), forward=True)
    d = plan(profile(heps=[hep()], policies=[plain, fwd]))
    assert [h.kernel_chain for h in table(d, 4, "filter").hooks] == ["INPUT", "OUTPUT",
                                                                      "FORWARD"]
    assert lines(d, 4, "filter", "nw-FORWARD") == [
        "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-i eth0 -j nw-ffi-eth0"]  # no egress forward policy: that direction stays open
    assert lines(d, 4, "filter", "nw-ffi-eth0") == [
        "-p tcp -j RETURN", "-p udp -j DROP", "-j DROP", "-j DROP"]
    # the forward policy applies to INPUT too, with ACCEPT
    assert "-p tcp -j ACCEPT" in lines(d, 4, "filter", "nw-fi-eth0")
    # ... while the non-forward one does not reach FORWARD
    assert "-j RETURN" not in lines(d, 4, "filter", "nw-ffi-eth0")


def test_forward_star_endpoint_defers_to_named_interfaces():
    fwd = policy("fwd", egress=(rule("allow", protocol="tcp"),), forward=True,
                 selector='role == "any"')
    eps = [hep("all", "*", role="any"), hep("a", "eth0"), hep("b", "eth1")]
    d = plan(profile(heps=eps, policies=[fwd]))
    assert lines(d, 4, "filter", "nw-FORWARD")[1:] == ["! -o lo -j nw-ffo-:all"]
    assert lines(d, 4, "filter", "nw-ffo-:all") == [
        "-o eth0 -j RETURN", "-o eth1 -j RETURN", "-p tcp -j RETURN", "-j DROP"]


def test_icmp_renders_per_family():
    pol = policy("p", ingress=(rule("allow", protocol="icmp", icmp=IcmpMatch(8, 0)),
                               rule("allow", protocol="icmpv6", icmp=IcmpMatch(128)),
                               rule("allow", protocol="tcp", ip_version=6)))
    d = plan(profile(heps=[hep()], policies=[pol], inbound=(), outbound=()))
    rid = policy_ids(d, "p")
    v4 = chain(d, 4, "filter", "nw-fi-eth0").rules
    v6 = chain(d, 6, "filter", "nw-fi-eth0").rules
    assert [r.rule_id for r in v4[2:-1]] == [rid[0]]
    assert v4[2].match.icmp_type == 8 and v4[2].match.icmp_code == 0
    assert [r.rule_id for r in v6[9:-1]] == [rid[1], rid[2]]
    assert lines(d, 6, "filter", "nw-fi-eth0")[9] == \
        "-p icmpv6 -m icmp6 --icmpv6-type 128 -j ACCEPT"


def test_synthetic_ids_shared_across_endpoints_and_families_not_tables():
    pol = policy("u", tier="untracked", ingress=(rule("deny"),))
    d = plan(profile(heps=[hep("a", "eth0"), hep("b", "eth1")], policies=[pol]))
    fi0, fi1 = ids(d, 4, "filter", "nw-fi-eth0"), ids(d, 4, "filter", "nw-fi-eth1")
    assert fi0 == fi1
    v6 = ids(d, 6, "filter", "nw-fi-eth0")
    assert [v6[0], *v6[8:10]] == fi0[:3]  # v6 has the NDP accepts after established
    # the failsafe accept in raw is counted apart from the one in filter
    assert ids(d, 4, "raw", "nw-rfi-eth0")[0] != fi0[2]
    for rid in (*fi0, *ids(d, 4, "raw", "nw-rfi-eth0")):
        assert rid in d.rules
    meta = d.rules[fi0[2]]
    assert (meta.policy, meta.tier, meta.action, meta.index) == ("(failsafe)", "failsafe",
                                                                 "allow", -1)
    assert d.rules[fi0[-1]].policy == "(default-deny)"


def test_every_rule_id_has_meta_and_chain_names_fit():
    pol = policy("a-policy-with-a-long-name", tier="untracked", ingress=(rule("allow"),))
    d = plan(profile(heps=[hep("x", "verylongifname0"), hep("s", "*")],
                     policies=[pol, policy("n", ingress=(rule("allow"),), forward=True)]))
    for t in d.tables:
        for c in t.chains:
            assert c.name.startswith("nw-") and len(c.name) <= 28
            for r in c.rules:
                assert r.rule_id in d.rules
                if r.target.kind in ("JUMP", "GOTO"):
                    assert r.target.chain in [x.name for x in t.chains]


def test_plan_is_deterministic():
    pol = policy("u", tier="untracked", ingress=(rule("deny"),))
    p = profile(heps=[hep("b", "eth1"), hep("a", "eth0")], policies=[pol])
    assert plan(p) == plan(p)


def test_policy_rule_meta():
    r = rule("allow", protocol="tcp", src=EntityMatch(nets=("10.0.0.0/8",)),
             dst=EntityMatch(ports=ports(6379)), line=7)
    d = plan(profile(heps=[hep()], policies=[policy("redis", ingress=(rule("deny"), r),
                                                    tier="untracked")]))
    m = d.rules[policy_ids(d, "redis")[1]]
    assert (m.profile, m.policy, m.direction, m.index, m.action, m.tier) == (
        "test.toml", "redis", "ingress", 1, "allow", "untracked")
    assert m.loc is not None and m.loc.line == 7
    assert m.summary == "allow tcp from 10.0.0.0/8 to port 6379"


def test_profile_warnings_pass_through():
    d = plan(profile(warnings=("a.toml:1:1: warning: x",)))
    assert d.warnings == ("a.toml:1:1: warning: x",)


def test_rules_of_a_policy_selecting_nothing_keep_meta_with_a_note():
    pol = policy("idle", ingress=(rule("deny"),), selector='role == "none"')
    d = plan(profile(heps=[hep()], policies=[pol]))
    (rid,) = policy_ids(d, "idle")
    assert d.rules[rid].summary == "deny all (policy selects no host endpoint)"
    assert all(r.rule_id != rid for t in d.tables for c in t.chains for r in c.rules)


def test_v6_neighbour_discovery_is_accepted_before_the_invalid_drop():
    """NDP packets have no conntrack entry, so `--ctstate INVALID` matches them; if the
    INVALID drop came first, IPv6 neighbour discovery through a host endpoint would die."""
    import pathlib
    import tempfile

    from nodewall.engine.plan.planner import plan
    from nodewall.engine.profile.loader import load_profiles
    with tempfile.TemporaryDirectory() as d:
        p = pathlib.Path(d) / "p.toml"
        p.write_text('[[host_endpoints]]\nname = "e"\ninterface = "eth0"\n')
        desired = plan(load_profiles([p]))
    chain = next(c for c in desired.table(6, "filter").chains if c.name == "nw-fi-eth0")
    kinds = [("ndp" if r.match.icmp_type is not None else
              "invalid" if r.match.ct_states == ("INVALID",) else "other") for r in chain.rules]
    assert "ndp" in kinds and kinds.index("ndp") < kinds.index("invalid")
