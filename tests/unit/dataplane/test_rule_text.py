"""The kernel text of one rule id, as the TUI's detail pane shows it: every chain the
rule sits in (one per host endpoint and family), iptables or nftables syntax."""
from __future__ import annotations

from dataclasses import replace

from nodewall.engine.dataplane.rule_text import rendered_rules
from nodewall.engine.plan.planner import plan
from nodewall.engine.profile.model import EntityMatch

from tests.helpers.planner_kit import hep, policy, ports, profile, rule


def _desired():
    web = policy("web", ingress=(rule(protocol="tcp", dst=EntityMatch(ports=ports(8080))),))
    return plan(profile(heps=[hep("a", "eth0"), hep("b", "eth1", ("192.0.2.11",))],
                        policies=[web]))


def _web_id(d) -> str:
    return next(rid for rid, m in d.rules.items() if m.policy == "web")


def test_a_shared_rule_renders_in_each_endpoint_chain_as_iptables():
    d = _desired()
    got = rendered_rules(d, _web_id(d))
    assert {(r.table, r.chain) for r in got} == {("filter", "nw-fi-eth0"),
                                                 ("filter", "nw-fi-eth1")}
    assert {r.family for r in got} == {4, 6}
    assert all("--dport 8080" in r.text or "--dports 8080" in r.text for r in got), got
    assert all(f'"nw:{_web_id(d)}"' in r.text and "-j ACCEPT" in r.text for r in got)
    assert got[0].line().startswith(f"filter v{got[0].family} {got[0].chain}: ")


def test_nftables_generations_render_nft_statements():
    d = replace(_desired(), packet_filter="nftables")
    got = rendered_rules(d, _web_id(d))
    assert got and all("dport 8080" in r.text and "accept" in r.text for r in got), got
    assert rendered_rules(d, "no-such-id") == []
