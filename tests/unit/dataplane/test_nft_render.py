"""Pure parts of the nftables dataplane (no root): rule and ruleset rendering, the
chain naming, CIDR ranges (merge, diff, manifests), netlink element encoding, the
read-back parser, and the orchestrator's choice of packet filter."""
from __future__ import annotations

import struct
from pathlib import Path

import pytest
from nodewall.engine.dataplane.nftables import intervals, netlink, render
from nodewall.engine.dataplane.nftables.dataplane import NftablesDataplane
from nodewall.engine.dataplane.nftables.observe import NftObserved, parse
from nodewall.engine.dataplane.orchestrator import Orchestrator, packet_filter_of
from nodewall.engine.dataplane.protocol import TxContext
from nodewall.engine.dataplane.shape import ChainKey, ExpectedShape, HookKey
from nodewall.engine.plan.desired import (
    MARK_ALLOW,
    Chain,
    ChainRule,
    DesiredState,
    Hook,
    IpSetSpec,
    Match,
    TableState,
    Target,
    XdpState,
)
from nodewall.engine.profile.model import PortRange

P = PortRange


@pytest.mark.parametrize(("match", "target", "family", "text"), [
    (Match(in_iface="!lo", protocol="tcp", dst_ports=(P(22, 22), P(8000, 8080))),
     Target("ACCEPT"), 4,
     ('iifname != "lo" meta l4proto tcp tcp dport { 22, 8000-8080 } counter accept '
     'comment "nw:x"')),
    (Match(out_iface="eth+", protocol="udp", not_src_ports=(P(53, 53),)), Target("DROP"), 4,
     'oifname "eth*" meta l4proto udp udp sport != 53 counter drop comment "nw:x"'),
    (Match(src_net="10.0.0.0/8", not_dst_net="10.1.0.0/16"), Target("RETURN"), 4,
     'ip saddr 10.0.0.0/8 ip daddr != 10.1.0.0/16 counter return comment "nw:x"'),
    (Match(not_protocol="tcp"), Target("JUMP", chain="nw-sub"), 6,
     'meta l4proto != tcp counter jump filter6-nw-sub comment "nw:x"'),
    (Match(src_sets=("nw-a",), not_src_sets=("nw-b",), dst_sets=("nw-c",),
           not_dst_sets=("nw-d",)), Target("GOTO", chain="nw-g"), 6,
     ("ip6 saddr @nw-a ip6 saddr != @nw-b ip6 daddr @nw-c ip6 daddr != @nw-d counter "
     'goto filter6-nw-g comment "nw:x"')),
    (Match(protocol="icmp", icmp_type=8, icmp_code=0), Target("ACCEPT"), 4,
     'meta l4proto icmp icmp type 8 icmp code 0 counter accept comment "nw:x"'),
    (Match(protocol="icmpv6", not_icmp_type=128), Target("DROP"), 6,
     'meta l4proto ipv6-icmp icmpv6 type != 128 counter drop comment "nw:x"'),
    (Match(protocol="icmp", not_icmp_type=3, not_icmp_code=4), Target("DROP"), 4,
     'meta l4proto icmp icmp type . icmp code != { 3 . 4 } counter drop comment "nw:x"'),
    (Match(ct_states=("RELATED", "ESTABLISHED")), Target("ACCEPT"), 4,
     'ct state { related, established } counter accept comment "nw:x"'),
    (Match(ct_states=("UNTRACKED",)), Target("ACCEPT"), 6,
     'ct state untracked counter accept comment "nw:x"'),
    (Match(protocol="tcp", src_sets=("nw-a",), dst_ports=(P(6379, 6379),)), Target("DROP"), 4,
     'meta l4proto tcp tcp dport 6379 ip saddr @nw-a counter drop comment "nw:x"'),
    (Match(mark=(MARK_ALLOW, MARK_ALLOW)), Target("ACCEPT"), 4,
     'meta mark and 0x800000 == 0x800000 counter accept comment "nw:x"'),
    (Match(), Target("MARK", mark=(MARK_ALLOW, MARK_ALLOW)), 4,
     'counter meta mark set meta mark and 0xff7fffff xor 0x800000 comment "nw:x"'),
    (Match(), Target("NOTRACK"), 4, 'counter notrack comment "nw:x"'),
    (Match(protocol="udplite", dst_ports=(P(9, 9),)), Target("LOG", log_prefix='a "b"'), 4,
     'meta l4proto udplite udplite dport 9 counter log prefix "a \\"b\\"" comment "nw:x"'),
    (Match(protocol="47", dst_ports=()), Target("ACCEPT"), 4,
     'meta l4proto 47 counter accept comment "nw:x"'),
])
def test_rule_text(match, target, family, text):
    assert render.rule_text(ChainRule("x", match, target), family, "filter") == text


