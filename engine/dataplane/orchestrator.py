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

The packet filter is chosen per desired state (`DesiredState.packet_filter`, from
`[settings] backend`): "iptables" is the ipsets + iptables pair, "nftables" is the one
nftables dataplane (its sets live in its table).  The other packet filter's
dataplanes are left out of the apply, then flushed when they own anything, after the
chosen one is in place: a switch iptables <-> nftables is one transaction, and the
kernel never runs without nodewall's rules in between.  Status reads every dataplane;
drift compares the recorded generation with its own packet filter and reports
whatever the other one still holds.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from nodewall.engine.dataplane.ipsets.dataplane import IpsetDataplane
from nodewall.engine.dataplane.iptables.dataplane import IptablesDataplane
from nodewall.engine.dataplane.iptables.mode import IptablesMode
from nodewall.engine.dataplane.nftables.dataplane import NftablesDataplane
from nodewall.engine.dataplane.preview import PlanPreview
from nodewall.engine.dataplane.protocol import (
    ChainCounters,
    Counters,
    CountsPerChain,
    Dataplane,
    DigestsBlocks,
    TxContext,
)
from nodewall.engine.dataplane.shape import BlockDigests, ChainKey, Drift, ExpectedShape
from nodewall.engine.dataplane.xdp.dataplane import XdpDataplane
from nodewall.engine.errors import EnvironmentProblem, KernelError
from nodewall.engine.nets.baseline import BaselineStore
from nodewall.engine.plan.desired import DesiredState, XdpState

# packet filter -> the dataplanes it consists of (the others, XDP, serve every one)
PACKET_FILTERS = {"iptables": ("ipsets", "iptables"), "nftables": ("nftables",)}
EMPTY = DesiredState(tables=(), ipsets=(), xdp=XdpState(), rules={})


def packet_filter_of(dp: Dataplane) -> str | None:
    return next((pf for pf, names in PACKET_FILTERS.items() if dp.name in names), None)


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
            dataplanes if dataplanes is not None
            else (IpsetDataplane(), self.iptables, NftablesDataplane(), self.xdp))

    def selected(self, packet_filter: str) -> tuple[Dataplane, ...]:
        """The dataplanes an apply writes, in order: the packet filter's, then XDP."""
        return tuple(dp for dp in self.dataplanes if packet_filter_of(dp) in (None, packet_filter))

    def others(self, packet_filter: str, ctx: TxContext) -> tuple[Dataplane, ...]:
        """The other packet filters' dataplanes that own something (to be flushed)."""
        return tuple(dp for dp in self.dataplanes
                     if packet_filter_of(dp) not in (None, packet_filter) and _owns(dp, ctx))

    def context(self, baselines: BaselineStore | None = None,
                recorded: BlockDigests | None = None) -> TxContext:
        """A fresh per-transaction context (observations and plans made once);
        `recorded`: the block digests of the generation in place."""
        return TxContext(baselines=baselines, recorded=dict(recorded or {}))

    def warm_up(self) -> None:
        for dp in self.dataplanes:
            dp.warm_up()

    # -- read ------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        return Snapshot({dp.name: dp.observe() for dp in self.dataplanes})

    def counters_snapshot(self) -> Snapshot:
        """A read of the dataplanes that count rules or hold XDP attachments only (no
        ipset headers): enough for counters, not for drift or foreign objects."""
        return Snapshot({dp.name: dp.observe() for dp in self.dataplanes if dp.counts_rules})

    def preview(self, desired: DesiredState, ctx: TxContext) -> PlanPreview:
        lines: list[str] = []
        stats: dict[str, int] = {}
        steps = [(dp, desired) for dp in self.selected(desired.packet_filter)]
        steps += [(dp, EMPTY) for dp in self.others(desired.packet_filter, ctx)]
        for dp, want in steps:
            made = dp.plan(want, ctx)
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
            if dp.name in snapshot.observed:
                out.update(dp.counters(snapshot.observed[dp.name]))
        return out

    def chain_counters(self, snapshot: Snapshot | None = None) -> ChainCounters:
        """{(rule_id, backend, chain): (packets, bytes)}: per chain where the dataplane
        has per host endpoint chains (iptables, nftables) or per interface programs
        (XDP: "xdp:IF"), chain "" otherwise."""
        snapshot = snapshot or self.snapshot()
        out: dict[tuple[str, str, str], tuple[int, int]] = {}
        for dp in self.dataplanes:
            if dp.name not in snapshot.observed:
                continue  # a counters snapshot leaves out the dataplanes without counters
            observed = snapshot.observed[dp.name]
            if isinstance(dp, CountsPerChain):
                out.update(dp.chain_counters(observed))
            else:
                out.update({(rid, backend, ""): pb
                            for (rid, backend), pb in dp.counters(observed).items()})
        return out

    def drift(self, expected: ExpectedShape, snapshot: Snapshot | None = None) -> list[Drift]:
        """Each dataplane of the recorded packet filter against the recorded shape; the
        other packet filter's against nothing (all it holds is drift)."""
        snapshot = snapshot or self.snapshot()
        return [d for dp in self.dataplanes
                for d in dp.drift(expected if packet_filter_of(dp) in (
                    None, expected.packet_filter) else ExpectedShape(),
                    snapshot.observed[dp.name])]

    def block_digests(self, packet_filter: str) -> dict[ChainKey, dict[str, str]]:
        """The content digests of nodewall's rule blocks in the kernel now (read right
        after an apply, recorded with its generation)."""
        return {key: digests for dp in self.selected(packet_filter)
                if isinstance(dp, DigestsBlocks)
                for key, digests in dp.block_digests(dp.observe()).items()}

    def foreign(self, snapshot: Snapshot | None = None) -> list[str]:
        """What other tools have that touches nodewall's objects, or sits where it
        works (left alone, but worth knowing)."""
        snapshot = snapshot or self.snapshot()
        return [f for dp in self.dataplanes for f in dp.foreign(snapshot.observed[dp.name])]

    def iptables_mode(self) -> IptablesMode:
        return self.iptables.host_mode()

    # -- write -----------------------------------------------------------------
    def prepare(self, desired: DesiredState, ctx: TxContext) -> None:
        for dp in self.selected(desired.packet_filter):
            dp.prepare(desired, ctx)

    def apply(self, desired: DesiredState, ctx: TxContext) -> None:
        chosen = self.selected(desired.packet_filter)
        others = self.others(desired.packet_filter, ctx)
        for dp in chosen:
            dp.apply(desired, ctx)
        for dp in reversed(chosen):
            dp.retire(desired, ctx)
        for dp in reversed(others):  # the previous packet filter, once this one is in
            ctx.forget(dp)
            dp.flush()

    def verify(self, desired: DesiredState) -> None:
        problems = [p for dp in self.selected(desired.packet_filter) for p in dp.verify(desired)]
        if problems:
            raise KernelError("verification failed: " + "; ".join(problems))

    def flush(self) -> None:
        for dp in reversed(self.dataplanes):
            dp.flush()

    @staticmethod
    def expected_shape(desired: DesiredState,
                       host_endpoints: Mapping[str, str]) -> ExpectedShape:
        return ExpectedShape.of(desired, host_endpoints)


def _owns(dp: Dataplane, ctx: TxContext) -> bool:
    """Whether `dp` holds anything of nodewall's: all it holds is drift against an
    empty shape.  A dataplane whose tools are missing owns nothing."""
    try:
        return bool(dp.drift(ExpectedShape(), ctx.observation(dp)))
    except EnvironmentProblem:
        return False
