"""Rendering one TOML rule (engine.profile.model.Rule) into backend-neutral matches
per family.

The target is not chosen here: it depends on the table (engine.plan.chains).
A rule renders in a family only when every positive address constraint it has
(nets, selector, ip_version, icmp vs icmpv6) can be met in that family.  More than
15 multiport slots (a range takes 2) split a rule into several matches sharing its id;
a negated port list longer than that is rendered as its complement (positive ranges).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from nodewall.engine.plan.describe import rule_summary
from nodewall.engine.plan.desired import Family, IpSetSpec, Match, RuleMeta
from nodewall.engine.plan.naming import NetsRole, rule_nets_set
from nodewall.engine.plan.rule_ids import assign_dup_indexes, policy_rule_id
from nodewall.engine.plan.sets import (
    FAMILIES,
    SetResolver,
    family_of,
    parse_cached,
    set_members,
)
from nodewall.engine.profile.model import Direction, EntityMatch, IcmpMatch, Policy, PortRange, Rule

MULTIPORT_SLOTS = 15
V4_ONLY_PROTOCOLS = frozenset({"icmp", "1"})
V6_ONLY_PROTOCOLS = frozenset({"icmpv6", "ipv6-icmp", "58"})


@dataclass(frozen=True)
class RenderedRule:
    """A policy rule with its id and its matches per family (empty: not rendered)."""

    rule_id: str
    policy: Policy
    direction: Direction
    index: int
    rule: Rule
    matches: Mapping[int, tuple[Match, ...]] = field(default_factory=dict)
    sets: Mapping[int, tuple[IpSetSpec, ...]] = field(default_factory=dict)
    note: str | None = None  # why it renders nowhere, e.g. "selector matches nothing"

    def in_family(self, family: int) -> tuple[Match, ...]:
        return self.matches.get(family, ())

    def meta(self) -> RuleMeta:
        return RuleMeta(
            rule_id=self.rule_id, profile=self.policy.profile, policy=self.policy.name,
            direction=self.direction, index=self.index, action=self.rule.action,
            tier=self.policy.tier, loc=self.rule.loc,
            summary=rule_summary(self.rule, self.note))


# ---------------------------------------------------------------- canonical content

def _ports_canon(ports: Sequence[PortRange]) -> list[list[int]]:
    return [[p.first, p.last] for p in ports]


def _icmp_canon(icmp: IcmpMatch | None) -> list[int | None] | None:
    return None if icmp is None else [icmp.type, icmp.code]


def _sel_canon(text: str | None) -> str | None:
    return None if text is None else parse_cached(text).canonical()


def _entity_canon(e: EntityMatch) -> dict[str, Any]:
    return {"nets": list(e.nets), "not_nets": list(e.not_nets),
            "selector": _sel_canon(e.selector), "not_selector": _sel_canon(e.not_selector),
            "ports": _ports_canon(e.ports), "not_ports": _ports_canon(e.not_ports)}


def canonical_content(rule: Rule) -> dict[str, Any]:
    """Everything of a rule except its Locs, JSON-able and canonical."""
    return {"action": rule.action, "protocol": rule.protocol,
            "not_protocol": rule.not_protocol, "icmp": _icmp_canon(rule.icmp),
            "not_icmp": _icmp_canon(rule.not_icmp), "ip_version": rule.ip_version,
            "source": _entity_canon(rule.source),
            "destination": _entity_canon(rule.destination)}


def _resolved(rule: Rule, resolver: SetResolver) -> dict[str, Any]:
    """The set names the rule's selectors resolve to, per family."""
    out: dict[str, Any] = {}
    for side, e in (("source", rule.source), ("destination", rule.destination)):
        for key in ("selector", "not_selector"):
            text = getattr(e, key)
            if text is not None:
                out[f"{side}.{key}"] = {str(f): resolver.resolve(text, f).set_name
                                        for f in FAMILIES}
    return out


