"""The DESIGN §8 example end to end: TOML -> load_profiles -> plan -> DesiredState."""
from __future__ import annotations

from pathlib import Path

import pytest
from nodewall.engine.dataplane.iptables.render import render_line
from nodewall.engine.plan.naming import netset_set
from nodewall.engine.plan.planner import plan
from nodewall.engine.profile.loader import load_profiles

from tests.helpers.planner_kit import chain_names, lines, policy_ids
from tests.helpers.profile_kit import DESIGN_EXAMPLE as EXAMPLE  # DESIGN.md section 8, verbatim

BLOCKLIST = "# test list\n198.51.100.0/24\n198.51.101.0/24\n2001:db8:beef::/48\n"


@pytest.fixture
def example(tmp_path: Path) -> Path:
    (tmp_path / "blocklist.txt").write_text(BLOCKLIST)
    path = tmp_path / "redis-host.toml"
    path.write_text(EXAMPLE)
    return path


def test_design_example_layout(example: Path):
    d = plan(load_profiles([example]))
    assert {(t.family, t.table) for t in d.tables} == {
        (4, "raw"), (4, "filter"), (6, "raw"), (6, "filter")}
    deny, allow = policy_ids(d, "drop-blocklist")[0], policy_ids(d, "redis-untracked")[0]
    (ret,) = policy_ids(d, "redis-untracked", "egress")
    ssh, icmp = policy_ids(d, "ssh-and-icmp")
    assert chain_names(d, 4, "raw") == ["nw-PREROUTING", "nw-OUTPUT", "nw-rfi-eth0",
                                        "nw-rto-eth0", "nw-untracked-allow"]
    bl4 = netset_set("blocklist", 4)
    assert lines(d, 4, "raw", "nw-rfi-eth0") == [
        "-p tcp -m multiport --dports 22 -j ACCEPT",
        "-p udp -m multiport --dports 68 -j ACCEPT",
        "-p udp -m multiport --sports 53 -j ACCEPT",
        "-p udp -m multiport --sports 67 -j ACCEPT",
        "-s 10.0.0.0/8 -p tcp -m multiport --sports 443 -j ACCEPT",
        f"-m set --match-set {bl4} src -j DROP",
        "-s 10.0.0.0/8 -p tcp -m multiport --dports 6379 -j nw-untracked-allow",
    ]
    # egress: the failsafe rule the Redis return rule may overlap (tcp to 10/8:443) stays
    # in front of it, the disjoint ones (udp, tcp from :22) go behind it
    assert lines(d, 4, "raw", "nw-rto-eth0") == [
        "-d 10.0.0.0/8 -p tcp -m multiport --dports 443 -j ACCEPT",
        "-p tcp -m multiport --sports 6379 -j nw-untracked-allow",
        "-p udp -m multiport --dports 53 -j ACCEPT",
        "-p udp -m multiport --dports 67 -j ACCEPT",
        "-p tcp -m multiport --sports 22 -j ACCEPT",
        "-p udp -m multiport --sports 68 -j ACCEPT",
    ]
    # v6 raw: the blocklist deny, no v4-only redis allow
    v6_ids = [r.rule_id for t in d.tables if (t.family, t.table) == (6, "raw")
              for c in t.chains if c.name == "nw-rfi-eth0" for r in c.rules]
    assert deny in v6_ids and allow not in v6_ids
    assert lines(d, 4, "filter", "nw-fi-eth0")[-3:] == [
        "-p tcp -m multiport --dports 22,8000:8080 -j ACCEPT", "-p icmp -j ACCEPT", "-j DROP"]
    assert "-p icmp -j ACCEPT" not in lines(d, 6, "filter", "nw-fi-eth0")
    # sets: the blocklist per family, counting inline + file members
    sets = {s.name: s for s in d.ipsets}
    assert set(sets) == {bl4, netset_set("blocklist", 6)}
    assert sets[bl4].expected_count == 3 and sets[netset_set("blocklist", 6)].expected_count == 2
    assert sets[bl4].files == (example.parent / "blocklist.txt",)
    # metas
    assert d.rules[allow].summary == "allow tcp from 10.0.0.0/8 to port 6379"
    assert d.rules[ret].summary == "allow tcp from port 6379"
    assert d.rules[ssh].summary == "allow tcp to ports 22,8000:8080"
    assert d.rules[icmp].profile == str(example)
    assert d.rules[deny].loc is not None and d.rules[deny].loc.file == str(example)
    # XDP: the deny and the redis allow, in order, failsafe first
    (xi,) = d.xdp.interfaces
    assert [r.rule_id for r in xi.rules] == [deny, allow]
    assert [str(f) for f in xi.failsafe] == ["tcp:22", "udp:68"]
    assert {s.origin for s in d.xdp.sets} == {"network set blocklist", f"rule {allow} nets"}
    assert d.interfaces == ("eth0",)


def test_design_example_every_rule_renders_and_is_known(example: Path):
    d = plan(load_profiles([example]))
    seen = set()
    for t in d.tables:
        for c in t.chains:
            for r in c.rules:
                render_line(c.name, r, t.family)  # the iptables renderer accepts it
                seen.add(r.rule_id)
    for x in d.xdp.interfaces:
        seen.update(r.rule_id for r in x.rules)
    assert seen <= set(d.rules)


def test_design_example_ids_survive_an_edit_elsewhere(example: Path, tmp_path: Path):
    before = plan(load_profiles([example]))
    ssh_rule = '  [[policies.ingress]]\n  action = "allow"\n  protocol = "tcp"\n' \
               '  destination = { ports = [22, "8000:8080"] }\n'
    assert ssh_rule in EXAMPLE
    edited = EXAMPLE.replace(ssh_rule, '  [[policies.ingress]]\n  action = "log"\n\n'
                             + ssh_rule.replace("8000:8080", "8000:8081"))
    example.write_text(edited)
    after = plan(load_profiles([example]))
    b_ssh, b_icmp = policy_ids(before, "ssh-and-icmp")
    a_log, a_ssh, a_icmp = policy_ids(after, "ssh-and-icmp")
    assert a_icmp == b_icmp and a_ssh != b_ssh and a_log not in (b_ssh, b_icmp)
    assert policy_ids(after, "drop-blocklist") == policy_ids(before, "drop-blocklist")
    assert before.xdp == after.xdp


def test_iptables_backend_example(example: Path):
    example.write_text(EXAMPLE.replace('backend = "auto"', 'backend = "iptables"'))
    d = plan(load_profiles([example]))
    assert d.xdp.interfaces == () and d.xdp.not_accelerated == {}
    assert d.table(4, "raw") is not None
