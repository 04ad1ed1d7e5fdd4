"""The one interface every kernel dataplane implements (ipsets, iptables, XDP, …).

The orchestrator (engine.dataplane.orchestrator) holds an ordered list of them:
apply runs in that order (sets exist before the rules that use them), `retire`
runs in reverse (sets go after the rules stopped using them), flush in reverse.
Observations are dataplane-specific values: read once, then handed back to plan,
counters, drift and foreign, so that one status call reads each dataplane once.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from nodewall.engine.dataplane.shape import BlockDigests, ChainKey, Drift, ExpectedShape
from nodewall.engine.nets.baseline import BaselineStore
from nodewall.engine.nets.digests import FileDigests
from nodewall.engine.plan.desired import DesiredState

# (rule id, backend: "raw" / "mangle" / "filter" / "xdp") -> (packets, bytes)
Counters = Mapping[tuple[str, str], tuple[int, int]]
# (rule id, backend, chain: "nw-fi-eth0", "" when the backend has no chains) -> (packets, bytes)
ChainCounters = Mapping[tuple[str, str, str], tuple[int, int]]


class DataplanePlan(Protocol):
    def describe(self) -> list[str]:
        """One human line per change ("+ …", "- …", "~ …")."""

    def stats(self) -> dict[str, int]:
        """Counts for the summary: rules_added, set_members_removed, …"""


@dataclass
class TxContext:
    """What one transaction (or one preview) knows beyond the desired state: the
    nets_file baselines of the generation in place, and each dataplane's observation
    and plan, made once and reused by the apply when the desired state is the same."""

    baselines: BaselineStore | None = None
    digests: FileDigests = field(default_factory=FileDigests)  # nets_file contents
    # content digests of the rule blocks of the generation in place (its meta): a
    # block whose digest differs was edited in place and is rewritten; empty: ids only
    recorded: BlockDigests = field(default_factory=dict)
    observed: dict[str, Any] = field(default_factory=dict)
    plans: dict[str, tuple[DesiredState, Any]] = field(default_factory=dict)

    def observation(self, dataplane: Dataplane) -> Any:
        if dataplane.name not in self.observed:
            self.observed[dataplane.name] = dataplane.observe()
        return self.observed[dataplane.name]

    def planned(self, dataplane: Dataplane, desired: DesiredState) -> Any | None:
        """The plan made for exactly this desired state in this context, if any."""
        made = self.plans.get(dataplane.name)
        return made[1] if made is not None and made[0] is desired else None

    def forget(self, dataplane: Dataplane) -> None:
        """The kernel changes from here on: observations and plans are stale."""
        self.observed.pop(dataplane.name, None)
        self.plans.pop(dataplane.name, None)


@runtime_checkable
class DigestsBlocks(Protocol):
    """A dataplane whose rule blocks have content digests (iptables, nftables)."""

    def block_digests(self, observed: Any) -> dict[ChainKey, dict[str, str]]:
        """{chain: {rule id: content digest}} of nodewall's blocks in `observed`."""


@runtime_checkable
class CountsPerChain(Protocol):
    """A dataplane whose rules count per host endpoint: in its chains (iptables,
    nftables) or per interface program (XDP)."""

    def chain_counters(self, observed: Any) -> ChainCounters:
        """{(rule id, backend, chain): (packets, bytes)} of nodewall's rules."""


class Dataplane(Protocol):
    name: str  # "ipsets", "iptables", "xdp"
    counts_rules: bool  # whether counters() can be non-empty (read on every status tick)

    def warm_up(self) -> None:
        """Load the libraries behind it before a transaction starts its clock."""

    def observe(self) -> Any:
        """Read what this dataplane owns in the current namespace."""

    def prepare(self, desired: DesiredState, ctx: TxContext) -> None:
        """Before planning: drop own records the kernel no longer matches (so that the
        plan repairs them)."""

    def plan(self, desired: DesiredState, ctx: TxContext) -> DataplanePlan:
        """What apply would change (pure given the observation in ctx)."""

    def apply(self, desired: DesiredState, ctx: TxContext) -> None:
        """Bring the kernel to `desired`, atomically for readers, verified."""

    def retire(self, desired: DesiredState, ctx: TxContext) -> None:
        """After every dataplane applied: remove own objects `desired` no longer uses."""

    def verify(self, desired: DesiredState) -> list[str]:
        """Problems found reading the kernel back ([] when it holds `desired`)."""

    def counters(self, observed: Any) -> Counters:
        """Per-rule packet and byte counters."""

    def drift(self, expected: ExpectedShape, observed: Any) -> list[Drift]:
        """What differs from the recorded shape."""

    def foreign(self, observed: Any) -> list[str]:
        """Other tools' objects that touch nodewall's, or sit where it works."""

    def flush(self) -> None:
        """Remove everything this dataplane owns (raise if something must stay)."""
