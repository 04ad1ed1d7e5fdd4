"""PlanPreview: what an apply would change, before it is done (`nodewall diff`, the
TUI's apply screen, `apply --check`)."""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

STAT_FIELDS = ("rules_added", "rules_removed", "chains_added", "chains_removed",
               "set_members_added", "set_members_removed", "sets_added", "sets_removed")


OPS = {"+": "add", "-": "remove", "~": "change"}
_IPTABLES = re.compile(r"^[+~-] (?P<table>raw|mangle|filter) v(?P<family>[46]) "
                       r"(?:chain )?(?P<chain>\S+)")
_OBJECT = re.compile(r"^[+~-] (?P<table>ipset|nft set|nft chain|nft table|xdp)\s+(?P<chain>[^\s:]+)")
_RULE_ID = re.compile(r"\(?nw:(?P<id>[^)…\s]+)(?P<cut>…)?")


@dataclass(frozen=True)
class PlanEntry:
    """One change of a plan, for machines: op (add/remove/change), table (raw,
    mangle, filter, ipset, nft set, nft chain, nft table, xdp), chain (or set), the
    rule id and its policy when the change is one rule's, and the human text."""

    op: str
    table: str | None
    chain: str | None
    rule_id: str | None
    policy: str | None
    text: str
    family: int | None = None
    summary: str | None = None  # the rule's one-line description (a removed one's too)

    def to_json(self) -> dict[str, Any]:
        return {"op": self.op, "table": self.table, "chain": self.chain,
                "family": self.family, "rule_id": self.rule_id, "policy": self.policy,
                "summary": self.summary, "text": self.text}


RuleNames = Mapping[str, tuple[str, str]]  # rule id -> (policy, summary)


def _full_id(short: str, cut: bool, policies: RuleNames) -> str:
    if not cut or short in policies:
        return short
    found = [rid for rid in policies if rid.startswith(short)]
    return found[0] if len(found) == 1 else short


def plan_entries(lines: Iterable[str], policies: RuleNames) -> tuple[PlanEntry, ...]:
    """Structured entries for preview lines; `policies`: rule id -> (policy, summary)
    of the old and the new generation (a removed rule's come from the old one)."""
    out: list[PlanEntry] = []
    for line in lines:
        m = _IPTABLES.match(line) or _OBJECT.match(line)
        table = m["table"] if m else None
        chain = m["chain"] if m else None
        family = int(m["family"]) if m and m.groupdict().get("family") else None
        rid_m = _RULE_ID.search(line)
        rule_id = None
        if rid_m is not None:
            rule_id = _full_id(rid_m["id"], bool(rid_m["cut"]), policies)
        named = policies.get(rule_id) if rule_id else None
        out.append(PlanEntry(OPS.get(line[:1], "change"), table, chain, rule_id,
                             named[0] if named else None, line[2:], family,
                             named[1] if named else None))
    return tuple(out)


@dataclass(frozen=True)
class PlanPreview:
    lines: tuple[str, ...]  # human diff, one change a line ("+ ...", "- ...", "~ ...")
    rules_added: int = 0
    rules_removed: int = 0
    chains_added: int = 0
    chains_removed: int = 0
    set_members_added: int = 0
    set_members_removed: int = 0
    sets_added: int = 0
    sets_removed: int = 0
    xdp: tuple[tuple[str, str], ...] = ()  # (rule_id, "xdp on IFACE" or "raw only: <why>")
    warnings: tuple[str, ...] = ()
    entries: tuple[PlanEntry, ...] = ()  # the lines, structured (plan_entries)

    @classmethod
    def build(cls, lines: list[str], stats: Mapping[str, int],
              xdp: tuple[tuple[str, str], ...], warnings: tuple[str, ...]) -> PlanPreview:
        counts = {k: stats.get(k, 0) for k in STAT_FIELDS}
        return cls(lines=tuple(lines), xdp=xdp, warnings=warnings, **counts)

    @property
    def empty(self) -> bool:
        return not self.lines

    def to_json(self) -> dict[str, Any]:
        return {
            "changes": list(self.lines),
            "entries": [e.to_json() for e in self.entries],
            **{k: getattr(self, k) for k in STAT_FIELDS},
            "xdp": [{"id": i, "placement": p} for i, p in self.xdp],
            "warnings": list(self.warnings),
        }
