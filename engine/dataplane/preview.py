"""PlanPreview: what an apply would change, before it is done (`nodewall diff`, the
TUI's apply screen, `apply --check`)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

STAT_FIELDS = ("rules_added", "rules_removed", "chains_added", "chains_removed",
               "set_members_added", "set_members_removed", "sets_added", "sets_removed")


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
            **{k: getattr(self, k) for k in STAT_FIELDS},
            "xdp": [{"id": i, "placement": p} for i, p in self.xdp],
            "warnings": list(self.warnings),
        }
