"""Results of the engine's facade (engine.service.Service), shared by CLI and TUI."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nodewall.engine.observe.report import PendingConfirm


@dataclass(frozen=True)
class PlanPreview:
    """What an apply would change, before it is done (`nodewall diff`, the TUI)."""

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

    @property
    def empty(self) -> bool:
        return not self.lines

    def to_json(self) -> dict[str, Any]:
        return {
            "changes": list(self.lines),
            "rules_added": self.rules_added, "rules_removed": self.rules_removed,
            "chains_added": self.chains_added, "chains_removed": self.chains_removed,
            "set_members_added": self.set_members_added,
            "set_members_removed": self.set_members_removed,
            "sets_added": self.sets_added, "sets_removed": self.sets_removed,
            "xdp": [{"id": i, "placement": p} for i, p in self.xdp],
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class ApplyResult:
    generation: int
    changed: bool
    preview: PlanPreview
    duration_s: float
    pending_confirm: PendingConfirm | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": 1,
            "generation": self.generation,
            "changed": self.changed,
            "duration_s": round(self.duration_s, 4),
            "pending_confirm": None if self.pending_confirm is None else {
                "generation": self.pending_confirm.generation,
                "previous_generation": self.pending_confirm.previous_generation,
                "deadline": self.pending_confirm.deadline,
                "seconds_left": round(self.pending_confirm.seconds_left, 1),
            },
            "plan": self.preview.to_json(),
            "warnings": list(self.warnings),
        }
