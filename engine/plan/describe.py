"""One-line human summaries of rules, e.g. "allow tcp from 10.0.0.0/8 to port 6379"."""
from __future__ import annotations

from collections.abc import Sequence

from nodewall.engine.errors import InputError
from nodewall.engine.plan.sets import parse_cached
from nodewall.engine.profile.model import EntityMatch, Failsafe, IcmpMatch, PortRange, Rule

MAX_NETS_SHOWN = 3


def _nets(nets: Sequence[str]) -> str:
    shown = ", ".join(nets[:MAX_NETS_SHOWN])
    more = len(nets) - MAX_NETS_SHOWN
    return shown + (f" +{more} more" if more > 0 else "")


def _ports(ports: Sequence[PortRange]) -> str:
    word = "port" if len(ports) == 1 and ports[0].first == ports[0].last else "ports"
    return f"{word} " + ",".join(str(p) for p in ports)


def _selector(text: str) -> str:
    try:
        return parse_cached(text).canonical()
    except InputError:  # a bad selector is reported by validation, not here
        return text


def _icmp(icmp: IcmpMatch, proto: str | None) -> str:
    word = proto if proto in ("icmp", "icmpv6") else "icmp"
    out = word if icmp.type is None else f"{word} type {icmp.type}"
    return out if icmp.code is None else f"{out} code {icmp.code}"


def entity(e: EntityMatch) -> str:
    """The clauses of a source or destination, "" when it matches anything."""
    parts: list[str] = []
    if e.nets:
        parts.append(_nets(e.nets))
    if e.selector is not None:
        parts.append(f"selector {_selector(e.selector)}")
    if e.not_nets:
        parts.append(f"not {_nets(e.not_nets)}")
    if e.not_selector is not None:
        parts.append(f"not selector {_selector(e.not_selector)}")
    if e.ports:
        parts.append(_ports(e.ports))
    if e.not_ports:
        parts.append("not " + _ports(e.not_ports))
    return " ".join(parts)


def rule_summary(rule: Rule, note: str | None = None) -> str:
    """e.g. "allow tcp from 10.0.0.0/8 to port 6379"."""
    parts: list[str] = [rule.action]
    if rule.ip_version is not None:
        parts.append(f"IPv{rule.ip_version}")
    if rule.icmp is not None:
        parts.append(_icmp(rule.icmp, rule.protocol))
    elif rule.protocol is not None:
        parts.append(rule.protocol)
    if rule.not_protocol is not None:
        parts.append(f"not {rule.not_protocol}")
    if rule.not_icmp is not None:
        parts.append("not " + _icmp(rule.not_icmp, rule.protocol))
    src, dst = entity(rule.source), entity(rule.destination)
    if src:
        parts.append(f"from {src}")
    if dst:
        parts.append(f"to {dst}")
    if len(parts) == 1:
        parts.append("all")
    text = " ".join(parts)
    return f"{text} ({note})" if note else text


def failsafe_summary(fs: Failsafe, direction: str, reverse: bool = False) -> str:
    """e.g. "failsafe inbound tcp:22", "return of failsafe outbound udp:53"."""
    way = "inbound" if direction == "ingress" else "outbound"
    text = f"failsafe {way} {fs}"
    return f"return traffic of {text}" if reverse else text