def test_counters_are_carried_and_comment_can_be_left_out():
    rule = ChainRule("x", Match(), Target("DROP"))
    assert render.rule_text(rule, 4, "raw", carry=(3, 180), comment=False) == \
        "counter packets 3 bytes 180 drop"


def test_chain_names_map_back_to_chain_keys():
    assert render.chain_name(6, "mangle", "nw-mfi-eth0") == "mangle6-nw-mfi-eth0"
    assert render.chain_key("mangle6-nw-mfi-eth0") == ChainKey(6, "mangle", "nw-mfi-eth0")
    assert render.chain_key("raw4-nw-a-b") == ChainKey(4, "raw", "nw-a-b")
    for base in ("raw-prerouting", "filter-input", "nat4", "foo4-nw-x"):
        assert render.chain_key(base) is None


def _desired(**kw) -> DesiredState:
    raw = TableState(4, "raw", (Chain("nw-PREROUTING", (
        ChainRule("a", Match(src_sets=("nw-n4-x",)), Target("DROP")),
        ChainRule("b", Match(), Target("GOTO", chain="nw-sub")))), Chain("nw-sub", ())),
        (Hook("PREROUTING", "nw-PREROUTING"),))
    flt = TableState(6, "filter", (Chain("nw-INPUT", (ChainRule("c", Match(), Target("ACCEPT")),)),),
                     (Hook("INPUT", "nw-INPUT"),))
    sets = (IpSetSpec("nw-n4-x", 4, "hash:net", inline=("192.0.2.0/24",)),)
    return DesiredState(tables=(raw, flt), ipsets=sets, xdp=XdpState(), rules={}, **kw)


def test_ruleset_is_one_batch_that_flushes_then_rebuilds():
    cmds = render.ruleset_commands(_desired(), ["raw4-nw-PREROUTING", "raw4-nw-old"],
                                   ["nw-n4-x", "nw-n4-stale"],
                                   {("raw4-nw-PREROUTING", "a"): [(5, 300)]})
    t = "inet nodewall"
    assert cmds[:3] == [f"add table {t}", f"flush chain {t} raw4-nw-PREROUTING",
                        f"flush chain {t} raw4-nw-old"]
    assert f"delete chain {t} raw4-nw-old" in cmds
    assert f"delete set {t} nw-n4-stale" in cmds and f"delete set {t} nw-n4-x" not in cmds
    assert (f"add chain {t} raw-prerouting {{ type filter hook prerouting priority -300; "
            "policy accept; }") in cmds
    assert (f"add chain {t} filter-input {{ type filter hook input priority 0; "
            "policy accept; }") in cmds
    assert (f'add rule {t} raw-prerouting meta nfproto ipv4 counter jump raw4-nw-PREROUTING '
            'comment "nw:hook"') in cmds
    assert (f"add rule {t} raw4-nw-PREROUTING ip saddr @nw-n4-x counter packets 5 bytes 300 "
            'drop comment "nw:a"') in cmds
    assert f'add rule {t} raw4-nw-PREROUTING counter goto raw4-nw-sub comment "nw:b"' in cmds
    # every chain exists before the first rule that jumps to it
    first_rule = next(i for i, c in enumerate(cmds) if c.startswith("add rule"))
    assert all(i < first_rule for i, c in enumerate(cmds) if c.startswith("add chain"))