# ---------------------------------------------------------------- ports

def _slots(p: PortRange) -> int:
    return 1 if p.first == p.last else 2


def split_ports(ports: Sequence[PortRange]) -> list[tuple[PortRange, ...]]:
    """Chunks of at most MULTIPORT_SLOTS slots, in order; [()] when there are none."""
    chunks: list[tuple[PortRange, ...]] = []
    cur: list[PortRange] = []
    used = 0
    for p in ports:
        if used + _slots(p) > MULTIPORT_SLOTS:
            chunks.append(tuple(cur))
            cur, used = [], 0
        cur.append(p)
        used += _slots(p)
    if cur or not chunks:
        chunks.append(tuple(cur))
    return chunks


def subtract_ports(ports: Sequence[PortRange],
                   minus: Sequence[PortRange]) -> tuple[PortRange, ...]:
    """`ports` (all ports when empty) without `minus`, as sorted disjoint ranges."""
    cur = sorted((p.first, p.last) for p in (ports or (PortRange(0, 65535),)))
    for m in minus:
        nxt: list[tuple[int, int]] = []
        for a, b in cur:
            if m.last < a or m.first > b:
                nxt.append((a, b))
                continue
            if a < m.first:
                nxt.append((a, m.first - 1))
            if m.last < b:
                nxt.append((m.last + 1, b))
        cur = nxt
    merged: list[tuple[int, int]] = []
    for a, b in sorted(cur):
        if merged and a <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return tuple(PortRange(a, b) for a, b in merged)


def effective_ports(e: EntityMatch) -> tuple[tuple[PortRange, ...], tuple[PortRange, ...]]:
    """(ports, not_ports) to render.  A negated list needs one multiport match, so one
    longer than MULTIPORT_SLOTS becomes its complement (positive ranges, which split
    into several rules)."""
    if sum(_slots(p) for p in e.not_ports) <= MULTIPORT_SLOTS:
        return e.ports, e.not_ports
    return subtract_ports(e.ports, e.not_ports), ()


# ---------------------------------------------------------------- per family

class _Unrenderable(Exception):
    """The rule cannot match in this family."""


def _side(e: EntityMatch, rule_id: str, family: Family, resolver: SetResolver, src: bool,
          specs: list[IpSetSpec]) -> dict[str, Any]:
    pre = "src" if src else "dst"
    roles: tuple[NetsRole, NetsRole] = ("sn", "sx") if src else ("dn", "dx")
    out: dict[str, Any] = {}
    sets: list[str] = []
    not_sets: list[str] = []
    what = "source" if src else "destination"

    def nets_set(nets: tuple[str, ...], role: NetsRole, label: str) -> str:
        members = set_members(nets)
        spec = IpSetSpec(name=rule_nets_set(rule_id, role, family), family=family,
                         kind="hash:net", inline=members, expected_count=len(members),
                         origin=f"rule {rule_id} {what} {label}")
        specs.append(spec)
        return spec.name

    if e.nets:
        nets = tuple(n for n in e.nets if family_of(n) == family)
        if not nets:
            raise _Unrenderable
        if len(nets) == 1:
            out[f"{pre}_net"] = nets[0]
        else:
            sets.append(nets_set(nets, roles[0], "nets"))
    not_nets = tuple(n for n in e.not_nets if family_of(n) == family)
    if len(not_nets) == 1 and f"{pre}_net" not in out:
        out[f"not_{pre}_net"] = not_nets[0]
    elif not_nets:
        not_sets.append(nets_set(not_nets, roles[1], "not_nets"))
    if e.selector is not None:
        res = resolver.resolve(e.selector, family)
        if res.set_name is None:
            raise _Unrenderable
        specs.extend(res.specs)
        sets.append(res.set_name)
    if e.not_selector is not None:
        res = resolver.resolve(e.not_selector, family)
        if res.set_name is not None:
            specs.extend(res.specs)
            not_sets.append(res.set_name)
    out[f"{pre}_sets"] = tuple(sets)
    out[f"not_{pre}_sets"] = tuple(not_sets)
    pos, neg = effective_ports(e)
    if e.not_ports and not pos and not neg:
        raise _Unrenderable  # every port excluded
    out[f"not_{pre}_ports"] = neg
    return out


