"""Drift by content (issue 15), the pure parts: the recorded block digests in
meta.json (old files without them read as "ids only"), the drift they report and the
plans that replace a block edited in place, for iptables and nftables."""
from __future__ import annotations

import copy

from nodewall.engine.dataplane.iptables.dataplane import IptablesDataplane
from nodewall.engine.dataplane.iptables.observe import (
    IptablesObserved,
    ObservedChain,
    ObservedHook,
    ObservedRule,
    ObservedTable,
)
from nodewall.engine.dataplane.iptables.plan import plan_table
from nodewall.engine.dataplane.nftables.dataplane import NftablesDataplane
from nodewall.engine.dataplane.nftables.observe import NftObserved, parse, rule_digest
from nodewall.engine.dataplane.protocol import TxContext
from nodewall.engine.dataplane.shape import (
    ChainKey,
    ExpectedShape,
    HookKey,
    chain_drift,
    digest_blocks,
    edited_blocks,
)
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

KEY = ChainKey(4, "filter", "nw-fi")


def test_block_digests_follow_id_blocks_and_rule_order():
    blocks = digest_blocks([("a", "1"), ("b", "2"), ("b", "3"), (None, "4"), (None, "5")])
    assert [rid for rid, _ in blocks] == ["a", "b", "(foreign)"]
    swapped = digest_blocks([("a", "1"), ("b", "3"), ("b", "2"), (None, "4"), (None, "5")])
    assert blocks[0] == swapped[0] and blocks[1] != swapped[1]


def test_edited_blocks_checks_only_recorded_ids():
    have = [("a", "d1"), ("b", "other"), ("new", "d9")]
    assert edited_blocks({"a": "d1", "b": "d2"}, have) == ("b",)
    assert edited_blocks({}, have) == ()


def test_chain_drift_names_the_blocks_edited_in_place():
    assert chain_drift(KEY, ("a", "b"), [("a", "d1"), ("b", "d2")], {"a": "d1", "b": "d2"}) == []
    [drift] = chain_drift(KEY, ("a", "b"), [("a", "d1"), ("b", "xx")], {"a": "d1", "b": "d2"})
    assert str(drift) == ("chain 4/filter/nw-fi was changed (1 rule block(s) edited in place: "
                          "nw:b: 2 rule blocks, expected 2)")
    # an old record without digests: ids only
    assert chain_drift(KEY, ("a", "b"), [("a", "d1"), ("b", "xx")], None) == []


def test_meta_json_keeps_digests_and_reads_old_files():
    shape = ExpectedShape(chains={KEY: ("a", "b")})
    assert "digests" not in shape.to_json()  # as older nodewall wrote it
    assert ExpectedShape.from_json(shape.to_json()).digests == {}
    found = {KEY: {"a": "d1", "b": "d2", "panic": "d3"},
             ChainKey(6, "raw", "nw-x"): {"x": "d4"}}
    recorded = shape.with_digests(found)
    assert recorded.digests == {KEY: {"a": "d1", "b": "d2"}}  # only its own blocks
    assert recorded.to_json()["digests"] == {"4/filter/nw-fi": {"a": "d1", "b": "d2"}}
    assert ExpectedShape.from_json(recorded.to_json()) == recorded
    assert recorded.with_first(ExpectedShape(chains={KEY: ("panic",)})).digests == \
        recorded.digests


def _rule(rule_id: str, digest: str, packets: int = 5) -> ObservedRule:
    return ObservedRule(rule_id, "ACCEPT", packets, 100, digest)


def test_iptables_plan_replaces_a_block_edited_in_place_where_it_was():
    rules = (_rule("a", "d1"), _rule("b", "xx", packets=42), _rule("c", "d3"))
    have = ObservedTable(4, "filter", True, (ObservedChain("nw-fi", rules),), ())
    want = TableState(4, "filter", (Chain("nw-fi", tuple(
        ChainRule(i, Match(protocol="tcp"), Target("ACCEPT")) for i in "abc")),), ())
    blocks = {b.rule_id: b.digest for b in have.chain("nw-fi").blocks()}
    assert plan_table(4, "filter", want, have).ops == ()  # ids only
    assert plan_table(4, "filter", want, have, {KEY: blocks}).ops == ()
    recorded = {KEY: {**blocks, "b": "the digest nodewall recorded"}}
    ops = plan_table(4, "filter", want, have, recorded).ops
    assert [(o.kind, o.rule_id, o.position) for o in ops] == [("delete", "b", 2),
                                                              ("insert", "b", 2)]
    assert ops[0].describe() == ("- filter v4 nw-fi [2] nw:b  (edited in place, replaced: "
                                 "its counters are lost, 42 packets)")


