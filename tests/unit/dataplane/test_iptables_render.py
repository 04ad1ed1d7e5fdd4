"""Pure parts of the iptables backend (no root): rendering desired rules to
iptables-save text, planning ops from observed id blocks, counting rules per mode."""
from __future__ import annotations

import pytest
from nodewall.engine.dataplane.iptables.mode import count_rules
from nodewall.engine.dataplane.iptables.observe import (
    ForeignRef,
    ObservedChain,
    ObservedHook,
    ObservedRule,
    ObservedTable,
)
from nodewall.engine.dataplane.iptables.plan import plan_table
from nodewall.engine.dataplane.iptables.render import hook_spec, render_line, render_text, spec_text
from nodewall.engine.errors import OwnershipError
from nodewall.engine.plan.desired import Chain, ChainRule, Hook, Match, TableState, Target
from nodewall.engine.profile.model import PortRange

P = PortRange


@pytest.mark.parametrize(("match", "target", "family", "text"), [
    (Match(in_iface="!lo", protocol="tcp", dst_ports=(P(22, 22), P(8000, 8080))),
     Target("ACCEPT"), 4,
     '! -i lo -p tcp -m multiport --dports 22,8000:8080 -m comment --comment "nw:x" -j ACCEPT'),
    (Match(out_iface="eth0", protocol="udp", not_src_ports=(P(53, 53),)), Target("DROP"), 4,
     '-o eth0 -p udp -m multiport ! --sports 53 -m comment --comment "nw:x" -j DROP'),
    (Match(src_net="10.0.0.0/8", not_dst_net="10.1.0.0/16"), Target("RETURN"), 4,
     '-s 10.0.0.0/8 ! -d 10.1.0.0/16 -m comment --comment "nw:x" -j RETURN'),
    (Match(not_protocol="tcp"), Target("JUMP", chain="nw-sub"), 4,
     '! -p tcp -m comment --comment "nw:x" -j nw-sub'),
    (Match(src_sets=("nw-a",), not_src_sets=("nw-b",), dst_sets=("nw-c",),
           not_dst_sets=("nw-d",)), Target("GOTO", chain="nw-g"), 4,
     ("-m set --match-set nw-a src -m set ! --match-set nw-b src -m set --match-set nw-c dst "
     '-m set ! --match-set nw-d dst -m comment --comment "nw:x" -g nw-g')),
    (Match(protocol="icmp", icmp_type=8, icmp_code=0), Target("ACCEPT"), 4,
     '-p icmp -m icmp --icmp-type 8/0 -m comment --comment "nw:x" -j ACCEPT'),
    (Match(protocol="icmpv6", not_icmp_type=128), Target("DROP"), 6,
     '-p icmpv6 -m icmp6 ! --icmpv6-type 128 -m comment --comment "nw:x" -j DROP'),
    (Match(ct_states=("RELATED", "ESTABLISHED")), Target("ACCEPT"), 4,
     '-m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "nw:x" -j ACCEPT'),
    (Match(ct_states=("UNTRACKED",)), Target("ACCEPT"), 4,
     '-m conntrack --ctstate UNTRACKED -m comment --comment "nw:x" -j ACCEPT'),
    # ports before sets: another port never pays for the set lookup
    (Match(protocol="tcp", src_sets=("nw-a",), dst_ports=(P(6379, 6379),)), Target("DROP"), 4,
     ('-p tcp -m multiport --dports 6379 -m set --match-set nw-a src -m comment --comment '
      '"nw:x" -j DROP')),
    (Match(mark=(0x800000, 0x800000)), Target("ACCEPT"), 6,
     '-m mark --mark 0x800000/0x800000 -m comment --comment "nw:x" -j ACCEPT'),
    (Match(), Target("MARK", mark=(0x800000, 0x800000)), 4,
     '-m comment --comment "nw:x" -j MARK --set-xmark 0x800000/0x800000'),
    (Match(protocol="tcp"), Target("NOTRACK"), 4,
     '-p tcp -m comment --comment "nw:x" -j CT --notrack'),
    (Match(), Target("LOG", log_prefix="nw deny "), 4,
     '-m comment --comment "nw:x" -j LOG --log-prefix "nw deny "'),
])
def test_render_text(match, target, family, text):
    assert render_text(ChainRule("x", match, target), family) == text


def test_render_line_and_without_comment():
    r = ChainRule("abc", Match(protocol="tcp", dst_ports=(P(22, 22),)), Target("ACCEPT"))
    assert render_line("nw-fi", r, 4).startswith("-A nw-fi -p tcp -m multiport --dports 22")
    assert render_text(r, 4, comment=False) == "-p tcp -m multiport --dports 22 -j ACCEPT"
    assert spec_text(hook_spec("nw-fi", 6)) == '-m comment --comment "nw:hook" -j nw-fi'


def test_target_without_chain_is_a_bug():
    with pytest.raises(ValueError):
        render_text(ChainRule("x", Match(), Target("JUMP")), 4)


# ------------------------------------------------------------------ planning


def R(rule_id: str) -> ChainRule:
    return ChainRule(rule_id, Match(protocol="tcp"), Target("ACCEPT"))


def obs_chain(name: str, *ids: str | None, packets: int = 5) -> ObservedChain:
    return ObservedChain(name, tuple(ObservedRule(i, "ACCEPT", packets, 100) for i in ids))


