"""What a transaction reports back (shared by the facade, the CLI and the TUI)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nodewall.engine.dataplane.preview import PlanPreview


@dataclass(frozen=True)
class PendingConfirm:
    generation: int
    previous_generation: int | None
    deadline: float  # unix time
    seconds_left: float


@dataclass(frozen=True)
class ApplyResult:
    generation: int
    changed: bool
    preview: PlanPreview
    duration_s: float
    pending_confirm: PendingConfirm | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)
    superseded: int | None = None  # the pending generation this apply replaced
    check: bool = False  # `apply --check`: nothing was written; changed = would change

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": 1,
            "generation": self.generation,
            "changed": self.changed,
            "check": self.check,
            "duration_s": round(self.duration_s, 4),
            "pending_confirm": None if self.pending_confirm is None else {
                "generation": self.pending_confirm.generation,
                "previous_generation": self.pending_confirm.previous_generation,
                "deadline": self.pending_confirm.deadline,
                "seconds_left": round(self.pending_confirm.seconds_left, 1),
            },
            "superseded_generation": self.superseded,
            "plan": self.preview.to_json(),
            "warnings": list(self.warnings),
        }
