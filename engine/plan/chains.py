"""The iptables layout: tables, chains and hooks per family (see engine.plan.planner).

Built from rendered policy rules (engine.plan.rules) and synthetic rules
(failsafe, conntrack, NDP, mark accept, default deny, dispatch jumps) whose ids come
from their role (engine.plan.rule_ids.synthetic_id) and carry the table where the same
rule exists in several tables, so that summed counters never count a packet twice.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from nodewall.engine.plan.describe import failsafe_summary
from nodewall.engine.plan.desired import (
    MARK_ALLOW,
    Chain,
    ChainRule,
    Family,
    Hook,
    IpSetSpec,
    Match,
    RuleMeta,
    TableName,
    TableState,
    Target,
)
from nodewall.engine.plan.disjoint import failsafe_last
from nodewall.engine.plan.naming import (
    ALL_IFACES,
    PREDNAT_ALLOW,
    UNTRACKED_ALLOW,
    ChainKind,
    endpoint_chain,
    top_chain,
)
from nodewall.engine.plan.rule_ids import synthetic_id
from nodewall.engine.plan.rules import RenderedRule
from nodewall.engine.plan.sets import family_of, parse_cached
from nodewall.engine.profile.model import (
    Direction,
    Failsafe,
    HostEndpoint,
    Policy,
    PortRange,
    Profile,
)

LOG_PREFIX_MAX = 29
NDP_TYPES = (130, 131, 132, 133, 134, 135, 136)  # MLD query/report/done, RS, RA, NS, NA
CT_EST = ("RELATED", "ESTABLISHED")
MARK = (MARK_ALLOW, MARK_ALLOW)

ACCEPT = Target("ACCEPT")
DROP = Target("DROP")
RETURN = Target("RETURN")
UNTRACKED_POLICY = "(untracked)"

# per table: what an action of a policy rule becomes
_ACTIONS: dict[str, dict[str, Target]] = {
    "raw": {"allow": Target("JUMP", chain=UNTRACKED_ALLOW), "deny": DROP, "pass": RETURN},
    "mangle": {"allow": Target("JUMP", chain=PREDNAT_ALLOW), "deny": DROP, "pass": RETURN},
    # pass = stop evaluating policies: nodewall has no profiles, so the default deny
    "filter": {"allow": ACCEPT, "deny": DROP, "pass": DROP},
    # forwarded traffic that is allowed goes back to the kernel's FORWARD chain
    "forward": {"allow": RETURN, "deny": DROP, "pass": DROP},
}


def iface_match(iface: str, inbound: bool) -> Match:
    value = "!lo" if iface == ALL_IFACES else iface
    return Match(in_iface=value) if inbound else Match(out_iface=value)


def policy_selects(policy: Policy, ep: HostEndpoint) -> bool:
    return parse_cached(policy.selector).matches(ep.labels)


def endpoints(profile: Profile) -> tuple[list[HostEndpoint], HostEndpoint | None, list[str]]:
    """(named endpoints sorted by interface, the "*" endpoint, warnings).  One endpoint
    per interface: the first by name wins, as in Calico."""
    chosen: dict[str, HostEndpoint] = {}
    warnings: list[str] = []
    for ep in sorted(profile.host_endpoints, key=lambda e: e.name):
        if ep.interface in chosen:
            warnings.append(f"{ep.loc}: warning: host endpoint {ep.name!r} ignored: interface "
                            f"{ep.interface!r} already belongs to {chosen[ep.interface].name!r}")
            continue
        chosen[ep.interface] = ep
    star = chosen.pop(ALL_IFACES, None)
    return [chosen[k] for k in sorted(chosen)], star, warnings


@dataclass
class LayoutBuilder:
    profile: Profile
    rendered: Mapping[tuple[str, str], tuple[RenderedRule, ...]]
    metas: dict[str, RuleMeta] = field(default_factory=dict)
    sets: dict[str, IpSetSpec] = field(default_factory=dict)
    # families whose raw / mangle table allows something (filled by raw() and mangle(),
    # which the planner calls before filter() for each family)
    untracked_families: set[int] = field(default_factory=set)
    prednat_families: set[int] = field(default_factory=set)

    # ------------------------------------------------------------ helpers

    def syn(self, role: tuple[str, ...], policy: str, direction: str, action: str,
            tier: str, summary: str) -> str:
        rid = synthetic_id(*role)
        self.metas.setdefault(rid, RuleMeta(rid, "", policy, direction, -1, action,  # type: ignore[arg-type]
                                            tier, None, summary))  # type: ignore[arg-type]
        return rid

    def policy_rules(self, ep: HostEndpoint, tier: str, direction: Direction,
                     forward: bool = False) -> list[RenderedRule]:
        out: list[RenderedRule] = []
        for p in self.profile.policies:
            if (p.tier == tier and direction in p.types and (p.apply_on_forward or not forward)
                    and policy_selects(p, ep)):
                out.extend(self.rendered.get((p.name, direction), ()))
        return out

    def place(self, rules: Iterable[RenderedRule], family: Family, table: str) -> list[ChainRule]:
        """Policy rules as iptables rules of `family` with the targets of `table`."""
        out: list[ChainRule] = []
        for rr in rules:
            matches = rr.in_family(family)
            if not matches:
                continue
            for spec in rr.sets.get(family, ()):
                self.sets.setdefault(spec.name, spec)
            if rr.rule.action == "log":
                target = Target("LOG", log_prefix=f"nw:{rr.rule_id} "[:LOG_PREFIX_MAX])
            else:
                target = _ACTIONS[table][rr.rule.action]
            out.extend(ChainRule(rr.rule_id, m, target) for m in matches)
        return out

    def failsafe(self, entries: Iterable[Failsafe], family: Family, inbound: bool,
                 reverse: bool, table: str) -> list[ChainRule]:
        """ACCEPT rules for failsafe entries.  inbound: the entry's direction;
        reverse: match the return traffic of the entry instead."""
        out: list[ChainRule] = []
        direction = "ingress" if inbound else "egress"
        seen_dir = "egress" if inbound == reverse else "ingress"
        for fs in entries:
            if fs.net is not None and family_of(fs.net) != family:
                continue
            port = (PortRange(fs.port, fs.port),)
            # the remote peer is the source of inbound traffic, the destination of outbound
            remote_is_src = (seen_dir == "ingress")
            m = Match(protocol=fs.protocol,
                      src_ports=port if reverse else (),
                      dst_ports=() if reverse else port,
                      src_net=fs.net if remote_is_src else None,
                      dst_net=None if remote_is_src else fs.net)
            role = ("failsafe-return" if reverse else "failsafe", direction, str(fs), table)
            rid = self.syn(role, "(failsafe)", seen_dir, "allow", "failsafe",
                           f"{failsafe_summary(fs, direction, reverse)} ({table})")
            out.append(ChainRule(rid, m, ACCEPT))
        return out

    def ct(self, direction: str, table: str, invalid: bool = False) -> ChainRule:
        meta_dir = "forward" if direction.startswith("forward") else direction
        if invalid:
            rid = self.syn(("conntrack", "invalid", direction, table), "(conntrack)", meta_dir,
                           "deny", "default", f"drop conntrack INVALID {direction} ({table})")
            return ChainRule(rid, Match(ct_states=("INVALID",)), DROP)
        rid = self.syn(("conntrack", "established", direction, table), "(conntrack)", meta_dir,
                       "allow", "default",
                       f"accept conntrack RELATED,ESTABLISHED {direction} ({table})")
        return ChainRule(rid, Match(ct_states=CT_EST), ACCEPT)

    def mark_accept(self, direction: str) -> ChainRule:
        rid = self.syn(("mark", direction), "(mark)", direction, "allow", "default",
                       f"accept {direction} already allowed by pre-DNAT policy")
        return ChainRule(rid, Match(mark=MARK), ACCEPT)

    def untracked_accept(self, direction: str) -> ChainRule:
        """Accept what raw left untracked (NOTRACK by untracked allow): conntrack's
        UNTRACKED state replaces a per-packet mark."""
        rid = self.syn(("untracked", direction), UNTRACKED_POLICY, direction, "allow",
                       "default", f"accept {direction} already allowed by untracked policy "
                                  "(conntrack UNTRACKED)")
        return ChainRule(rid, Match(ct_states=("UNTRACKED",)), ACCEPT)

    def already_allowed(self, family: Family, direction: str) -> list[ChainRule]:
        """The top of a filter chain: accept what untracked (raw) or pre-DNAT (mangle)
        policy of `family` already allowed; nothing when neither allows anything."""
        out = []
        if family in self.untracked_families:
            out.append(self.untracked_accept(direction))
        if family in self.prednat_families:
            out.append(self.mark_accept(direction))
        return out

    def ndp(self, direction: str) -> list[ChainRule]:
        rid = self.syn(("ndp", direction), "(ndp)", direction, "allow", "default",
                       f"accept ICMPv6 {NDP_TYPES[0]}-{NDP_TYPES[-1]} {direction} "
                       "(MLD, router and neighbour discovery)")
        return [ChainRule(rid, Match(protocol="icmpv6", icmp_type=t), ACCEPT) for t in NDP_TYPES]

    def default_deny(self, direction: str, forward: bool = False) -> ChainRule:
        role = ("default-deny", "forward", direction) if forward else ("default-deny", direction)
        what = f"forwarded {direction}" if forward else direction
        rid = self.syn(role, "(default-deny)", "forward" if forward else direction, "deny",
                       "default", f"default deny {what}")
        return ChainRule(rid, Match(), DROP)

    def dispatch(self, kind: ChainKind, ep: HostEndpoint, inbound: bool, goto: bool,
                 direction: str) -> ChainRule:
        chain = endpoint_chain(kind, ep.interface)
        rid = self.syn(("dispatch", kind, ep.interface), "(endpoint)", direction, "jump",
                       "default", f"{direction} via {ep.interface} -> {chain} "
                                  f"(host endpoint {ep.name})")
        return ChainRule(rid, iface_match(ep.interface, inbound),
                    Target("GOTO" if goto else "JUMP", chain=chain))

    # ------------------------------------------------------------ tables

    def raw(self, family: Family, named: list[HostEndpoint]) -> TableState | None:
        s = self.profile.settings
        top: dict[str, list[ChainRule]] = {"PREROUTING": [], "OUTPUT": []}
        chains: list[Chain] = []
        uses_allow = False
        for kernel, kind, direction, inbound in (("PREROUTING", "rfi", "ingress", True),
                                                 ("OUTPUT", "rto", "egress", False)):
            for ep in named:
                prules = self.policy_rules(ep, "untracked", direction)
                body = self.place(prules, family, "raw")
                if not body:
                    continue
                uses_allow |= any(r.target.chain == UNTRACKED_ALLOW for r in body)
                own = s.failsafe_inbound if inbound else s.failsafe_outbound
                other = s.failsafe_outbound if inbound else s.failsafe_inbound
                # failsafe first (Calico's order); those no untracked rule can meet go
                # last, off the path of untracked flows (same verdicts and counters)
                rules = failsafe_last(self.failsafe(own, family, inbound, False, "raw")
                                      + self.failsafe(other, family, not inbound, True, "raw"),
                                      body)
                chains.append(Chain(endpoint_chain(kind, ep.interface), tuple(rules)))  # type: ignore[arg-type]
                top[kernel].append(self.dispatch(kind, ep, inbound, True, direction))  # type: ignore[arg-type]
        if uses_allow:
            self.untracked_families.add(family)
            chains.append(Chain(UNTRACKED_ALLOW, self._allow_chain("untracked-allow", True)))
        return _table(family, "raw", top, chains)

    def _allow_chain(self, name: str, notrack: bool) -> tuple[ChainRule, ...]:
        tier = "untracked" if notrack else "prednat"
        what = "untracked" if notrack else "pre-DNAT"
        # untracked: NOTRACK + ACCEPT; filter accepts by conntrack state UNTRACKED, so
        # no mark is set per packet.  pre-DNAT: mark + ACCEPT (the packet stays tracked).
        steps: list[tuple[str, Target]] = ([("notrack", Target("NOTRACK"))] if notrack
                                           else [("mark", Target("MARK", mark=MARK))])
        steps.append(("accept", ACCEPT))
        out = []
        for step, target in steps:
            rid = self.syn((name, step), f"({name})", "ingress", "allow", tier,
                           f"{what} allow: {step} (both directions)" if notrack
                           else f"{what} allow: {step}")
            out.append(ChainRule(rid, Match(), target))
        return tuple(out)

    def mangle(self, family: Family, eps: list[HostEndpoint]) -> TableState | None:
        top: dict[str, list[ChainRule]] = {"PREROUTING": []}
        chains: list[Chain] = []
        uses_allow = False
        for ep in eps:
            body = self.place(self.policy_rules(ep, "prednat", "ingress"), family, "mangle")
            if not body:
                continue
            uses_allow |= any(r.target.chain == PREDNAT_ALLOW for r in body)
            rules = [self.ct("ingress", "mangle"),
                     *self.failsafe(self.profile.settings.failsafe_inbound, family, True, False,
                                    "mangle"), *body]
            chains.append(Chain(endpoint_chain("mfi", ep.interface), tuple(rules)))
            top["PREROUTING"].append(self.dispatch("mfi", ep, True, True, "ingress"))
        if uses_allow:
            self.prednat_families.add(family)
            chains.append(Chain(PREDNAT_ALLOW, self._allow_chain("prednat-allow", False)))
        return _table(family, "mangle", top, chains)

    def filter(self, family: Family, eps: list[HostEndpoint],
               named_ifaces: list[str]) -> TableState | None:
        if not eps:
            return None
        s = self.profile.settings
        top: dict[str, list[ChainRule]] = {"INPUT": self.already_allowed(family, "ingress"),
                                           "OUTPUT": self.already_allowed(family, "egress"),
                                           "FORWARD": []}
        chains: list[Chain] = []
        for kernel, kind, direction, inbound in (("INPUT", "fi", "ingress", True),
                                                 ("OUTPUT", "fo", "egress", False)):
            for ep in eps:
                # ICMPv6 neighbour discovery carries no conntrack entry, so the
                # INVALID state matches it: NDP must be accepted before that drop.
                rules = [self.ct(direction, "filter"),
                         *(self.ndp(direction) if family == 6 else ()),
                         self.ct(direction, "filter", invalid=True),
                         *self.failsafe(s.failsafe_inbound if inbound else s.failsafe_outbound,
                                        family, inbound, False, "filter")]
                rules += self.place(self.policy_rules(ep, "normal", direction), family, "filter")
                rules.append(self.default_deny(direction))
                chains.append(Chain(endpoint_chain(kind, ep.interface), tuple(rules)))  # type: ignore[arg-type]
                top[kernel].append(self.dispatch(kind, ep, inbound, True, direction))  # type: ignore[arg-type]
        fwd: list[ChainRule] = []
        for kind, direction, inbound in (("ffi", "ingress", True), ("ffo", "egress", False)):
            for ep in eps:
                if not any(p.tier == "normal" and p.apply_on_forward and direction in p.types
                           and policy_selects(p, ep) for p in self.profile.policies):
                    continue
                rules = []
                if ep.interface == ALL_IFACES:  # named endpoints take precedence
                    rules = [self._skip_named(kind, i, inbound) for i in named_ifaces]  # type: ignore[arg-type]
                rules += self.place(self.policy_rules(ep, "normal", direction, forward=True),
                                    family, "forward")
                rules.append(self.default_deny(direction, forward=True))
                chains.append(Chain(endpoint_chain(kind, ep.interface), tuple(rules)))  # type: ignore[arg-type]
                fwd.append(self.dispatch(kind, ep, inbound, False, "forward"))  # type: ignore[arg-type]
        if fwd:
            top["FORWARD"] = [*self.already_allowed(family, "forward"),
                              self.ct("forward", "filter"), *fwd]
        return _table(family, "filter", top, chains)

    def _skip_named(self, kind: ChainKind, iface: str, inbound: bool) -> ChainRule:
        rid = self.syn(("forward-skip", kind, iface), "(endpoint)", "forward", "return",
                       "default", f"forwarded via {iface}: its own host endpoint decides")
        return ChainRule(rid, iface_match(iface, inbound), RETURN)


def _table(family: Family, table: TableName, top: dict[str, list[ChainRule]],
           chains: list[Chain]) -> TableState | None:
    hooks = tuple(Hook(k, top_chain(k)) for k, rules in top.items() if rules)
    if not hooks:
        return None
    tops = tuple(Chain(top_chain(k), tuple(rules)) for k, rules in top.items() if rules)
    return TableState(family, table, tops + tuple(chains), hooks)