def test_intervals_merge_diff_and_text():
    packed: list[int] = []
    intervals.parse_chunk(b"10.0.0.0/24\n10.0.0.5\n10.0.1.0/24\n10.0.3.1/16\n192.0.2.9\n",
                          4, packed)
    ranges = intervals.merge(packed, 4)
    assert [intervals.to_text(r, 4) for r in ranges] == ["10.0.0.0/16", "192.0.2.9"]
    other: list[int] = []
    intervals.parse_chunk(b"10.0.0.0/24\n10.0.2.0/24\n", 4, other)
    merged = intervals.merge(other, 4)
    assert [intervals.to_text(r, 4) for r in merged] == ["10.0.0.0/24", "10.0.2.0/24"]
    add, rem = intervals.diff(merged, intervals.merge([merged[0]], 4))
    assert add == [] and [intervals.to_text(r, 4) for r in rem] == ["10.0.2.0/24"]
    v6: list[int] = []
    intervals.parse_chunk(b"2001:db8::/33\n2001:db8:8000::/33\n::1\n", 6, v6)
    assert [intervals.to_text(r, 6) for r in intervals.merge(v6, 6)] == ["::1",
                                                                         "2001:db8::/32"]
    r = intervals.merge([(1 << 32 | 5)], 4)
    assert intervals.to_text(r[0], 4) == "0.0.0.1-0.0.0.5"


@pytest.mark.parametrize("family", [4, 6])
def test_manifest_round_trip(tmp_path: Path, family):
    packed: list[int] = []
    text = b"10.1.0.0/16\n192.0.2.1\n" if family == 4 else b"2001:db8::/48\nfd00::1\n"
    intervals.parse_chunk(text, family, packed)
    ranges = intervals.merge(packed, family)
    intervals.save(tmp_path / "s.ranges", ranges, family)
    assert intervals.load(tmp_path / "s.ranges", family) == ranges
    assert intervals.load(tmp_path / "missing", family) is None


