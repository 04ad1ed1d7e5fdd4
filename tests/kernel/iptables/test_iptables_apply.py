"""iptables backend against the real kernel, inside throwaway namespaces: desired
states built by hand, applied with python-iptables, checked with real packets."""
from __future__ import annotations

import pytest
from nodewall.engine.dataplane.iptables import apply as iptables_apply
from nodewall.engine.dataplane.iptables import observe as iptables_observe
from nodewall.engine.errors import OwnershipError
from nodewall.engine.plan.desired import (
    Chain,
    ChainRule,
    DesiredState,
    Hook,
    Match,
    TableState,
    Target,
    XdpState,
)
from nodewall.engine.profile.model import PortRange
from nodewall.engine.system.netns import run_in_netns

from tests.conftest import in_ns

pytestmark = pytest.mark.kernel

ICMP_OK = ChainRule("icmp-ok", Match(protocol="icmp"), Target("ACCEPT"))
ICMP6_OK = ChainRule("icmp6-ok", Match(protocol="icmpv6"), Target("ACCEPT"))


def state(*tables: TableState) -> DesiredState:
    return DesiredState(tables=tables, ipsets=(), xdp=XdpState(), rules={})


def filter_in(*rules: ChainRule, family: int = 4, chain: str = "nw-fi",
              extra: tuple[Chain, ...] = ()) -> TableState:
    return TableState(family, "filter", (Chain(chain, rules), *extra),  # type: ignore[arg-type]
                      (Hook("INPUT", chain),))


def ping(pair, v6: bool = False, count: int = 1, src: str | None = None) -> bool:
    dst = pair.server_ip6 if v6 else pair.server_ip
    args = ["ping", "-6" if v6 else "-4", "-c", str(count), "-W", "1", "-i", "0.2"]
    if src:
        args += ["-I", src]
    return in_ns(pair.client, *args, dst, check=False).returncode == 0


def save(ns: str, table: str = "filter", v6: bool = False) -> str:
    cmd = "ip6tables-legacy-save" if v6 else "iptables-legacy-save"
    return in_ns(ns, cmd, "-t", table).stdout


def rules_only(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith("#")]


def counters(ns: str) -> dict:
    return run_in_netns(ns, iptables_observe.counters)


def test_set_drop_blocks_ping_and_counts(netns_pair):
    srv = netns_pair.server
    in_ns(srv, "ipset", "create", "nw-blk", "hash:net")
    in_ns(srv, "ipset", "add", "nw-blk", netns_pair.client_ip)
    drop = ChainRule("drop-blk", Match(src_sets=("nw-blk",)), Target("DROP"))
    run_in_netns(srv, iptables_apply.apply, state(filter_in(drop, ICMP_OK)))
    assert not ping(netns_pair)
    c = counters(srv)
    assert c[("drop-blk", "filter")][0] >= 1
    assert c.get(("icmp-ok", "filter"), (0, 0))[0] == 0

    in_ns(srv, "ipset", "del", "nw-blk", netns_pair.client_ip)
    assert ping(netns_pair)
    assert counters(srv)[("icmp-ok", "filter")][0] >= 1


def test_unchanged_rules_keep_counters(netns_pair):
    srv = netns_pair.server
    tcp9 = ChainRule("tcp9", Match(protocol="tcp", dst_ports=(PortRange(9, 9),)), Target("DROP"))
    run_in_netns(srv, iptables_apply.apply, state(filter_in(ICMP_OK, tcp9)))
    assert ping(netns_pair, count=3)
    before = counters(srv)[("icmp-ok", "filter")]
    assert before[0] >= 3

    udp9 = ChainRule("udp9", Match(protocol="udp", dst_ports=(PortRange(9, 9),)), Target("DROP"))
    log = ChainRule("log-all", Match(), Target("LOG", log_prefix="nw-test "))
    done = run_in_netns(srv, iptables_apply.apply, state(filter_in(log, ICMP_OK, udp9)))
    kinds = sorted(op.kind for op in done.ops)
    assert kinds == ["delete", "insert", "insert"]  # icmp-ok untouched, hook kept
    after = counters(srv)
    assert after[("icmp-ok", "filter")] == before
    obs = run_in_netns(srv, iptables_observe.observe)
    chain = obs.table(4, "filter").chain("nw-fi")
    assert [r.rule_id for r in chain.rules] == ["log-all", "icmp-ok", "udp9"]


def test_second_apply_is_a_noop(netns_one):
    st = state(filter_in(ICMP_OK))
    run_in_netns(netns_one, iptables_apply.apply, st)
    first = rules_only(save(netns_one))
    assert run_in_netns(netns_one, iptables_apply.apply, st).empty
    assert rules_only(save(netns_one)) == first


def test_hook_is_single_reinserted_and_kept_on_top(netns_one):
    ns = netns_one
    st = state(filter_in(ICMP_OK))
    run_in_netns(ns, iptables_apply.apply, st)
    run_in_netns(ns, iptables_apply.apply, st)
    assert save(ns).count('"nw:hook"') == 1

    # a foreign tool inserts its rule above ours: the hook goes back to the top
    in_ns(ns, "iptables-legacy", "-I", "INPUT", "1", "-p", "udp", "--dport", "7", "-j", "DROP")
    done = run_in_netns(ns, iptables_apply.apply, st)
    assert [op.kind for op in done.ops] == ["move_hook"]
    rules = in_ns(ns, "iptables-legacy", "-S", "INPUT").stdout.splitlines()
    assert rules[1].endswith("-j nw-fi") and "nw:hook" in rules[1]
    assert "--dport 7 -j DROP" in rules[2]

    # someone deletes our hook: it comes back, once
    in_ns(ns, "iptables-legacy", "-D", "INPUT", "1")
    hooks = run_in_netns(ns, iptables_observe.observe).table(4, "filter").hooks
    assert hooks == ()
    done = run_in_netns(ns, iptables_apply.apply, st)
    assert [op.kind for op in done.ops] == ["add_hook"]
    assert save(ns).count('"nw:hook"') == 1


