"""XDP as a Dataplane: the nw_xdp program, its pinned maps and attachments
(engine.dataplane.xdp.backend does the work; this adapts it to the protocol)."""
from __future__ import annotations

from dataclasses import dataclass

from nodewall.engine.dataplane.protocol import ChainCounters, Counters, TxContext
from nodewall.engine.dataplane.shape import Drift, ExpectedShape
from nodewall.engine.dataplane.xdp.backend import XdpBackend, XdpObserved, XdpOp
from nodewall.engine.plan.desired import DesiredState
from nodewall.engine.plan.naming import xdp_chain


@dataclass(frozen=True)
class XdpPlan:
    ops: tuple[XdpOp, ...]

    def describe(self) -> list[str]:
        return [op.describe() for op in self.ops]

    def stats(self) -> dict[str, int]:
        return {}


class XdpDataplane:
    name = "xdp"
    counts_rules = True

    def __init__(self, backend: XdpBackend | None = None):
        self.backend = backend or XdpBackend()

    def warm_up(self) -> None:
        return None

    def observe(self) -> XdpObserved:
        return self.backend.observe()

    def prepare(self, desired: DesiredState, ctx: TxContext) -> None:
        return None

    def plan(self, desired: DesiredState, ctx: TxContext) -> XdpPlan:
        return XdpPlan(tuple(self.backend.plan(desired.xdp, ctx.observation(self),
                                               ctx.digests)))

    def apply(self, desired: DesiredState, ctx: TxContext) -> None:
        ctx.forget(self)
        if desired.xdp.interfaces:
            self.backend.apply(desired.xdp, baselines=ctx.baselines, digests=ctx.digests)
        else:
            self.backend.flush()

    def retire(self, desired: DesiredState, ctx: TxContext) -> None:
        return None  # apply detaches interfaces no longer wanted

    def verify(self, desired: DesiredState) -> list[str]:
        attached = self.backend.attached() if desired.xdp.interfaces else {}
        detached = [i.iface for i in desired.xdp.interfaces if i.iface not in attached]
        return [f"XDP not attached on {detached}"] if detached else []

    def counters(self, observed: XdpObserved) -> Counters:
        return {(rid, "xdp"): pb for rid, pb in self.backend.counters().items()}

    def chain_counters(self, observed: XdpObserved) -> ChainCounters:
        """Per interface: a rule accelerated on two interfaces has a series for each
        ("xdp:IF" where the packet filters name a chain)."""
        return {(rid, "xdp", xdp_chain(iface) if iface else ""): pb
                for (rid, iface), pb in self.backend.iface_counters().items()}

    def drift(self, expected: ExpectedShape, observed: XdpObserved) -> list[Drift]:
        out = []
        for iface in expected.xdp:
            a = observed.attachments.get(iface)
            if a is None:
                out.append(Drift("xdp", iface, "is detached"))
            elif not a.owned:
                out.append(Drift("xdp", iface, f"is not nodewall's "
                                               f"({a.prog_name or a.prog_id})"))
        return out

    def foreign(self, observed: XdpObserved) -> list[str]:
        return [f"XDP on {name}: program {a.prog_name or a.prog_id} is not nodewall's "
                "(left alone)" for name, a in sorted(observed.attachments.items())
                if not a.owned]

    def flush(self) -> None:
        self.backend.flush()
