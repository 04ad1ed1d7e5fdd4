"""The engine's facade for the CLI and the TUI.  Every method is blocking kernel
work in the CURRENT network namespace (the process entered --netns at start-up);
the TUI calls it from thread workers only."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from nodewall.engine.dataplane.orchestrator import Orchestrator
from nodewall.engine.dataplane.preview import PlanPreview
from nodewall.engine.observe.conntrack import ConntrackSample, conntrack_sample
from nodewall.engine.observe.report import StatusReport
from nodewall.engine.observe.status import collect_status
from nodewall.engine.profile.loader import load_profiles
from nodewall.engine.profile.model import Profile
from nodewall.engine.safety.results import ApplyResult
from nodewall.engine.safety.state_dir import StateStore, default_state_dir
from nodewall.engine.safety.transactions import Transactions
from nodewall.engine.system import netns as netns_mod


class Service:
    def __init__(self, *, netns: str | None = None, state_dir: Path | None = None):
        self.netns = netns if netns is not None else netns_mod.current_name()
        self.store = StateStore(state_dir or default_state_dir(self.netns))
        self.kernel = Orchestrator()
        self.tx = Transactions(self.store, self.kernel)

    @property
    def is_root(self) -> bool:
        return os.geteuid() == 0

    def status(self) -> StatusReport:
        return collect_status(self.store, self.kernel, netns=self.netns)

    def conntrack_sample(self, limit: int = 2000) -> ConntrackSample:
        return conntrack_sample(limit)

    def validate(self, paths: Sequence[Path]) -> Profile:
        return load_profiles([Path(p) for p in paths])

    def diff(self, paths: Sequence[Path], *, backend: str | None = None) -> PlanPreview:
        return self.tx.preview(paths, backend=backend)

    def apply(self, paths: Sequence[Path], *, confirm_timeout: float | None = None,
              backend: str | None = None) -> ApplyResult:
        return self.tx.apply(paths, backend=backend, confirm_timeout=confirm_timeout)

    def confirm(self) -> None:
        self.tx.confirm()

    def rollback(self, pending_generation: int | None = None) -> None:
        """Roll back; with `pending_generation`, only that pending apply."""
        self.tx.rollback(pending_generation=pending_generation)
