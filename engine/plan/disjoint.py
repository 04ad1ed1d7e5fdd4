"""Whether two Matches can never take the same packet, and the cheapest order of a raw
endpoint chain that follows from it.

`disjoint(a, b)` is conservative: True only when some field proves that no packet
matches both (different protocols, non-overlapping port lists of one protocol,
non-overlapping single CIDRs, different ICMP types); False means "may overlap".

`failsafe_last(failsafe, policy)`: a raw endpoint chain is the failsafe ACCEPTs, then
the untracked policy rules.  Failsafe rules all ACCEPT, so their order among themselves
never changes a verdict; one disjoint from every policy rule of the chain can go after
them all, since no packet a policy rule takes could have matched it (nor one of the
failsafe rules that stay in front, so each packet still counts on the same rule).  So the packets of
an untracked flow walk only the failsafe rules they could actually meet, and every
verdict and counter stays what the Calico order (failsafe first) gives.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from nodewall.engine.plan.desired import ChainRule, Match
from nodewall.engine.profile.model import PortRange

# the protocol names a Match may carry, by number (a number may be written instead)
_PROTO_NUMBERS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "ipv6-icmp": 58, "sctp": 132,
                  "udplite": 136, "dccp": 33, "gre": 47, "esp": 50, "ah": 51}


def _proto(name: str | None) -> int | None:
    if name is None:
        return None
    if name.isdigit():
        return int(name)
    return _PROTO_NUMBERS.get(name.lower())


def _protocols_disjoint(a: Match, b: Match) -> bool:
    pa, pb = _proto(a.protocol), _proto(b.protocol)
    if pa is not None and pb is not None and pa != pb:
        return True
    return (pa is not None and pa == _proto(b.not_protocol)) or \
        (pb is not None and pb == _proto(a.not_protocol))


def _ranges_meet(xs: Sequence[PortRange], ys: Sequence[PortRange]) -> bool:
    return any(x.first <= y.last and y.first <= x.last for x in xs for y in ys)


def _within(xs: Sequence[PortRange], ys: Sequence[PortRange]) -> bool:
    """Every port of xs is in ys."""
    return all(any(y.first <= x.first and x.last <= y.last for y in ys) for x in xs)


def _ports_disjoint(a: Match, b: Match) -> bool:
    same = _proto(a.protocol) is not None and _proto(a.protocol) == _proto(b.protocol)
    if not same:
        return False  # ports of different protocols: the protocol check decides
    for pa, pb, na, nb in ((a.src_ports, b.src_ports, a.not_src_ports, b.not_src_ports),
                           (a.dst_ports, b.dst_ports, a.not_dst_ports, b.not_dst_ports)):
        if pa and pb and not _ranges_meet(pa, pb):
            return True
        if (pa and nb and _within(pa, nb)) or (pb and na and _within(pb, na)):
            return True
    return False


def _net(cidr: str | None) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    return None if cidr is None else ipaddress.ip_network(cidr, strict=False)


def _nets_disjoint(a: Match, b: Match) -> bool:
    for na, nb, xa, xb in ((a.src_net, b.src_net, a.not_src_net, b.not_src_net),
                           (a.dst_net, b.dst_net, a.not_dst_net, b.not_dst_net)):
        ia, ib = _net(na), _net(nb)
        if ia is not None and ib is not None and ia.version == ib.version \
                and not ia.overlaps(ib):
            return True
        for inside, outside in ((ia, _net(xb)), (ib, _net(xa))):
            if inside is not None and outside is not None and \
                    inside.version == outside.version and inside.subnet_of(outside):  # type: ignore[arg-type]
                return True
    return False


def _icmp_disjoint(a: Match, b: Match) -> bool:
    if a.icmp_type is None or b.icmp_type is None:
        return False
    if a.icmp_type != b.icmp_type:
        return True
    return a.icmp_code is not None and b.icmp_code is not None and a.icmp_code != b.icmp_code


def disjoint(a: Match, b: Match) -> bool:
    """True when no packet can match both `a` and `b` (of one address family)."""
    if a.in_iface is not None and b.in_iface is not None and a.in_iface != b.in_iface \
            and "!" not in a.in_iface + b.in_iface and "+" not in a.in_iface + b.in_iface:
        return True
    return (_protocols_disjoint(a, b) or _ports_disjoint(a, b) or _nets_disjoint(a, b)
            or _icmp_disjoint(a, b))


def failsafe_last(failsafe: Sequence[ChainRule], policy: Sequence[ChainRule]
                  ) -> list[ChainRule]:
    """The raw endpoint chain: the failsafe rules some policy rule may overlap, the
    policy rules in order, then the failsafe rules no policy rule can meet."""
    if not policy:
        return list(failsafe)
    # from the last failsafe rule back: one moves behind when no policy rule and no
    # failsafe rule after it that stays in front can meet it (so a packet two failsafe
    # rules take still counts on the first of them)
    meet: list[ChainRule] = []
    apart: list[ChainRule] = []
    for f in reversed(failsafe):
        if all(disjoint(f.match, o.match) for o in (*policy, *meet)):
            apart.append(f)
        else:
            meet.append(f)
    return [*reversed(meet), *policy, *reversed(apart)]
