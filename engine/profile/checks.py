"""Checks across objects (DESIGN §3): untracked policy on interface "*", asymmetric
untracked allows (a warning), network sets over settings.max_set_entries."""
from __future__ import annotations

from nodewall.engine.errors import InputError
from nodewall.engine.profile.fields import Ctx
from nodewall.engine.profile.model import HostEndpoint, NetworkSet, Policy, Rule, Settings
from nodewall.engine.profile.objects import NetworkSetDraft
from nodewall.engine.profile.selector import parse_selector


def check_network_set_sizes(sets: list[NetworkSet], drafts: list[NetworkSetDraft],
                            settings: Settings, errors: list[InputError]) -> None:
    by_name = {d.name: d for d in drafts}
    limit = settings.max_set_entries
    for s in sets:
        draft = by_name[s.name]
        for family in (4, 6):
            inline = sum(2 if n.endswith("/0") else 1 for n in s.nets
                         if (":" in n) == (family == 6))
            total = inline + (0 if s.nets_file is None else
                              (s.nets_file.count_v6 if family == 6 else s.nets_file.count_v4))
            if total > limit:
                key = "nets_file" if s.nets_file is not None else "nets"
                errors.append(InputError(
                    draft.ctx.value_loc(draft.path + (key,)),
                    f"network set '{s.name}' has {total} IPv{family} members, more than "
                    f"max_set_entries = {limit}",
                    "raise [settings] max_set_entries or split the set"))


def _allows(policies: list[Policy], direction: str) -> list[tuple[Policy, Rule]]:
    return [(p, r) for p in policies if direction in p.types
            for r in (p.ingress if direction == "ingress" else p.egress) if r.action == "allow"]


def check_untracked(heps: list[HostEndpoint], policies: list[Policy],
                    paths: dict[str, tuple[Ctx, tuple[str | int, ...]]],
                    errors: list[InputError]) -> list[str]:
    """Errors for untracked policy selecting interface "*"; warnings (returned as
    "file:line:col: warning: ..." lines) for one-sided untracked allows."""
    untracked = [p for p in policies if p.do_not_track]
    selects = {p.name: [h for h in heps if parse_selector(p.selector).matches(h.labels)]
               for p in untracked}
    for p in untracked:
        for hep in selects[p.name]:
            if hep.interface == "*":
                ctx, path = paths[p.name]
                errors.append(InputError(
                    ctx.value_loc(path + ("selector",)),
                    f"untracked policy '{p.name}' selects host endpoint '{hep.name}' "
                    "whose interface is \"*\"; untracked policy needs named interfaces",
                    "narrow the selector or give the host endpoint a named interface"))
                break
    warnings: list[str] = []
    for hep in heps:
        if hep.interface == "*":
            continue
        mine = [p for p in untracked if hep in selects[p.name]]
        for line in _one_sided(hep, mine):
            if line not in warnings:
                warnings.append(line)
    return warnings


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(b, out[-1][1]))
        else:
            out.append((a, b))
    return out


def _replies_allowed(rule: Rule, mirrors: list[tuple[Policy, Rule]]) -> bool:
    """Whether some allow of the other direction takes the replies of `rule`'s flows:
    the same protocol (or any) and, as SOURCE ports, the ports `rule` allows as
    destination (no source ports: any)."""
    ranges: list[tuple[int, int]] = []
    for _p, m in mirrors:
        if m.protocol is not None and m.protocol != rule.protocol:
            continue
        if not m.source.ports:
            return True
        ranges += [(r.first, r.last) for r in m.source.ports]
    wanted = rule.destination.ports
    if not wanted or not ranges:
        return False
    merged = _merged(ranges)
    return all(any(a <= w.first and w.last <= b for a, b in merged) for w in wanted)


def _flow(rule: Rule) -> str:
    proto = rule.protocol or "any protocol"
    ports = ",".join(str(p) for p in rule.destination.ports)
    return f"{proto} to port {ports}" if ports else proto


def _one_sided(hep: HostEndpoint, mine: list[Policy]) -> list[str]:
    """Warnings for untracked allows whose replies no untracked allow of the other
    direction takes (by protocol and ports): those replies fall through to tracked
    policy, which has no conntrack entry for them."""
    ingress, egress = _allows(mine, "ingress"), _allows(mine, "egress")
    out: list[str] = []
    for have, lack, this, other in ((ingress, egress, "ingress", "egress"),
                                    (egress, ingress, "egress", "ingress")):
        if have and not lack:
            policy, rule = have[0]
            out.append(f"{rule.loc or policy.loc}: warning: untracked policy '{policy.name}' "
                       f"allows {this} on host endpoint '{hep.name}' but no untracked policy "
                       f"allows {other} there: untracked flows are stateless, so the other "
                       "direction falls through to tracked policy (add an untracked "
                       f"{other} allow for it)")
            continue
        for policy, rule in have:
            if not _replies_allowed(rule, lack):
                out.append(
                    f"{rule.loc or policy.loc}: warning: untracked policy '{policy.name}' "
                    f"allows {this} {_flow(rule)} on host endpoint '{hep.name}' but no "
                    f"untracked {other} allow takes its replies ({rule.protocol or 'any'} "
                    f"from port {','.join(str(p) for p in rule.destination.ports) or 'any'}): "
                    "untracked flows are stateless, so they fall through to tracked policy "
                    f"(widen the untracked {other} allow)")
    return out
