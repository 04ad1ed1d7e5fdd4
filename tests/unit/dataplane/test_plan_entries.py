"""plan_entries: preview lines as structured objects (op, table, chain, rule id,
policy, text); a shortened id is resolved against the known ids."""
from __future__ import annotations

from nodewall.engine.dataplane.preview import plan_entries

POLICIES = {"J2gnL5BjD1xyzAB": ("ports1", "allow tcp to port 1000"),
            "Zq00000000aaaaa": ("web", "allow tcp to port 80"), "hook": ("", "")}


def test_iptables_ipset_and_nft_lines_are_structured():
    lines = ["+ raw v4 chain nw-rfi-eth0",
             "+ filter v6 nw-fi-eth0 [3] -p tcp --dport 80 -j ACCEPT  (nw:Zq00000000…)",
             "- filter v4 nw-fi-eth0 [6] nw:J2gnL5BjD1…  (0 packets)",
             "+ filter v4 INPUT [1] -j nw-INPUT  (nw:hook)",
             "+ ipset nw-n4-bad-abc123 (network set bad): 12 members",
             "~ nft chain filter4-nw-fi-eth0: 1 rule block(s) added, 0 removed"]
    e = plan_entries(lines, POLICIES)
    assert [(x.op, x.table, x.chain, x.family) for x in e] == [
        ("add", "raw", "nw-rfi-eth0", 4), ("add", "filter", "nw-fi-eth0", 6),
        ("remove", "filter", "nw-fi-eth0", 4), ("add", "filter", "INPUT", 4),
        ("add", "ipset", "nw-n4-bad-abc123", None),
        ("change", "nft chain", "filter4-nw-fi-eth0", None)]
    assert [(x.rule_id, x.policy) for x in e] == [
        (None, None), ("Zq00000000aaaaa", "web"), ("J2gnL5BjD1xyzAB", "ports1"),
        ("hook", ""), (None, None), (None, None)]
    assert e[2].summary == "allow tcp to port 1000"  # a removed rule says what it was
    assert e[1].to_json()["text"].startswith("filter v6 nw-fi-eth0 [3] -p tcp")


def test_an_ambiguous_short_id_stays_short():
    (e,) = plan_entries(["- filter v4 nw-fi-x [1] nw:ab…  (0 packets)"],
                        {"abc": ("p", ""), "abd": ("q", "")})
    assert (e.rule_id, e.policy) == ("ab", None)
