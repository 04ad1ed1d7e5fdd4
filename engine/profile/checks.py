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
        ingress, egress = _allows(mine, "ingress"), _allows(mine, "egress")
        for have, lack, other in ((ingress, egress, "egress"), (egress, ingress, "ingress")):
            if have and not lack:
                policy, rule = have[0]
                line = (f"{rule.loc or policy.loc}: warning: untracked policy '{policy.name}' "
                        f"allows {'ingress' if other == 'egress' else 'egress'} on host "
                        f"endpoint '{hep.name}' but no untracked policy allows {other} there: "
                        "untracked flows are stateless, so the other direction falls through "
                        f"to tracked policy (add an untracked {other} allow for it)")
                if line not in warnings:
                    warnings.append(line)
    return warnings
