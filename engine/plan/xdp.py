"""XDP acceleration of untracked ingress rules (DesiredState.xdp).

Candidates are the untracked ingress rules of host endpoints on named interfaces, in
the order the raw chain evaluates them.  XDP is first-match-wins and must never
reorder, so per interface only the longest prefix of rules XDP can express is
accelerated; every later rule stays in raw only.  The raw rules are always rendered
too: XDP allow passes the packet on, and raw decides again (the backstop).

A rule is expressible when its action is allow or deny and it matches only on the
protocol, the source (nets or a selector, not both: an XDP row ORs its source sets)
and destination ports of tcp/udp/sctp/udplite.  Each distinct source (a network set,
a host endpoint's expected_ips, or one list of inline CIDRs) takes one of 64 bits.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from nodewall.engine.plan.desired import XdpInterface, XdpRule, XdpSetSource, XdpState
from nodewall.engine.plan.rules import RenderedRule
from nodewall.engine.plan.sets import SetResolver, family_of, host_cidr
from nodewall.engine.profile.model import Profile, Rule

MAX_SOURCES = 64
PROTOCOL_NUMBERS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "ipv6-icmp": 58,
                    "sctp": 132, "udplite": 136}
PORT_PROTOCOLS = frozenset({6, 17, 132, 136})


def protocol_number(proto: str | None) -> int | None:
    """IP protocol number of a rule's protocol; None for any; -1 when unknown."""
    if proto is None:
        return None
    if proto.isdigit():
        return int(proto)
    return PROTOCOL_NUMBERS.get(proto.lower(), -1)


def why_not_expressible(rule: Rule) -> str | None:
    """None when XDP can express the rule's matches, else the reason."""
    src, dst = rule.source, rule.destination
    checks = (
        (rule.action not in ("allow", "deny"), f"action {rule.action}"),
        (rule.not_protocol is not None, "not_protocol"),
        (rule.icmp is not None or rule.not_icmp is not None, "icmp type/code"),
        (bool(src.not_nets), "source not_nets"),
        (src.not_selector is not None, "source not_selector"),
        (bool(src.ports or src.not_ports), "source ports"),
        (bool(dst.nets or dst.not_nets), "destination nets"),
        (dst.selector is not None or dst.not_selector is not None, "destination selector"),
        (bool(dst.not_ports), "destination not_ports"),
        (bool(src.nets) and src.selector is not None,
         "source nets AND a source selector (an XDP row ORs its source sets)"),
    )
    for bad, why in checks:
        if bad:
            return why
    proto = protocol_number(rule.protocol)
    if proto == -1:
        return f"unknown protocol {rule.protocol}"
    if dst.ports and proto not in PORT_PROTOCOLS:
        return f"destination ports with protocol {rule.protocol}"
    return None


def _counts(cidrs: Sequence[str]) -> tuple[int, int]:
    return (sum(1 for c in cidrs if family_of(c) == 4),
            sum(1 for c in cidrs if family_of(c) == 6))


@dataclass
class _Sources:
    """Bit allocation for source sets, in order of first use."""

    resolver: SetResolver
    bits: dict[tuple[str, ...], XdpSetSource] = field(default_factory=dict)

    def _wanted(self, rr: RenderedRule) -> list[tuple[tuple[str, ...], XdpSetSource]]:
        """(key, source with bit -1) for every source the rule needs."""
        src = rr.rule.source
        if src.nets:
            nets = tuple(src.nets)
            return [(("nets", *sorted(nets)),
                     XdpSetSource(-1, f"rule {rr.rule_id} nets", nets, (), *_counts(nets)))]
        if src.selector is None:
            return []
        sel = self.resolver.select(src.selector)
        out = [(("netset", ns.name),
                XdpSetSource(-1, f"network set {ns.name}", ns.nets,
                             (ns.nets_file.path,) if ns.nets_file else (),
                             ns.count(4), ns.count(6)))
               for ns in sel.network_sets]
        for ep in sel.host_endpoints:
            cidrs = tuple(sorted({host_cidr(ip) for ip in ep.expected_ips}))
            if cidrs:
                out.append((("hep", ep.name), XdpSetSource(
                    -1, f"host endpoint {ep.name}", cidrs, (), *_counts(cidrs))))
        return out

    def allocate(self, rr: RenderedRule) -> int | None:
        """The rule's src_bits (0 = any source), or None when the bits ran out."""
        wanted = self._wanted(rr)
        new = {key for key, _ in wanted if key not in self.bits}
        if len(self.bits) + len(new) > MAX_SOURCES:
            return None
        mask = 0
        for key, proto in wanted:
            if key not in self.bits:
                self.bits[key] = replace(proto, bit=len(self.bits))
            mask |= 1 << self.bits[key].bit
        return mask


def _family(rr: RenderedRule) -> int:
    fams = sorted(rr.matches)
    return fams[0] if len(fams) == 1 else 0


def plan_xdp(profile: Profile, resolver: SetResolver,
             candidates: Sequence[tuple[str, Sequence[RenderedRule]]]) -> XdpState:
    """candidates: (interface, its untracked ingress rules in raw order) per named
    host endpoint."""
    s = profile.settings
    if s.backend in ("iptables", "nftables"):  # the packet filter alone
        return XdpState()
    sources = _Sources(resolver)
    interfaces: list[XdpInterface] = []
    accelerated: set[str] = set()
    reasons: dict[str, list[tuple[str, str]]] = {}
    for iface, rules in candidates:
        blocked: tuple[str, str] | None = None
        rows: list[XdpRule] = []
        for rr in rules:
            rid = rr.rule_id
            if not rr.matches:
                reasons.setdefault(rid, []).append((iface, f"renders no rule: {rr.note}"))
                continue
            if blocked is not None:
                why = f"follows rule {blocked[0]}, which XDP cannot express: {blocked[1]}"
                reasons.setdefault(rid, []).append((iface, why))
                continue
            why = why_not_expressible(rr.rule)
            bits = sources.allocate(rr) if why is None else None
            if why is None and bits is None:
                why = f"more than {MAX_SOURCES} distinct XDP source sets"
            if why is not None or bits is None:
                blocked = (rid, why or "")
                reasons.setdefault(rid, []).append((iface, why or ""))
                continue
            rows.append(XdpRule(rid, rr.rule.action,  # type: ignore[arg-type]
                                protocol_number(rr.rule.protocol),
                                rr.rule.destination.ports, bits, _family(rr)))  # type: ignore[arg-type]
            accelerated.add(rid)
        if rows:
            interfaces.append(XdpInterface(iface, tuple(rows), s.failsafe_inbound,
                                           failsafe_return=s.failsafe_outbound))
    not_acc: dict[str, str] = {}
    for rid, per_iface in reasons.items():
        texts = sorted({why for _, why in per_iface})
        if rid in accelerated or len(texts) > 1:
            not_acc[rid] = "; ".join(f"on {i}: {why}" for i, why in per_iface)
        else:
            not_acc[rid] = texts[0]
    ordered = sorted(sources.bits.values(), key=lambda x: x.bit)
    return XdpState(mode=s.xdp_mode, interfaces=tuple(interfaces), sets=tuple(ordered),
                    not_accelerated=not_acc)
