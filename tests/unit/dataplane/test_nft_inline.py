"""Which set changes go as nft text into the one ruleset batch (engine.dataplane.
nftables.sets.inline): small after the change AND known to be small before (nft reads
the live set's elements for its interval checks)."""
from __future__ import annotations

from nodewall.engine.dataplane.nftables.sets import INLINE_MAX, SetChange, commands, inline
from nodewall.engine.plan.desired import IpSetSpec

SPEC = IpSetSpec(name="nw-n4-x-abcdef", family=4, kind="hash:net", inline=("10.0.0.0/8",))
R = 0x0A000000 << 32 | 0x0AFFFFFF  # 10.0.0.0/8


def test_inline_only_when_small_before_and_after() -> None:
    assert inline(SetChange(SPEC, "create", "new", [R], total=1))
    assert not inline(SetChange(SPEC, "create", "new", [R], total=INLINE_MAX + 1))
    assert not inline(SetChange(SPEC, "replace", "no record", [R], total=1))  # before unknown
    assert inline(SetChange(SPEC, "replace", "changed", [R], total=1, before=10))
    assert not inline(SetChange(SPEC, "delta", "small", [R], [R], total=1,
                                before=INLINE_MAX + 1))
    assert not inline(SetChange(SPEC, "none", "unchanged", total=1, before=1))


def test_commands_declare_fill_and_delta() -> None:
    create = SetChange(SPEC, "create", "new", [R], total=1)
    delta = SetChange(SPEC, "delta", "small", [R], added=[R], removed=[R], total=1, before=1)
    assert commands([create]) == [
        "add set inet nodewall nw-n4-x-abcdef { type ipv4_addr; flags interval; }",
        "add element inet nodewall nw-n4-x-abcdef { 10.0.0.0/8 }"]
    assert commands([delta]) == ["delete element inet nodewall nw-n4-x-abcdef { 10.0.0.0/8 }",
                                 "add element inet nodewall nw-n4-x-abcdef { 10.0.0.0/8 }"]