def test_plan_keeps_unchanged_blocks_and_positions_are_sequential():
    have = ObservedTable(4, "filter", True,
                         (obs_chain("nw-fi", "a", "b", "b", "c", None, "d"),),
                         (ObservedHook("INPUT", "nw-fi", 1, 0, 0),))
    want = TableState(4, "filter", (Chain("nw-fi", (R("new"), R("a"), R("c"), R("e"),
                                                    R("d"))),), (Hook("INPUT", "nw-fi"),))
    ops = plan_table(4, "filter", want, have).ops
    assert [(o.kind, o.rule_id, o.position, o.count or len(o.rules)) for o in ops] == [
        ("delete", None, 5, 1),  # bottom-up: foreign rule inside our chain
        ("delete", "b", 2, 2),
        ("insert", "new", 1, 1),  # top-down on the remaining a, c, d
        ("insert", "e", 4, 1),
    ]
    # simulate the ops on the id list: the result is what was asked for
    ids: list[str | None] = ["a", "b", "b", "c", None, "d"]
    for o in ops:
        if o.kind == "delete":
            del ids[o.position - 1:o.position - 1 + o.count]
        else:
            ids[o.position - 1:o.position - 1] = [r.rule_id for r in o.rules]
    assert ids == ["new", "a", "c", "e", "d"]
    assert ops[2].describe() == "+ filter v4 nw-fi [1] -p tcp -j ACCEPT  (nw:new)"


def test_plan_block_with_other_rule_count_is_replaced():
    have = ObservedTable(4, "filter", True, (obs_chain("nw-fi", "a"),), ())
    want = TableState(4, "filter", (Chain("nw-fi", (R("a"), R("a"))),), ())
    assert [o.kind for o in plan_table(4, "filter", want, have).ops] == ["delete", "insert"]


def test_plan_order_create_hooks_then_drop_stale_chains():
    have = ObservedTable(4, "raw", True, (obs_chain("nw-old", "x"),),
                         (ObservedHook("PREROUTING", "nw-old", 1, 0, 0),
                          ObservedHook("OUTPUT", "nw-ro", 3, 0, 0),
                          ObservedHook("OUTPUT", "nw-ro", 5, 0, 0)))
    want = TableState(4, "raw", (Chain("nw-rp", (R("j"),)), Chain("nw-ro", ())),
                      (Hook("PREROUTING", "nw-rp"), Hook("OUTPUT", "nw-ro")))
    ops = plan_table(4, "raw", want, have).ops
    assert [(o.kind, o.chain, o.kernel_chain, o.position) for o in ops] == [
        ("create_chain", "nw-rp", "", 0),
        ("create_chain", "nw-ro", "", 0),
        ("insert", "nw-rp", "", 1),
        ("remove_hook", "nw-ro", "OUTPUT", 5),  # duplicate
        ("move_hook", "nw-ro", "OUTPUT", 3),
        ("remove_hook", "nw-old", "PREROUTING", 1),
        ("add_hook", "nw-rp", "PREROUTING", 1),
        ("flush_chain", "nw-old", "", 0),
        ("delete_chain", "nw-old", "", 0),
    ]


def test_plan_nothing_to_do_and_absent_table():
    have = ObservedTable(6, "filter", True, (obs_chain("nw-fi", "a"),),
                         (ObservedHook("INPUT", "nw-fi", 1, 0, 0),))
    want = TableState(6, "filter", (Chain("nw-fi", (R("a"),)),), (Hook("INPUT", "nw-fi"),))
    assert plan_table(6, "filter", want, have).ops == ()
    tp = plan_table(6, "mangle", None, ObservedTable(6, "mangle", False))
    assert tp.ops == () and not tp.create_table


def test_plan_refuses_to_delete_a_chain_a_foreign_rule_uses():
    have = ObservedTable(4, "filter", True, (obs_chain("nw-fi", "a"),), (),
                         (ForeignRef("OUTPUT", 2, "nw-fi"),))
    with pytest.raises(OwnershipError) as err:
        plan_table(4, "filter", None, have)
    assert "OUTPUT rule 2" in err.value.message and err.value.hint


def test_plan_rejects_contract_violations():
    bad = TableState(4, "raw", (Chain("nw-x", ()),), (Hook("INPUT", "nw-x"),))
    with pytest.raises(ValueError):
        plan_table(4, "raw", bad, ObservedTable(4, "raw", False))


def test_count_rules_splits_ours_from_foreign():
    text = ("*filter\n:INPUT ACCEPT [0:0]\n:nw-fi - [0:0]\n"
            '-A INPUT -m comment --comment "nw:hook" -j nw-fi\n'
            "-A INPUT -j DOCKER\n"
            '-A nw-fi -p icmp -m comment --comment "nw:abc" -j ACCEPT\n'
            "-A nw-custom -s 192.0.2.9/32 -j DROP\nCOMMIT\n")  # foreign despite its name
    assert count_rules(text) == (2, 2)


def test_xtables_lock_is_exclusive_and_times_out_clearly(tmp_path):
    import fcntl

    from nodewall.engine.dataplane.iptables.xtables_lock import XtablesLockTimeout, xtables_lock

    lock = tmp_path / "xtables.lock"
    with xtables_lock(0, lock):
        other = open(lock, "a")  # noqa: SIM115 - a second open file description
        with pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(XtablesLockTimeout) as err, xtables_lock(0, lock):
            pass
        assert "fuser" in (err.value.hint or "")
    fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released on exit
    other.close()
