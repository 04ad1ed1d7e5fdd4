"""Which rules of a DesiredState name a network holding an address: a CIDR written
in the rule, or a set it matches on (a selector's network sets, a nets_file, host
endpoints' addresses, an XDP source), looked up as explain looks them up
(engine.explain.members).  For the TUI's address filter."""
from __future__ import annotations

import ipaddress

from nodewall.engine.explain.members import Address, SetIndex, lookup_source
from nodewall.engine.plan.desired import DesiredState, Match, XdpRule


def _net_holds(cidr: str | None, address: Address) -> bool:
    if cidr is None:
        return False
    net = ipaddress.ip_network(cidr, strict=False)
    return net.version == address.version and address in net


def match_holds(m: Match, address: Address, sets: SetIndex) -> bool:
    """Whether a network the match asks for (source or destination) holds `address`."""
    if _net_holds(m.src_net, address) or _net_holds(m.dst_net, address):
        return True
    return any(sets.lookup(name, address) is not None for name in (*m.src_sets, *m.dst_sets))


def _xdp_holds(desired: DesiredState, rule: XdpRule, address: Address) -> bool:
    return any(rule.src_bits & (1 << s.bit)
               and lookup_source(s.origin, s.inline, s.files, address) is not None
               for s in desired.xdp.sets)


def rules_holding(desired: DesiredState, address: Address,
                  sets: SetIndex | None = None) -> frozenset[str]:
    """The ids of the rules whose networks hold `address` (each looked up once)."""
    index = sets if sets is not None else SetIndex(desired.ipsets)
    found: set[str] = set()
    seen: set[str] = set()
    for ts in desired.tables:
        if ts.family != address.version:
            continue
        for chain in ts.chains:
            for rule in chain.rules:
                if rule.rule_id in found:
                    continue
                if match_holds(rule.match, address, index):
                    found.add(rule.rule_id)
    for xi in desired.xdp.interfaces:
        for xr in xi.rules:
            if xr.rule_id in seen or xr.rule_id in found:
                continue
            seen.add(xr.rule_id)
            if xr.src_bits and _xdp_holds(desired, xr, address):
                found.add(xr.rule_id)
    return frozenset(found)
