"""The metrics exporter over the fake dataplane (no root, no kernel): a Service whose
orchestrator holds a CountingDataplane, and the scrape parsed back with
prometheus_client's own parser.  No tests here."""
from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodewall.engine.dataplane.orchestrator import Orchestrator
from nodewall.engine.dataplane.protocol import Counters
from nodewall.engine.dataplane.shape import Drift, ExpectedShape
from nodewall.engine.metrics.exporter import Exporter
from nodewall.engine.safety.state_dir import StateStore
from nodewall.engine.safety.transactions import Transactions
from nodewall.engine.service import Service
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.fake_dataplane import FakeDataplane


class CountingDataplane(FakeDataplane):
    """A FakeDataplane with rule counters and drift set by the test, which counts its
    counter walks and how many run at once (the collector must never overlap them)."""

    def __init__(self) -> None:
        super().__init__()
        self.hits: dict[str, tuple[int, int]] = {}  # rule id -> (packets, bytes)
        self.drifted: list[Drift] = []
        self.counter_walks = 0
        self.max_parallel = 0
        self._inside = 0
        self._lock = threading.Lock()
        self.pause = threading.Event()  # set: counters() waits on `release`
        self.release = threading.Event()
        self.in_counters = threading.Event()

    def rule_ids(self) -> list[str]:
        """Every rule id of the fake kernel's chains, in order."""
        if self.kernel is None:
            return []
        return [r.rule_id for t in self.kernel.tables for c in t.chains for r in c.rules]

    def counters(self, observed: Any) -> Counters:
        with self._lock:
            self._inside += 1
            self.counter_walks += 1
            self.max_parallel = max(self.max_parallel, self._inside)
        try:
            self.in_counters.set()
            if self.pause.is_set():
                self.release.wait(10)
            ids = set(self.rule_ids())
            return {(rid, "filter"): pb for rid, pb in self.hits.items() if rid in ids}
        finally:
            with self._lock:
                self._inside -= 1

    def drift(self, expected: ExpectedShape, observed: Any) -> list[Drift]:
        return list(self.drifted)


@dataclass
class MetricsRig:
    service: Service
    fake: CountingDataplane
    work: Path
    families: dict[str, Any] = field(default_factory=dict)

    def exporter(self, *, agent: bool = False) -> Exporter:
        return Exporter(self.service.scrape, agent=agent, version="9.9.9-test")


def metrics_service(root: Path, fake: CountingDataplane) -> Service:
    """A Service on state dir `root` whose kernel is `fake` alone."""
    svc = Service(netns=None, state_dir=root)
    svc.kernel = Orchestrator([fake])
    svc.tx = Transactions(StateStore(root), svc.kernel)
    svc.store = svc.tx.store
    return svc


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def samples(text: str) -> list[Sample]:
    """Every sample of an exposition, parsed by prometheus_client.parser."""
    return [Sample(s.name, dict(s.labels), s.value)
            for fam in text_string_to_metric_families(text) for s in fam.samples]


def value(text: str, name: str, **labels: str) -> float | None:
    """The value of the one sample `name` with `labels` (None: absent)."""
    found = [s.value for s in samples(text)
             if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) <= 1, f"{name}{labels} matches {len(found)} samples"
    return found[0] if found else None


def sample_names(text: str) -> set[str]:
    return {s.name for s in samples(text)}


def names_in(exprs: Iterable[str]) -> set[str]:
    return {m for e in exprs for m in re.findall(r"\bnodewall_[a-z0-9_]+", e)}
