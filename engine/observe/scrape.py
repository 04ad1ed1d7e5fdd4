"""One metrics scrape: what the Prometheus exporter reports, read once.

Leaner than a status report (no interfaces, no foreign-object scan): one snapshot of
every dataplane gives the rule counters (each rule read once, for all backends) and
the drift; the conntrack gauges and per-CPU statistics, the XDP per-action counters,
and the state dir's generation, pending confirm, panic marker, journal and revert
notice complete it.

A scrape takes no lock: it must not stall an apply, nor wait seconds behind one.  It
reads the state dir before and after the kernel; when the two reads differ, or a
journal says a transaction is in flight, the kernel may hold a mix of two generations,
so the read is repeated (a bounded number of times) and, if it never settles, the
scrape is marked `in_flight` and reports no drift (a mix is not drift).  The
generation reported is always one the state dir named: the old one or the new one.
"""
from __future__ import annotations

import time
import typing
from dataclasses import dataclass

from nodewall.engine.dataplane.orchestrator import Orchestrator
from nodewall.engine.dataplane.shape import Drift, DriftKind, ExpectedShape
from nodewall.engine.observe.conntrack import conntrack_info
from nodewall.engine.observe.report import ConntrackInfo, RuleStats
from nodewall.engine.observe.status import rule_stats
from nodewall.engine.safety import panic as panic_mod
from nodewall.engine.safety.results import PendingConfirm
from nodewall.engine.safety.state_dir import StateStore

DRIFT_KINDS: tuple[str, ...] = typing.get_args(DriftKind)
SETTLE_TRIES = 3


@dataclass(frozen=True)
class XdpActionCount:
    action: str  # "nomatch", "allow", "deny", "failsafe", "notip", "nocfg", "vlan"
    packets: int
    bytes: int


@dataclass(frozen=True)
class ScrapeView:
    generation: int | None
    rules: tuple[RuleStats, ...]
    unrecorded_rules: int  # kernel rule counters the generation does not record
    conntrack: ConntrackInfo
    drift: tuple[Drift, ...]
    pending_confirm: PendingConfirm | None
    panic: bool
    in_flight: str | None  # "apply", "rollback", ... while a journal is present
    last_revert: str | None  # an automatic revert not yet acknowledged, described
    xdp_actions: tuple[XdpActionCount, ...]
    duration_s: float = 0.0

    def drift_by_kind(self) -> dict[str, int]:
        counts = dict.fromkeys(DRIFT_KINDS, 0)
        for d in self.drift:
            counts[d.kind] = counts.get(d.kind, 0) + 1
        return counts


@dataclass(frozen=True)
class _StateRead:
    generation: int | None
    journal: str | None  # the in-flight action, or None

    @classmethod
    def of(cls, store: StateStore) -> _StateRead:
        journal = store.journal()
        return cls(store.current(), None if journal is None else journal.action)


def _xdp_actions(kernel: Orchestrator) -> tuple[XdpActionCount, ...]:
    if kernel.xdp not in kernel.dataplanes:  # an orchestrator built without XDP
        return ()
    counts = kernel.xdp.backend.action_counters()
    return tuple(XdpActionCount(a, p, b) for a, (p, b) in counts.items())


def _kernel_read(store: StateStore, kernel: Orchestrator, state: _StateRead):
    meta = store.meta(state.generation) if state.generation is not None else None
    rules_meta = dict(meta.rules) if meta else {}
    expected = meta.expected if meta else ExpectedShape()
    panic = panic_mod.read_marker(store.root)
    if panic is not None:
        rules_meta.update(panic_mod.rule_metas(panic))
        expected = panic_mod.overlay_shape(expected, panic)
    snapshot = kernel.snapshot()  # the one read of every dataplane
    rules, unknown = rule_stats(kernel.chain_counters(snapshot), rules_meta)
    drift = tuple(kernel.drift(expected, snapshot))
    return rules, len(unknown), drift, panic is not None


def collect_scrape(store: StateStore, kernel: Orchestrator) -> ScrapeView:
    started = time.monotonic()
    state = _StateRead.of(store)
    settled = False
    for _ in range(SETTLE_TRIES):
        read_with = state
        rules, unrecorded, drift, panic = _kernel_read(store, kernel, read_with)
        state = _StateRead.of(store)
        settled = state == read_with and state.journal is None
        if settled:
            break
    pending = store.pending()
    notice = store.revert_notice()
    return ScrapeView(
        generation=read_with.generation,
        rules=tuple(rules),
        unrecorded_rules=unrecorded,
        conntrack=conntrack_info(),
        drift=drift if settled else (),
        pending_confirm=None if pending is None else PendingConfirm(
            pending.generation, pending.previous, pending.deadline, pending.seconds_left),
        panic=panic,
        in_flight=None if settled else (state.journal or read_with.journal or "apply"),
        last_revert=None if notice is None else notice.describe(),
        xdp_actions=_xdp_actions(kernel),
        duration_s=time.monotonic() - started)
