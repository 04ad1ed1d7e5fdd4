"""The kernel shape a generation should have, and what differs from it (drift).

A generation records its ExpectedShape (meta.json, "expected"): per nodewall chain the
sequence of rule-id blocks, the hook jumps, the ipsets, the XDP interfaces and which
host endpoint covers which interface.  Status, the agent and panic compare the kernel
against it; each dataplane reports its own part as typed Drift items.

Rule ids say which rule a kernel rule claims to be, not what it holds: anyone can edit
a rule in place and keep its `nw:<id>` comment.  So the shape also records a content
digest per rule block ("digests"), taken from the kernel's own encoding of the block
right after nodewall wrote it (engine.dataplane.iptables.libiptc,
engine.dataplane.nftables.observe: counters, handles and blob offsets left out, set
and chain references by name).  A block whose digest differs from the recorded one
was edited in place: drift, and the next plan rewrites it.  A shape without digests
(an older meta.json, or a state dir that could not take them) checks ids only.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
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


# per chain: rule id -> content digest of its block (a rule id renders one content)
BlockDigests = Mapping[ChainKey, Mapping[str, str]]
FOREIGN = "(foreign)"  # a kernel rule without nodewall's comment


def content_digest(data: bytes) -> str:
    """A short digest of one rule's (or block's) content."""
    return hashlib.blake2b(data, digest_size=12).hexdigest()


def block_digest(rule_digests: Iterable[str]) -> str:
    """The digest of a block from its rules' digests, in order."""
    return content_digest(" ".join(rule_digests).encode())


def digest_blocks(rules: Iterable[tuple[str | None, str]]) -> tuple[tuple[str, str], ...]:
    """(rule id, block digest) per run of consecutive rules sharing an id (as
    id_blocks: consecutive rules without one make one FOREIGN block), from each
    rule's (id, content digest)."""
    out: list[tuple[str, list[str]]] = []
    for rid, digest in rules:
        key = rid if rid is not None else FOREIGN
        if out and out[-1][0] == key:
            out[-1][1].append(digest)
        else:
            out.append((key, [digest]))
    return tuple((rid, block_digest(ds)) for rid, ds in out)


def edited_blocks(recorded: Mapping[str, str],
                  have: Iterable[tuple[str, str]]) -> tuple[str, ...]:
    """The ids of the kernel's blocks (`have`: (id, digest)) whose content differs from
    the recorded digest; an id without a recorded digest is not checked."""
    return tuple(sorted({rid for rid, digest in have
                         if rid in recorded and digest != recorded[rid]}))


@dataclass(frozen=True)
class ExpectedShape:
    chains: Mapping[ChainKey, tuple[str, ...]] = field(default_factory=dict)
    hooks: frozenset[HookKey] = frozenset()
    ipsets: tuple[str, ...] = ()
    xdp: tuple[str, ...] = ()
    host_endpoints: Mapping[str, str] = field(default_factory=dict)  # interface -> name
    packet_filter: str = "iptables"  # the dataplane that holds chains and sets
    digests: BlockDigests = field(default_factory=dict)  # empty: ids only

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

    def with_digests(self, found: BlockDigests) -> ExpectedShape:
        """This shape with the content digests of its own blocks as read from the
        kernel (`found`; blocks of other chains or ids, e.g. panic's, are left out)."""
        digests = {key: {rid: found[key][rid] for rid in sorted(set(ids))
                         if rid in found.get(key, {})}
                   for key, ids in self.chains.items()}
        return replace(self, digests={k: v for k, v in digests.items() if v})

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
        if self.digests:  # nor this one (then drift and plans check ids only)
            out["digests"] = {str(k): dict(sorted(v.items()))
                              for k, v in sorted(self.digests.items())}
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> ExpectedShape:
        data = data or {}
        return cls(
            chains={ChainKey.parse(k): tuple(v) for k, v in data.get("chains", {}).items()},
            hooks=frozenset(HookKey.parse(h) for h in data.get("hooks", [])),
            ipsets=tuple(data.get("ipsets", ())), xdp=tuple(data.get("xdp", ())),
            host_endpoints=dict(data.get("host_endpoints", {})),
            packet_filter=str(data.get("packet_filter", "iptables")),
            digests={ChainKey.parse(k): {str(i): str(d) for i, d in v.items()}
                     for k, v in data.get("digests", {}).items()})


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
                have: Sequence[tuple[str, str]] | None,
                recorded: Mapping[str, str] | None = None) -> list[Drift]:
    """How a chain's rule blocks in the kernel (`have`: (id, content digest) per block;
    None: no such chain) differ from the recorded ones (`want`, and their digests
    `recorded`): missing, blocks gone, foreign or unrecorded blocks inside, blocks
    edited in place (same id, other content), or reordered."""
    if have is None:
        return [Drift("chain", str(key), "is missing")]
    ids = tuple(rid for rid, _ in have)
    edited = edited_blocks(recorded or {}, have)
    if ids == want and not edited:
        return []
    gone = [i for i in want if i not in ids]
    extra = [i for i in ids if i not in want]
    parts = ([f"{len(gone)} rule block(s) missing"] if gone else []) + \
        ([f"{len(extra)} not nodewall's or not recorded"] if extra else []) + \
        ([f"{len(edited)} rule block(s) edited in place: "
          + ", ".join(f"nw:{i}" for i in edited)] if edited else [])
    what = "; ".join(parts) or "rules reordered"
    return [Drift("chain", str(key), f"was changed ({what}: {len(ids)} rule blocks, "
                                     f"expected {len(want)})")]
