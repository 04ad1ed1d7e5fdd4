"""Panic overlay (pure): the panic chains come first in raw, carry the failsafe lists
(family-filtered), keep the profile's own raw rules, and the recorded shape used for
drift matches what is written; the marker file."""
from __future__ import annotations

from nodewall.engine.dataplane.shape import ExpectedShape
from nodewall.engine.errors import Loc
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
from nodewall.engine.profile.model import Failsafe, Settings
from nodewall.engine.safety import panic


def _state() -> panic.PanicState:
    loc = Loc("x")
    s = Settings(failsafe_inbound=(Failsafe("tcp", 22, None, loc),
                                   Failsafe("tcp", 2022, "10.0.0.0/8", loc)),
                 failsafe_outbound=(Failsafe("udp", 53, "fd00::/8", loc),))
    return panic.state_from_settings(s, since=1.0)


def _profile_raw() -> DesiredState:
    own = ChainRule("own", Match(in_iface="eth0"), Target("GOTO", chain="nw-rfi-eth0"))
    body = ChainRule("body", Match(), Target("DROP"))
    raw = TableState(4, "raw", (Chain("nw-PREROUTING", (own,)), Chain("nw-rfi-eth0", (body,))),
                     (Hook("PREROUTING", "nw-PREROUTING"),))
    return DesiredState((raw,), (), XdpState(), {})


def test_overlay_puts_panic_first_and_keeps_the_profile():
    d = panic.overlay(_profile_raw(), _state())
    raw4 = d.table(4, "raw")
    pre = next(c for c in raw4.chains if c.name == "nw-PREROUTING")
    assert pre.rules[0].target.chain == panic.PANIC_IN and pre.rules[1].rule_id == "own"
    assert {h.kernel_chain for h in raw4.hooks} == {"PREROUTING", "OUTPUT"}
    pin = next(c for c in raw4.chains if c.name == panic.PANIC_IN)
    assert pin.rules[0].match.in_iface == "lo" and pin.rules[-1].target.kind == "DROP"
    ports = [(r.match.dst_ports, r.match.src_net) for r in pin.rules if r.match.dst_ports]
    assert [(p[0].first, net) for p, net in ports] == [(22, None), (2022, "10.0.0.0/8")]
    # v6: the v4-only entry is left out, the v6 outbound one's return traffic is in
    pin6 = next(c for c in d.table(6, "raw").chains if c.name == panic.PANIC_IN)
    assert not any(r.match.src_net == "10.0.0.0/8" for r in pin6.rules)
    assert any(r.match.src_ports and r.match.src_ports[0].first == 53 for r in pin6.rules)
    assert any(r.match.icmp_type == 135 for r in pin6.rules)
    assert all(rid in d.rules for t in d.tables for c in t.chains for rid in
               {r.rule_id for r in c.rules} if rid not in ("own", "body"))


def test_overlay_shape_matches_the_shape_of_the_overlay():
    base = _profile_raw()
    expected = ExpectedShape.of(base, {})
    written = ExpectedShape.of(panic.overlay(base, _state()), {})
    assert panic.overlay_shape(expected, _state()) == written


def test_marker_roundtrip_and_damaged_marker_stays_on(tmp_path):
    assert panic.read_marker(tmp_path) is None
    panic.write_marker(tmp_path, _state())
    assert panic.read_marker(tmp_path) == _state()
    (tmp_path / panic.MARKER).write_text("{not json")
    assert panic.read_marker(tmp_path) is not None  # never silently off
    panic.clear_marker(tmp_path)
    assert panic.read_marker(tmp_path) is None
