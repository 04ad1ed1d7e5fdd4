"""The kernel shape a generation should have, and what differs from it (drift).

A generation records its ExpectedShape (meta.json, "expected"): per nodewall chain the
sequence of rule-id blocks, the hook jumps, the ipsets, the XDP interfaces and which
host endpoint covers which interface.  Status, the agent and panic compare the kernel
against it; each dataplane reports its own part as typed Drift items.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from nodewall.engine.plan.desired import DesiredState

DriftKind = Literal["chain", "hook", "ipset", "xdp"]


@dataclass(frozen=True, order=True)
class ChainKey:
    family: int
    table: str
    chain: str

    def __str__(self) -> str:
        return f"{self.family}/{self.table}/{self.chain}"

    @classmethod
    def parse(cls, text: str) -> ChainKey:
        family, table, chain = text.split("/", 2)
        return cls(int(family), table, chain)


@dataclass(frozen=True, order=True)
class HookKey:
    family: int
    table: str
    kernel_chain: str
    chain: str

    def __str__(self) -> str:
        return f"{self.family}/{self.table}/{self.kernel_chain}->{self.chain}"

    @classmethod
    def parse(cls, text: str) -> HookKey:
        family, table, rest = text.split("/", 2)
        kernel_chain, chain = rest.split("->", 1)
        return cls(int(family), table, kernel_chain, chain)


def id_blocks(rule_ids: Iterable[str]) -> tuple[str, ...]:
    """One entry per run of consecutive rules sharing an id (a TOML rule that renders
    into several kernel rules is one block)."""
    out: list[str] = []
    for rid in rule_ids:
        if not out or out[-1] != rid:
            out.append(rid)
    return tuple(out)


@dataclass(frozen=True)
class ExpectedShape:
    chains: Mapping[ChainKey, tuple[str, ...]] = field(default_factory=dict)
    hooks: frozenset[HookKey] = frozenset()
    ipsets: tuple[str, ...] = ()
    xdp: tuple[str, ...] = ()
    host_endpoints: Mapping[str, str] = field(default_factory=dict)  # interface -> name
    packet_filter: str = "iptables"  # the dataplane that holds chains and sets

    @classmethod
    def of(cls, desired: DesiredState, host_endpoints: Mapping[str, str]) -> ExpectedShape:
        chains = {ChainKey(t.family, t.table, c.name): id_blocks(r.rule_id for r in c.rules)
                  for t in desired.tables for c in t.chains}
        hooks = frozenset(HookKey(t.family, t.table, h.kernel_chain, h.chain)
                          for t in desired.tables for h in t.hooks)
        return cls(chains=chains, hooks=hooks,
                   ipsets=tuple(sorted(s.name for s in desired.ipsets)),
                   xdp=tuple(sorted(i.iface for i in desired.xdp.interfaces)),
                   host_endpoints=dict(host_endpoints), packet_filter=desired.packet_filter)

    def with_first(self, overlay: ExpectedShape) -> ExpectedShape:
        """This shape with `overlay`'s chains and hooks put first (panic mode): the
        overlay's blocks open a chain both have, the rest follow."""
        chains = dict(self.chains)
        for key, ids in overlay.chains.items():
            chains[key] = ids + tuple(i for i in chains.get(key, ()) if i not in ids)
        return replace(self, chains=chains, hooks=self.hooks | overlay.hooks)

    # -- meta.json -----------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        out = {"chains": {str(k): list(v) for k, v in sorted(self.chains.items())},
               "hooks": sorted(str(h) for h in self.hooks),
               "ipsets": list(self.ipsets), "xdp": list(self.xdp),
               "host_endpoints": dict(self.host_endpoints)}
        if self.packet_filter != "iptables":  # older meta.json files have no such key
            out["packet_filter"] = self.packet_filter
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> ExpectedShape:
        data = data or {}
        return cls(
            chains={ChainKey.parse(k): tuple(v) for k, v in data.get("chains", {}).items()},
            hooks=frozenset(HookKey.parse(h) for h in data.get("hooks", [])),
            ipsets=tuple(data.get("ipsets", ())), xdp=tuple(data.get("xdp", ())),
            host_endpoints=dict(data.get("host_endpoints", {})),
            packet_filter=str(data.get("packet_filter", "iptables")))


@dataclass(frozen=True)
class Drift:
    """One object that differs from the recorded generation."""

    kind: DriftKind
    name: str  # the object: "4/raw/nw-rfi-eth0", "nw-n4-blocklist-…", "eth0", a hook
    problem: str  # "is missing", "was changed (…)", "is not in the recorded generation"

    def __str__(self) -> str:
        noun = {"chain": "chain", "hook": "hook", "ipset": "ipset",
                "xdp": "XDP program on"}[self.kind]
        return f"{noun} {self.name} {self.problem}"


def chain_drift(key: ChainKey, want: tuple[str, ...],
                have: tuple[str, ...] | None) -> list[Drift]:
    """How a chain's rule-id blocks in the kernel (`have`; None: no such chain) differ
    from the recorded ones (`want`): missing, blocks gone, foreign or unrecorded blocks
    inside, or reordered."""
    if have is None:
        return [Drift("chain", str(key), "is missing")]
    if have == want:
        return []
    gone = [i for i in want if i not in have]
    extra = [i for i in have if i not in want]
    parts = ([f"{len(gone)} rule block(s) missing"] if gone else []) + \
        ([f"{len(extra)} not nodewall's or not recorded"] if extra else [])
    what = "; ".join(parts) or "rules reordered"
    return [Drift("chain", str(key), f"was changed ({what}: {len(have)} rule blocks, "
                                     f"expected {len(want)})")]
