"""Does one backend-neutral Match (engine.plan.desired.Match) take a Packet?  Also
what made it match: the set members and CIDRs, for the explanation."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from nodewall.engine.explain.members import Address, SetHit, SetIndex, in_net
from nodewall.engine.explain.packet import Packet
from nodewall.engine.plan.desired import Match
from nodewall.engine.plan.xdp import protocol_number
from nodewall.engine.profile.model import PortRange


@dataclass
class MatchResult:
    matched: bool
    because: list[str] = field(default_factory=list)  # the CIDRs / members that matched
    hits: list[SetHit] = field(default_factory=list)


def _iface_ok(want: str | None, have: str | None) -> bool:
    if want is None:
        return True
    if have is None:
        return False
    if want.startswith("!"):
        return have != want[1:]
    return have == want


def _in_ports(port: int | None, ports: Sequence[PortRange]) -> bool:
    return port is not None and any(p.first <= port <= p.last for p in ports)


def _protocol_ok(m: Match, packet: Packet) -> bool:
    if m.protocol is not None and protocol_number(m.protocol) != packet.protocol:
        return False
    return m.not_protocol is None or protocol_number(m.not_protocol) != packet.protocol


def _ports_ok(m: Match, packet: Packet) -> bool:
    if m.dst_ports and not _in_ports(packet.dst_port, m.dst_ports):
        return False
    if m.src_ports and not _in_ports(packet.src_port, m.src_ports):
        return False
    return not (_in_ports(packet.dst_port, m.not_dst_ports)
                or _in_ports(packet.src_port, m.not_src_ports))


def _icmp_is(packet: Packet, icmp_type: int | None, icmp_code: int | None) -> bool:
    return packet.icmp_type == icmp_type and icmp_code in (None, packet.icmp_code)


def _icmp_ok(m: Match, packet: Packet) -> bool:
    """The ICMP type (and code) a rule asks for, or excludes."""
    if m.icmp_type is not None and not _icmp_is(packet, m.icmp_type, m.icmp_code):
        return False
    return m.not_icmp_type is None or not _icmp_is(packet, m.not_icmp_type, m.not_icmp_code)


def _side_ok(address: Address, net: str | None, not_net: str | None, sets: Sequence[str],
             not_sets: Sequence[str], sets_index: SetIndex, result: MatchResult,
             side: str) -> bool:
    if net is not None:
        if not in_net(address, net):
            return False
        result.because.append(f"{side} {address} in {net}")
    if not_net is not None and in_net(address, not_net):
        return False
    for name in sets:
        hit = sets_index.lookup(name, address)
        if hit is None:
            return False
        result.hits.append(hit)
        result.because.append(f"{side} {address} in {hit.describe()}")
    return all(sets_index.lookup(name, address) is None for name in not_sets)


def match_packet(m: Match, packet: Packet, mark: int, sets_index: SetIndex,
                 ct_state: str = "NEW") -> MatchResult:
    """Whether `m` takes `packet` (a new connection whose packet mark is `mark`; its
    conntrack state is NEW, or UNTRACKED once a NOTRACK took it)."""
    result = MatchResult(False)
    if not (_iface_ok(m.in_iface, packet.in_iface) and _iface_ok(m.out_iface, packet.leaves_by)
            and _protocol_ok(m, packet) and _ports_ok(m, packet) and _icmp_ok(m, packet)):
        return result
    if m.ct_states and ct_state not in m.ct_states:
        return result
    if m.mark is not None and (mark & m.mark[1]) != m.mark[0]:
        return result
    if not _side_ok(packet.src, m.src_net, m.not_src_net, m.src_sets, m.not_src_sets,
                    sets_index, result, "source"):
        return result
    if not _side_ok(packet.dst, m.dst_net, m.not_dst_net, m.dst_sets, m.not_dst_sets,
                    sets_index, result, "destination"):
        return result
    result.matched = True
    return result
