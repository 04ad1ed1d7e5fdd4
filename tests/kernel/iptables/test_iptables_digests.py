"""Content digests of nodewall's rule blocks (drift by content, issue 15), read from
the real kernel: every kind of rule nodewall writes digests the same each time it is
written, wherever it sits and whatever else the table holds (other chains, rules
above it, its ipset at another kernel index); an edit in place changes it."""
from __future__ import annotations

import pytest
from nodewall.engine.dataplane.iptables import apply as iptables_apply
from nodewall.engine.dataplane.iptables import observe as iptables_observe
from nodewall.engine.dataplane.iptables.dataplane import IptablesDataplane
from nodewall.engine.plan.desired import (
    MARK_ALLOW,
    Chain,
    ChainRule,
    DesiredState,
    Hook,
    Match,
    TableState,
    Target,
    XdpState,
)
from nodewall.engine.profile.model import PortRange as P
from nodewall.engine.system.netns import run_in_netns

from tests.conftest import IS_ROOT, in_ns

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(not IS_ROOT, reason="kernel test: needs root for namespaces")]

FILTER4 = (
    ChainRule("ports", Match(in_iface="!lo", protocol="tcp",
                             dst_ports=(P(22, 22), P(8000, 8080))), Target("ACCEPT")),
    ChainRule("sports", Match(out_iface="eth0", protocol="udp", not_src_ports=(P(53, 53),)),
              Target("DROP")),
    ChainRule("nets", Match(src_net="10.0.0.0/8", not_dst_net="10.1.0.0/16"), Target("RETURN")),
    ChainRule("jump", Match(not_protocol="tcp"), Target("JUMP", chain="nw-sub")),
    ChainRule("sets", Match(src_sets=("nw-a",), not_dst_sets=("nw-b",)),
              Target("GOTO", chain="nw-sub")),
    ChainRule("icmp", Match(protocol="icmp", icmp_type=8, icmp_code=0), Target("ACCEPT")),
    ChainRule("ct", Match(ct_states=("RELATED", "ESTABLISHED")), Target("ACCEPT")),
    ChainRule("mark", Match(mark=(MARK_ALLOW, MARK_ALLOW)), Target("ACCEPT")),
    ChainRule("log", Match(), Target("LOG", log_prefix="nw deny ")),
    ChainRule("log", Match(protocol="udp"), Target("DROP")),  # a two-rule block
)
RAW4 = (ChainRule("notrack", Match(protocol="tcp"), Target("NOTRACK")),
        ChainRule("setmark", Match(), Target("MARK", mark=(MARK_ALLOW, MARK_ALLOW))))
FILTER6 = (ChainRule("icmp6", Match(protocol="icmpv6", not_icmp_type=128), Target("DROP")),)


def _desired(filter4: tuple[ChainRule, ...], *extra: Chain) -> DesiredState:
    sub = Chain("nw-sub", (ChainRule("in-sub", Match(protocol="tcp"), Target("ACCEPT")),))
    tables = (TableState(4, "filter", (Chain("nw-fi", filter4), sub, *extra),
                         (Hook("INPUT", "nw-fi"),)),
              TableState(4, "raw", (Chain("nw-PREROUTING", RAW4),),
                         (Hook("PREROUTING", "nw-PREROUTING"),)),
              TableState(6, "filter", (Chain("nw-fi", FILTER6),), (Hook("INPUT", "nw-fi"),)))
    return DesiredState(tables=tables, ipsets=(), xdp=XdpState(), rules={})


def _digests() -> dict:
    return IptablesDataplane().block_digests(iptables_observe.observe())


def _apply_and_read(desired: DesiredState) -> dict:
    iptables_apply.apply(desired)
    return _digests()


def _sets(ns: str, *names: str) -> None:
    for name in names:
        in_ns(ns, "ipset", "create", name, "hash:net")


def test_digests_are_stable_for_every_kind_of_rule(netns_one):
    ns = netns_one
    _sets(ns, "nw-a", "nw-b")
    first = run_in_netns(ns, _apply_and_read, _desired(FILTER4))
    ids = {rid for chain in first.values() for rid in chain}
    assert ids >= {r.rule_id for r in FILTER4 + RAW4 + FILTER6}
    assert len(set(first[next(k for k in first if k.chain == "nw-fi" and k.family == 4)]
                   .values())) == len({r.rule_id for r in FILTER4})  # all differ

    # everything gone and written again, with other chains and rules around it, the
    # rules in another order, and the sets at other kernel indexes
    run_in_netns(ns, iptables_apply.flush)
    in_ns(ns, "ipset", "destroy", "nw-a")
    in_ns(ns, "ipset", "destroy", "nw-b")
    _sets(ns, "foreign-0", "nw-b", "foreign-1", "nw-a")
    in_ns(ns, "iptables-legacy", "-N", "FOREIGN")
    in_ns(ns, "iptables-legacy", "-A", "INPUT", "-p", "udp", "--dport", "9", "-j", "FOREIGN")
    other = Chain("nw-other", (ChainRule("o", Match(protocol="udp"), Target("DROP")),))
    again = run_in_netns(ns, _apply_and_read,
                         _desired((*FILTER4[1:], FILTER4[0]), other))
    for key, digests in first.items():
        assert again[key] == digests, key


def test_an_edit_in_place_changes_the_digest(netns_one):
    ns = netns_one
    _sets(ns, "nw-a", "nw-b")
    before = run_in_netns(ns, _apply_and_read, _desired(FILTER4))
    save = in_ns(ns, "iptables-legacy-save", "-t", "filter").stdout.splitlines()
    rules = [ln for ln in save if ln.startswith("-A nw-fi ")]
    pos = next(i for i, ln in enumerate(rules, start=1) if "nw:sets" in ln)
    in_ns(ns, "iptables-legacy", "-R", "nw-fi", str(pos), "-m", "set", "--match-set", "nw-b",
          "src", "-m", "set", "!", "--match-set", "nw-b", "dst", "-m", "comment",
          "--comment", "nw:sets", "-g", "nw-sub")
    after = run_in_netns(ns, _digests)
    changed = {(key.table, rid) for key, digests in before.items()
               for rid, digest in digests.items() if after[key].get(rid) != digest}
    assert changed == {("filter", "sets")}