def _protocol(rule: Rule, family: Family) -> dict[str, Any]:
    proto, not_proto = rule.protocol, rule.not_protocol
    if rule.ip_version is not None and rule.ip_version != family:
        raise _Unrenderable
    if (proto in V4_ONLY_PROTOCOLS and family == 6) or (proto in V6_ONLY_PROTOCOLS
                                                        and family == 4):
        raise _Unrenderable
    if proto is None and (rule.icmp is not None or rule.not_icmp is not None):
        proto = "icmp" if family == 4 else "icmpv6"
    if proto is not None and not_proto is not None:
        if proto == not_proto:
            raise _Unrenderable
        not_proto = None  # implied by the positive protocol
    out: dict[str, Any] = {"protocol": proto, "not_protocol": not_proto}
    if rule.icmp is not None:
        out["icmp_type"], out["icmp_code"] = rule.icmp.type, rule.icmp.code
    if rule.not_icmp is not None:
        out["not_icmp_type"], out["not_icmp_code"] = rule.not_icmp.type, rule.not_icmp.code
    return out


def render_family(rule: Rule, rule_id: str, family: Family,
                  resolver: SetResolver) -> tuple[tuple[Match, ...], tuple[IpSetSpec, ...]]:
    """The matches of `rule` in `family` (several when ports split); () if it cannot
    match there.  Also the ipsets they reference."""
    specs: list[IpSetSpec] = []
    try:
        fields = _protocol(rule, family)
        fields.update(_side(rule.source, rule_id, family, resolver, True, specs))
        fields.update(_side(rule.destination, rule_id, family, resolver, False, specs))
    except _Unrenderable:
        return (), ()
    base = Match(**fields)
    matches = tuple(replace(base, src_ports=sp, dst_ports=dp)
                    for sp in split_ports(effective_ports(rule.source)[0])
                    for dp in split_ports(effective_ports(rule.destination)[0]))
    unique: dict[str, IpSetSpec] = {}
    for s in specs:
        unique.setdefault(s.name, s)
    return matches, tuple(unique.values())


def _note(rule: Rule, resolver: SetResolver) -> str:
    for what, e in (("source", rule.source), ("destination", rule.destination)):
        if e.selector is not None and resolver.select(e.selector).is_empty():
            return f"{what} selector matches nothing"
        if e.not_ports and effective_ports(e) == ((), ()):
            return f"{what} not_ports exclude every port"
    if rule.protocol is not None and rule.protocol == rule.not_protocol:
        return "protocol equals not_protocol"
    return "can match in no address family"


def render_policy_rules(policy: Policy, direction: Direction,
                        resolver: SetResolver) -> tuple[RenderedRule, ...]:
    """All rules of one policy direction, with ids, rendered for both families."""
    rules = policy.ingress if direction == "ingress" else policy.egress
    keys = [(canonical_content(r), _resolved(r, resolver)) for r in rules]
    dups = assign_dup_indexes(keys)
    out: list[RenderedRule] = []
    for index, (rule, (content, resolved), dup) in enumerate(zip(rules, keys, dups)):
        rid = policy_rule_id(policy.name, policy.tier, direction, content, resolved, dup)
        matches: dict[int, tuple[Match, ...]] = {}
        sets: dict[int, tuple[IpSetSpec, ...]] = {}
        for family in FAMILIES:
            m, s = render_family(rule, rid, family, resolver)
            if m:
                matches[family], sets[family] = m, s
        note = None if matches else _note(rule, resolver)
        out.append(RenderedRule(rid, policy, direction, index, rule, matches, sets, note))
    return tuple(out)
