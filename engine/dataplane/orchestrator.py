"""The kernel side of a transaction: an ordered list of dataplanes, in the CURRENT
network namespace.

Order of an apply (each step is atomic on its own; the transaction layer restores the
previous generation if a later one fails):
  1. ipsets: create / replace / delta (member sets before list:sets), before any rule
     that references them;
  2. iptables: one atomic commit per (family, table), verified by read-back;
  3. XDP: maps (adds before deletes, or a fresh map swapped in), program, attach;
  then `retire` in reverse order: ipsets no longer referenced are destroyed, after
  the rules that used them are gone.  Flush goes in reverse order too.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from nodewall.engine.dataplane.ipsets.dataplane import IpsetDataplane
from nodewall.engine.dataplane.iptables.dataplane import IptablesDataplane
from nodewall.engine.dataplane.preview import PlanPreview
from nodewall.engine.dataplane.protocol import Counters, Dataplane, TxContext
from nodewall.engine.dataplane.shape import Drift, ExpectedShape
from nodewall.engine.dataplane.xdp.dataplane import XdpDataplane
from nodewall.engine.errors import KernelError
from nodewall.engine.nets.baseline import BaselineStore
from nodewall.engine.plan.desired import DesiredState


@dataclass
class Snapshot:
    """One read of every dataplane (status reads the kernel once for counters, drift
    and foreign objects)."""

    observed: dict[str, object]


class Orchestrator:
    def __init__(self, dataplanes: Sequence[Dataplane] | None = None):
        self.iptables = IptablesDataplane()
        self.xdp = XdpDataplane()
        self.dataplanes: tuple[Dataplane, ...] = tuple(
            dataplanes if dataplanes is not None else (IpsetDataplane(), self.iptables, self.xdp))

    def context(self, baselines: BaselineStore | None = None) -> TxContext:
        """A fresh per-transaction context (observations and plans made once)."""
        return TxContext(baselines=baselines)

    def warm_up(self) -> None:
        for dp in self.dataplanes:
            dp.warm_up()

    # -- read ------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        return Snapshot({dp.name: dp.observe() for dp in self.dataplanes})

    def preview(self, desired: DesiredState, ctx: TxContext) -> PlanPreview:
        lines: list[str] = []
        stats: dict[str, int] = {}
        for dp in self.dataplanes:
            made = dp.plan(desired, ctx)
            lines += made.describe()
            for key, value in made.stats().items():
                stats[key] = stats.get(key, 0) + value
        placement = [(r.rule_id, f"xdp on {i.iface}")
                     for i in desired.xdp.interfaces for r in i.rules]
        placement += [(rid, f"raw only: {why}")
                      for rid, why in sorted(desired.xdp.not_accelerated.items())]
        return PlanPreview.build(lines, stats, tuple(placement), desired.warnings)

    def counters(self, snapshot: Snapshot | None = None) -> Counters:
        """{(rule_id, backend): (packets, bytes)}; backend is raw/mangle/filter/xdp."""
        snapshot = snapshot or self.snapshot()
        out: dict[tuple[str, str], tuple[int, int]] = {}
        for dp in self.dataplanes:
            out.update(dp.counters(snapshot.observed[dp.name]))
        return out

    def drift(self, expected: ExpectedShape, snapshot: Snapshot | None = None) -> list[Drift]:
        snapshot = snapshot or self.snapshot()
        return [d for dp in self.dataplanes
                for d in dp.drift(expected, snapshot.observed[dp.name])]

    def foreign(self, snapshot: Snapshot | None = None) -> list[str]:
        """What other tools have that touches nodewall's objects, or sits where it
        works (left alone, but worth knowing)."""
        snapshot = snapshot or self.snapshot()
        return [f for dp in self.dataplanes for f in dp.foreign(snapshot.observed[dp.name])]

    def iptables_mode(self) -> str:
        return self.iptables.host_mode()

    # -- write -----------------------------------------------------------------
    def prepare(self, desired: DesiredState, ctx: TxContext) -> None:
        for dp in self.dataplanes:
            dp.prepare(desired, ctx)

    def apply(self, desired: DesiredState, ctx: TxContext) -> None:
        for dp in self.dataplanes:
            dp.apply(desired, ctx)
        for dp in reversed(self.dataplanes):
            dp.retire(desired, ctx)

    def verify(self, desired: DesiredState) -> None:
        problems = [p for dp in self.dataplanes for p in dp.verify(desired)]
        if problems:
            raise KernelError("verification failed: " + "; ".join(problems))

    def flush(self) -> None:
        for dp in reversed(self.dataplanes):
            dp.flush()

    @staticmethod
    def expected_shape(desired: DesiredState,
                       host_endpoints: Mapping[str, str]) -> ExpectedShape:
        return ExpectedShape.of(desired, host_endpoints)
