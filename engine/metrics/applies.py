"""What the agent's reconcile passes feed: the apply-duration histogram and the count
of passes by outcome.  Only the agent exports these: it sees every apply it makes.
A standalone exporter does not (the state dir records when a generation was made, not
how long its apply took, nor the applies that failed and left no generation)."""
from __future__ import annotations

import threading

from nodewall.engine.safety.agent import OUTCOMES, PassResult
from prometheus_client import CollectorRegistry, Counter, Histogram

APPLY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class AgentMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.duration = Histogram(
            "nodewall_apply_duration_seconds",
            "Wall time of the agent's applies (in place, applied, or failed)",
            buckets=APPLY_BUCKETS, registry=registry)
        self.applies = Counter(
            "nodewall_applies_total", "The agent's reconcile passes by outcome",
            labelnames=("result",), registry=registry)
        for outcome in OUTCOMES:  # every series exists from the start (rate() needs it)
            self.applies.labels(result=outcome)
        self._lock = threading.Lock()
        self._last: PassResult | None = None

    def observe(self, result: PassResult) -> None:
        """Agent.on_pass: called after every reconcile pass."""
        self.applies.labels(result=result.outcome).inc()
        if result.apply_s is not None:
            self.duration.observe(result.apply_s)
        with self._lock:
            self._last = result

    @property
    def last(self) -> PassResult | None:
        with self._lock:
            return self._last