def test_an_iptables_hook_edited_in_place_is_drift_and_replaced():
    chain = ObservedChain("nw-fi", (_rule("a", "d1"),))
    edited = ObservedHook("INPUT", "nw-fi", 1, 7, 700, plain=False)
    have = ObservedTable(4, "filter", True, (chain,), (edited,))
    want = TableState(4, "filter", (Chain("nw-fi", (
        ChainRule("a", Match(protocol="tcp"), Target("ACCEPT")),)),), (Hook("INPUT", "nw-fi"),))
    ops = plan_table(4, "filter", want, have).ops
    assert [(o.kind, o.position) for o in ops] == [("remove_hook", 1), ("add_hook", 1)]
    assert ops[0].describe() == ("- filter v4 INPUT [1] -j nw-fi  (nw:hook, edited in place: "
                                 "it no longer matches every packet)")
    shape = ExpectedShape(chains={KEY: ("a",)}, hooks=frozenset(
        {HookKey(4, "filter", "INPUT", "nw-fi")}))
    drift = IptablesDataplane().drift(shape, IptablesObserved((have,)))
    assert [str(d) for d in drift] == [
        "hook 4/filter/INPUT->nw-fi was edited in place (it no longer matches every packet)"]
    plain = ObservedTable(4, "filter", True, (chain,), (ObservedHook("INPUT", "nw-fi", 1, 7, 700),))
    assert plan_table(4, "filter", want, plain).ops == ()
    assert IptablesDataplane().drift(shape, IptablesObserved((plain,))) == []


NFT = [
    {"table": {"family": "inet", "name": "nodewall"}},
    {"chain": {"family": "inet", "table": "nodewall", "name": "filter4-nw-fi"}},
    {"rule": {"family": "inet", "table": "nodewall", "chain": "filter4-nw-fi",
              "comment": "nw:a", "expr": [
                  {"match": {"op": "==", "left": {"payload": {"protocol": "tcp",
                                                              "field": "dport"}},
                             "right": 22}},
                  {"counter": {"packets": 3, "bytes": 180}}, {"accept": None}]}},
]


def _nft(items: list) -> NftObserved:
    chains, sets = parse(items)
    return NftObserved(True, True, tuple(chains), tuple(sets))


def test_nft_rule_digest_ignores_counter_values_not_matches():
    expr = NFT[2]["rule"]["expr"]
    counted = copy.deepcopy(expr)
    counted[1]["counter"]["packets"] = 99
    other = copy.deepcopy(expr)
    other[0]["match"]["right"] = 9999
    assert rule_digest(expr) == rule_digest(counted) != rule_digest(other)


def test_nft_plan_rewrites_a_rule_edited_in_place_without_its_counters():
    dp = NftablesDataplane()
    desired = DesiredState(tables=(TableState(4, "filter", (Chain("nw-fi", (
        ChainRule("a", Match(protocol="tcp"), Target("ACCEPT")),)),), ()),),
        ipsets=(), xdp=XdpState(), rules={}, packet_filter="nftables")
    clean = _nft(NFT)
    recorded = dp.block_digests(clean)
    assert set(recorded) == {KEY}
    edited = copy.deepcopy(NFT)
    edited[2]["rule"]["expr"][0]["match"]["right"] = 9999
    tampered = _nft(edited)
    shape = ExpectedShape.of(desired, {}).with_digests(recorded)
    assert dp.drift(shape, clean) == []
    assert [str(d) for d in dp.drift(shape, tampered)] == [
        ("chain 4/filter/nw-fi was changed (1 rule block(s) edited in place: nw:a: "
         "1 rule blocks, expected 1)")]
    for observed, lines in ((clean, []), (tampered, [
            ("~ nft chain filter4-nw-fi: 1 rule block(s) edited in place, replaced: "
             "their counters are lost")])):
        ctx = TxContext(recorded=recorded, observed={"nftables": observed})
        made = dp.plan(desired, ctx)
        assert list(made.ruleset) == lines
    assert made.edited == {("filter4-nw-fi", "a")}
    assert made.stats()["rules_added"] == made.stats()["rules_removed"] == 1
