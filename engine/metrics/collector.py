"""The Prometheus collector: every scrape makes ONE ScrapeView (one read of the kernel
and the state dir, through the Service) and turns it into metric families.

Scrapes may arrive concurrently (the HTTP server answers each in its own thread): a
lock lets one read run at a time, and each scrape renders only the view it read, so
no two scrapes share half-built state.  A read that fails (not root, a state file
damaged) still answers: nodewall_scrape_success 0 and the build info, nothing else.
"""
from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator

from nodewall.engine.errors import NodewallError
from nodewall.engine.observe.scrape import ScrapeView
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

RULE_LABELS = ("id", "policy", "direction", "index", "action", "backend", "interface", "chain")
Scrape = Callable[[], ScrapeView]


def _log_stderr(message: str) -> None:
    print(f"nodewall metrics: {message}", file=sys.stderr, flush=True)


def rule_families(view: ScrapeView) -> Iterator[Metric]:
    packets = CounterMetricFamily(
        "nodewall_rule_packets_total", "Packets matched by a nodewall rule", labels=RULE_LABELS)
    nbytes = CounterMetricFamily(
        "nodewall_rule_bytes_total", "Bytes matched by a nodewall rule", labels=RULE_LABELS)
    for r in view.rules:  # each rule once, as the one kernel read gave it
        labels = (r.id, r.policy, r.direction, str(r.index), r.action, r.backend,
                  r.interface, r.chain)
        packets.add_metric(labels, r.packets)
        nbytes.add_metric(labels, r.bytes)
    yield packets
    yield nbytes
    yield GaugeMetricFamily("nodewall_rule_counters_unrecorded",
                            "Kernel rule counters the current generation does not record "
                            "(non-zero while an apply swaps generations)",
                            value=view.unrecorded_rules)


def conntrack_families(view: ScrapeView) -> Iterator[Metric]:
    ct = view.conntrack
    yield GaugeMetricFamily("nodewall_conntrack_entries", "Conntrack entries in the namespace",
                            value=ct.count)
    yield GaugeMetricFamily("nodewall_conntrack_max", "nf_conntrack_max of the namespace",
                            value=ct.max)
    drops = CounterMetricFamily("nodewall_conntrack_drops_total",
                                "Packets dropped by conntrack (table full), per CPU",
                                labels=("cpu",))
    failed = CounterMetricFamily("nodewall_conntrack_insert_failed_total",
                                 "Conntrack entries that failed to be inserted, per CPU",
                                 labels=("cpu",))
    for cpu in ct.per_cpu:
        drops.add_metric((str(cpu.cpu),), cpu.drop)
        failed.add_metric((str(cpu.cpu),), cpu.insert_failed)
    yield drops
    yield failed


def state_families(view: ScrapeView) -> Iterator[Metric]:
    yield GaugeMetricFamily("nodewall_generation",
                            "The applied generation (0: nothing applied)",
                            value=view.generation or 0)
    drift = GaugeMetricFamily("nodewall_drift_objects",
                              "Kernel objects that differ from the recorded generation",
                              labels=("kind",))
    for kind, count in view.drift_by_kind().items():
        drift.add_metric((kind,), count)
    yield drift
    yield GaugeMetricFamily("nodewall_pending_confirm",
                            "1 while an apply waits for `nodewall confirm`",
                            value=int(view.pending_confirm is not None))
    yield GaugeMetricFamily("nodewall_pending_confirm_seconds_left",
                            "Seconds before the pending apply reverts (0: none pending)",
                            value=view.pending_confirm.seconds_left
                            if view.pending_confirm else 0)
    yield GaugeMetricFamily("nodewall_panic", "1 while panic mode drops all but failsafe",
                            value=int(view.panic))
    yield GaugeMetricFamily("nodewall_transaction_in_flight",
                            "1 when the scrape met a transaction in flight (drift not "
                            "reported then)", value=int(view.in_flight is not None))
    yield GaugeMetricFamily("nodewall_reverted_unacknowledged",
                            "1 while an automatic revert waits for `nodewall ack`",
                            value=int(view.last_revert is not None))


def xdp_families(view: ScrapeView) -> Iterator[Metric]:
    packets = CounterMetricFamily("nodewall_xdp_packets_total",
                                  "Packets seen by nodewall's XDP program, by verdict",
                                  labels=("action",))
    nbytes = CounterMetricFamily("nodewall_xdp_bytes_total",
                                 "Bytes seen by nodewall's XDP program, by verdict",
                                 labels=("action",))
    for a in view.xdp_actions:
        packets.add_metric((a.action,), a.packets)
        nbytes.add_metric((a.action,), a.bytes)
    yield packets
    yield nbytes


def view_families(view: ScrapeView) -> Iterator[Metric]:
    yield from rule_families(view)
    yield from conntrack_families(view)
    yield from state_families(view)
    yield from xdp_families(view)
    yield GaugeMetricFamily("nodewall_scrape_duration_seconds",
                            "How long this scrape's read of the kernel took",
                            value=view.duration_s)


class NodewallCollector(Collector):
    def __init__(self, scrape: Scrape, *, version: str,
                 log: Callable[[str], None] = _log_stderr):
        self._scrape = scrape
        self._lock = threading.Lock()
        self.version = version
        self.log = log

    def read(self) -> ScrapeView:
        """One read; concurrent callers take turns (each gets its own view)."""
        with self._lock:
            return self._scrape()

    def describe(self) -> list[Metric]:
        return []  # registering must not read the kernel

    def collect(self) -> Iterator[Metric]:
        build = GaugeMetricFamily("nodewall_build_info", "nodewall's version",
                                  labels=("version",))
        build.add_metric((self.version,), 1)
        yield build
        try:
            view = self.read()
        except NodewallError as exc:
            self.log(f"scrape failed: {exc.render()}")
            yield GaugeMetricFamily("nodewall_scrape_success",
                                    "1 when the scrape read the kernel", value=0)
            return
        yield GaugeMetricFamily("nodewall_scrape_success", "1 when the scrape read the kernel",
                                value=1)
        yield from view_families(view)
