"""Which rules of a DesiredState name a network holding an address: a CIDR written
in the rule, or a set it matches on (a selector's network sets, a nets_file, host
endpoints' addresses, an XDP source), looked up as explain looks them up
(engine.explain.members).  For the TUI's address filter."""
from __future__ import annotations

from nodewall.engine.explain.members import Address, SetIndex, in_net, lookup_source
from nodewall.engine.plan.desired import DesiredState, Match


def match_holds(m: Match, address: Address, sets: SetIndex) -> bool:
    """Whether a network the match asks for (source or destination) holds `address`."""
    if any(net is not None and in_net(address, net) for net in (m.src_net, m.dst_net)):
        return True
    return any(sets.lookup(name, address) is not None for name in (*m.src_sets, *m.dst_sets))


def _xdp_bits_holding(desired: DesiredState, address: Address) -> int:
    """The set bits of the XDP sources holding `address` (each source looked up once)."""
    bits = 0
    for s in desired.xdp.sets:
        if lookup_source(s.origin, s.inline, s.files, address) is not None:
            bits |= 1 << s.bit
    return bits


def rules_holding(desired: DesiredState, address: Address,
                  sets: SetIndex | None = None) -> frozenset[str]:
    """The ids of the rules whose networks hold `address`."""
    index = sets if sets is not None else SetIndex(desired.ipsets)
    found: set[str] = set()
    for ts in desired.tables:
        if ts.family != address.version:
            continue
        for chain in ts.chains:
            found.update(rule.rule_id for rule in chain.rules
                         if rule.rule_id not in found
                         and match_holds(rule.match, address, index))
    xdp_rules = [xr for xi in desired.xdp.interfaces for xr in xi.rules if xr.src_bits]
    if xdp_rules:
        bits = _xdp_bits_holding(desired, address)
        found.update(xr.rule_id for xr in xdp_rules if xr.src_bits & bits)
    return frozenset(found)
