"""plan(profile) -> DesiredState: pure, deterministic, no root.

Layout per family (4 and 6), rendering only what is needed (an empty profile gives no
tables).  Each hook is ONE jump at the top of a kernel chain.

raw (untracked policies)
    PREROUTING -> nw-PREROUTING: `-i IF -g nw-rfi-IF` per named host endpoint with
      untracked ingress rules.  nw-rfi-IF: failsafe inbound ACCEPT, return traffic of
      failsafe outbound ACCEPT, the untracked ingress rules in policy order (allow ->
      nw-untracked-allow, deny DROP, log LOG, pass RETURN); falls through, so that
      tracked policy decides what untracked policy did not.  Failsafe rules no
      untracked rule can meet go behind them (engine.plan.disjoint.failsafe_last).
    OUTPUT -> nw-OUTPUT: `-o IF -g nw-rto-IF`, the mirror for egress.
    nw-untracked-allow: NOTRACK, ACCEPT (no mark: filter knows the packet by its
      conntrack state UNTRACKED, which saves a MARK rule on every packet).
mangle (pre-DNAT policies, ingress only)
    PREROUTING -> nw-PREROUTING: `-i IF -g nw-mfi-IF` (`! -i lo` for "*");
    nw-mfi-IF: ct RELATED,ESTABLISHED ACCEPT, failsafe inbound, the pre-DNAT rules
    (allow -> nw-prednat-allow = MARK + ACCEPT); falls through to normal policy.
filter (normal policies, default deny)
    INPUT -> nw-INPUT: `--ctstate UNTRACKED` ACCEPT (when raw allows something in the
      family), mark ACCEPT (when mangle does), `-i IF -g nw-fi-IF` per named endpoint, then
      `! -i lo -g nw-fi-:all` for an interface = "*" endpoint (named ones win).
    nw-fi-IF: ct RELATED,ESTABLISHED ACCEPT, ct INVALID DROP, failsafe inbound ACCEPT,
      (v6) ICMPv6 130-136 ACCEPT, the normal ingress rules (allow ACCEPT, deny DROP,
      log LOG, pass DROP = stop evaluating policies), default deny DROP.
    OUTPUT -> nw-OUTPUT / nw-fo-IF: the mirror for egress (`-o`, `! -o lo`).
    FORWARD -> nw-FORWARD (only when an apply_on_forward normal policy selects an
      endpoint): UNTRACKED / mark ACCEPT as in INPUT, ct RELATED,ESTABLISHED ACCEPT, `-i IF -j nw-ffi-IF` and
      `-o IF -j nw-ffo-IF` for each endpoint and direction that such a policy covers.
      nw-ffi-IF: the forward rules (allow RETURN, deny DROP), then DROP.

Forwarding choice: allowed forwarded traffic RETURNs into the rest of the kernel's
FORWARD chain instead of being accepted: nodewall denies what its policies deny but
never force-accepts forwarding (Docker, kube-proxy or the admin's own FORWARD rules and
policy still apply).  The exception is traffic an untracked or pre-DNAT policy already
allowed (conntrack state UNTRACKED, or the mark), which is accepted as Calico does.  A direction no apply_on_forward
policy covers stays open for forwarding (no chain); nw-ffi-:all starts with RETURNs for
the named endpoints' interfaces, which decide for themselves.

Dispatch jumps to per endpoint chains use GOTO (in raw and mangle too): a chain that
falls through returns to the kernel chain, so the "*" endpoint never sees traffic of
a named one.
"""
from __future__ import annotations

from dataclasses import replace

from nodewall.engine.plan.chains import LayoutBuilder, endpoints, policy_selects
from nodewall.engine.plan.desired import DesiredState, IpSetSpec, PacketFilter, TableState
from nodewall.engine.plan.rules import RenderedRule, render_policy_rules
from nodewall.engine.plan.sets import FAMILIES, SetResolver
from nodewall.engine.plan.xdp import plan_xdp
from nodewall.engine.profile.model import Profile, Settings