def test_netlink_elements_are_start_and_end_keys():
    ranges = intervals.merge([0x0A000000 << 32 | 0x0A0000FF, 0xFFFFFF00 << 32 | 0xFFFFFFFF], 4)
    els = list(netlink.elements(ranges, 4))
    assert len(els) == 3  # the range open to the top of the space has no end element
    start, end, top = els
    assert start.endswith(bytes([10, 0, 0, 0]))
    assert bytes([10, 0, 1, 0]) in end and end.endswith(struct.pack("!I", 1))
    assert top.endswith(netlink.OPEN_INTERVAL_UDATA + b"\0\0")
    for el in els:  # each element is one whole attribute
        assert struct.unpack_from("=H", el)[0] <= len(el) <= struct.unpack_from("=H", el)[0] + 3
    batch = netlink.Batch("nodewall")
    n = batch.set_elements("s", (start for _ in range(10000)))
    assert n == 10000 and batch.messages == -(-10000 * len(start) // netlink.MAX_ELEMENTS_BYTES)


READ_BACK = [
    {"table": {"family": "inet", "name": "nodewall"}},
    {"table": {"family": "ip", "name": "filter"}},
    {"chain": {"family": "ip", "table": "filter", "name": "raw4-nw-PREROUTING"}},
    {"rule": {"family": "ip", "table": "filter", "chain": "raw4-nw-PREROUTING",
              "comment": "nw:z", "expr": [{"counter": {"packets": 1, "bytes": 1}}]}},
    {"set": {"family": "inet", "name": "nw-n4-x", "table": "nodewall", "type": "ipv4_addr"}},
    {"chain": {"family": "inet", "table": "nodewall", "name": "raw-prerouting",
               "type": "filter", "hook": "prerouting", "prio": -300}},
    {"chain": {"family": "inet", "table": "nodewall", "name": "raw4-nw-PREROUTING"}},
    {"chain": {"family": "inet", "table": "nodewall", "name": "raw4-nw-sub"}},
    {"rule": {"family": "inet", "table": "nodewall", "chain": "raw-prerouting", "comment": "nw:hook", "expr": [
        {"match": {"op": "==", "left": {"meta": {"key": "nfproto"}}, "right": "ipv4"}},
        {"counter": {"packets": 9, "bytes": 900}}, {"jump": {"target": "raw4-nw-PREROUTING"}}]}},
    {"rule": {"family": "inet", "table": "nodewall", "chain": "raw4-nw-PREROUTING", "comment": "nw:a", "expr": [
        {"counter": {"packets": 2, "bytes": 120}}, {"drop": None}]}},
    {"rule": {"family": "inet", "table": "nodewall", "chain": "raw4-nw-PREROUTING", "comment": "nw:b", "expr": [
        {"counter": {"packets": 7, "bytes": 700}}, {"goto": {"target": "raw4-nw-sub"}}]}},
]


def _observed() -> NftObserved:
    chains, sets = parse(READ_BACK)
    return NftObserved(True, True, tuple(chains), tuple(sets))


def test_read_back_counters_and_drift():
    dp = NftablesDataplane()
    observed = _observed()
    assert dp.counters(observed) == {("a", "raw"): (2, 120), ("b", "raw"): (7, 700)}
    desired = _desired()
    raw_only = DesiredState(tables=desired.tables[:1], ipsets=desired.ipsets, xdp=XdpState(),
                            rules={}, packet_filter="nftables")
    expected = ExpectedShape.of(raw_only, {})
    assert expected.packet_filter == "nftables"
    assert dp.drift(expected, observed) == []
    drift = [str(d) for d in dp.drift(ExpectedShape.of(desired, {}), observed)]
    assert drift == ["chain 6/filter/nw-INPUT is missing",
                     "hook 6/filter/INPUT->nw-INPUT is missing"]
    assert {str(d) for d in dp.drift(ExpectedShape(), observed)} >= {
        "chain 4/raw/nw-PREROUTING is not in the recorded generation",
        "ipset nw-n4-x is not in the recorded generation"}
    assert HookKey(4, "raw", "PREROUTING", "nw-PREROUTING") in expected.hooks


def test_expected_shape_json_keeps_old_files_unchanged():
    shape = ExpectedShape.of(_desired(), {})
    assert "packet_filter" not in shape.to_json()
    nft = ExpectedShape.of(_desired(packet_filter="nftables"), {})
    assert nft.to_json()["packet_filter"] == "nftables"
    assert ExpectedShape.from_json(nft.to_json()) == nft
    assert ExpectedShape.from_json(shape.to_json()).packet_filter == "iptables"


class _Fake:
    def __init__(self, name: str, owns: bool = False):
        self.name, self.owns, self.calls = name, owns, []

    def observe(self):
        return self.owns

    def drift(self, expected, observed):
        return ["x"] if observed else []

    def __getattr__(self, verb):
        return lambda *a: self.calls.append(verb) or []


def test_orchestrator_applies_one_packet_filter_and_flushes_the_other():
    ipsets, iptables, nft, xdp = (_Fake("ipsets", True), _Fake("iptables", True),
                                  _Fake("nftables"), _Fake("xdp"))
    orch = Orchestrator([ipsets, iptables, nft, xdp])
    assert [packet_filter_of(d) for d in orch.dataplanes] == ["iptables", "iptables",
                                                              "nftables", None]
    desired = _desired(packet_filter="nftables")
    assert [d.name for d in orch.selected("nftables")] == ["nftables", "xdp"]
    orch.apply(desired, TxContext())
    assert nft.calls == ["apply", "retire"] and xdp.calls == ["apply", "retire"]
    assert iptables.calls == ["flush"] and ipsets.calls == ["flush"]
    nft.calls.clear()
    orch.apply(_desired(), TxContext())  # back to iptables: nftables owns nothing here
    assert nft.calls == [] and iptables.calls[-2:] == ["apply", "retire"]