def test_jump_to_new_chain_and_stale_chain_removed(netns_pair):
    srv = netns_pair.server
    sub = Chain("nw-sub", (ChainRule("sub-drop", Match(protocol="icmp"), Target("DROP")),))
    jump = ChainRule("to-sub", Match(in_iface=netns_pair.server_if), Target("JUMP", chain="nw-sub"))
    run_in_netns(srv, iptables_apply.apply, state(filter_in(jump, ICMP_OK, extra=(sub,))))
    assert not ping(netns_pair)  # the jump into the chain created in the same commit works

    done = run_in_netns(srv, iptables_apply.apply, state(filter_in(ICMP_OK)))
    assert {op.kind for op in done.ops} == {"delete", "flush_chain", "delete_chain"}
    assert "nw-sub" not in save(srv)
    assert ping(netns_pair)


def test_v6_and_raw_notrack_and_goto(netns_pair):
    srv = netns_pair.server
    drop6 = ChainRule("drop6-echo", Match(protocol="icmpv6", icmp_type=128), Target("DROP"))
    raw = TableState(4, "raw", (Chain("nw-rp", (
        ChainRule("notrack-icmp", Match(protocol="icmp"), Target("NOTRACK")),
        ChainRule("mark", Match(protocol="icmp"), Target("MARK", mark=(0x800000, 0x800000))),
    )),), (Hook("PREROUTING", "nw-rp"),))
    goto = ChainRule("goto-marked", Match(mark=(0x800000, 0x800000)), Target("GOTO", chain="nw-ok"))
    ok = Chain("nw-ok", (ChainRule("ok", Match(), Target("ACCEPT")),))
    deny = ChainRule("deny", Match(), Target("DROP"))
    filt = TableState(4, "filter", (Chain("nw-fi", (goto, deny)), ok), (Hook("INPUT", "nw-fi"),))
    run_in_netns(srv, iptables_apply.apply,
                 state(raw, filt, filter_in(drop6, ICMP6_OK, family=6)))
    assert ping(netns_pair)  # untracked + marked in raw, accepted via the goto
    assert not ping(netns_pair, v6=True)
    c = counters(srv)
    assert c[("notrack-icmp", "raw")][0] >= 1 and c[("ok", "filter")][0] >= 1
    assert c[("drop6-echo", "filter")][0] >= 1
    assert "-j CT --notrack" in save(srv, "raw")
    conntrack = in_ns(srv, "conntrack", "-L", "-p", "icmp", check=False).stdout
    assert netns_pair.client_ip not in conntrack


def test_foreign_jump_into_stale_chain_is_refused(netns_one):
    ns = netns_one
    run_in_netns(ns, iptables_apply.apply, state(filter_in(ICMP_OK)))
    in_ns(ns, "iptables-legacy", "-A", "OUTPUT", "-j", "nw-fi")
    with pytest.raises(OwnershipError):
        run_in_netns(ns, iptables_apply.apply, state())
    assert "-A OUTPUT -j nw-fi" in save(ns)  # the foreign rule stayed


def test_flush_removes_only_ours(netns_one):
    ns = netns_one
    in_ns(ns, "iptables-legacy", "-N", "FOREIGN")
    in_ns(ns, "iptables-legacy", "-A", "FOREIGN", "-p", "tcp", "--dport", "80", "-j", "ACCEPT")
    in_ns(ns, "iptables-legacy", "-A", "INPUT", "-j", "FOREIGN")
    in_ns(ns, "ipset", "create", "foreign-set", "hash:ip")
    raw = TableState(4, "raw", (Chain("nw-rp", (ICMP_OK,)),), (Hook("PREROUTING", "nw-rp"),))
    run_in_netns(ns, iptables_apply.apply,
                 state(raw, filter_in(ICMP_OK), filter_in(ICMP6_OK, family=6)))
    assert "nw-" in save(ns) and "nw-" in save(ns, v6=True)

    report = run_in_netns(ns, iptables_apply.flush)
    assert report.complete and len(report.removed_hooks) == 3
    for table in ("raw", "mangle", "filter"):
        assert "nw" not in save(ns, table) and "nw" not in save(ns, table, v6=True)
    text = save(ns)
    assert "-A INPUT -j FOREIGN" in text and "-A FOREIGN -p tcp" in text
    assert "foreign-set" in in_ns(ns, "ipset", "list", "-n").stdout
    assert run_in_netns(ns, iptables_apply.flush).removed_chains == ()


def test_observe_does_not_create_tables(netns_one):
    run_in_netns(netns_one, iptables_observe.observe)
    run_in_netns(netns_one, iptables_apply.apply, state())
    names = in_ns(netns_one, "cat", "/proc/net/ip_tables_names").stdout.split()
    assert names == []