def _render_all(profile: Profile, resolver: SetResolver
                ) -> dict[tuple[str, str], tuple[RenderedRule, ...]]:
    out: dict[tuple[str, str], tuple[RenderedRule, ...]] = {}
    for p in profile.policies:
        for direction in ("ingress", "egress"):
            out[(p.name, direction)] = render_policy_rules(p, direction, resolver)  # type: ignore[arg-type]
    return out


def _warnings(profile: Profile, rendered: dict[tuple[str, str], tuple[RenderedRule, ...]],
              ) -> list[str]:
    out: list[str] = []
    eps = profile.host_endpoints
    for p in profile.policies:
        selected = [e for e in eps if policy_selects(p, e)]
        if p.tier != "normal" and any(e.interface == "*" for e in selected):
            out.append(f"{p.loc}: warning: {p.tier} policy {p.name!r} does not apply to the "
                       "interface = \"*\" host endpoint")
        if not selected:
            continue
        for direction in p.types:
            for rr in rendered[(p.name, direction)]:
                if not rr.matches:
                    where = rr.rule.loc or p.loc
                    out.append(f"{where}: warning: {p.name} {direction} rule {rr.index} never "
                               f"matches: {rr.note}")
    return out


def _order_sets(sets: dict[str, IpSetSpec]) -> tuple[IpSetSpec, ...]:
    """hash:net sets before the list:sets that hold them, each by name."""
    return tuple(sorted(sets.values(), key=lambda s: (s.kind == "list:set", s.family, s.name)))


def packet_filter(settings: Settings, auto: PacketFilter = "iptables") -> PacketFilter:
    """The packet filter `settings` ask for: backend "iptables"/"nftables" is one;
    under "auto"/"xdp", [settings] packet_filter, where "auto" is `auto` (the caller
    probes the host: engine.safety.validation.auto_packet_filter)."""
    if settings.backend in ("iptables", "nftables"):
        return settings.backend  # type: ignore[return-value]
    if settings.packet_filter in ("iptables", "nftables"):
        return settings.packet_filter  # type: ignore[return-value]
    return auto


def plan(profile: Profile, *, auto_packet_filter: PacketFilter = "iptables") -> DesiredState:
    """The kernel state `profile` asks for (see the module docstring for the layout).
    `auto_packet_filter`: what packet_filter = "auto" means on the target host."""
    profile = _sorted(profile)
    resolver = SetResolver(profile)
    rendered = _render_all(profile, resolver)
    named, star, warnings = endpoints(profile)
    all_eps = named + ([star] if star is not None else [])
    builder = LayoutBuilder(profile, rendered)
    for p in profile.policies:
        idle = not any(policy_selects(p, e) for e in all_eps)
        for direction in ("ingress", "egress"):
            for rr in rendered[(p.name, direction)]:
                meta = rr.meta()
                if idle:
                    meta = replace(meta, summary=f"{meta.summary} (policy selects no host "
                                                 "endpoint)")
                builder.metas[rr.rule_id] = meta
    tables: list[TableState] = []
    for family in FAMILIES:
        for table in (builder.raw(family, named), builder.mangle(family, all_eps),
                      builder.filter(family, all_eps, [e.interface for e in named])):
            if table is not None:
                tables.append(table)
    candidates = [(ep.interface, builder.policy_rules(ep, "untracked", "ingress"))
                  for ep in named]
    xdp = plan_xdp(profile, resolver, candidates)
    return DesiredState(
        tables=tuple(tables), ipsets=_order_sets(builder.sets), xdp=xdp,
        rules=dict(sorted(builder.metas.items())),
        interfaces=tuple(e.interface for e in named),
        warnings=(*profile.warnings, *warnings, *_warnings(profile, rendered)),
        packet_filter=packet_filter(profile.settings, auto_packet_filter))


def _sorted(profile: Profile) -> Profile:
    """Policies in evaluation order (order, then name), whatever the caller passed."""
    return replace(profile, policies=tuple(sorted(profile.policies,
                                                  key=lambda p: (p.order, p.name))))
