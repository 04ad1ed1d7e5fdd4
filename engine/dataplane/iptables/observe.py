"""What nodewall owns in the legacy xtables of the current namespace: its nw- chains
as sequences of rule-id blocks with counters, its hook jumps, and foreign rules that
jump into its chains (which would keep a chain from being deleted)."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from nodewall.engine.dataplane.iptables.libiptc import (
    BUILTIN_CHAINS,
    FAMILIES,
    TABLES,
    Handle,
    loaded_tables,
)
from nodewall.engine.dataplane.shape import block_digest, digest_blocks
from nodewall.engine.plan.desired import HOOK_RULE_ID, PREFIX, Family, TableName
from nodewall.engine.plan.naming import owned_chain_name


@dataclass(frozen=True)
class ObservedRule:
    rule_id: str | None  # from the comment "nw:<id>"; None = no nodewall comment
    target: str
    packets: int
    bytes: int
    digest: str = ""  # of its content (engine.dataplane.iptables.libiptc)


@dataclass(frozen=True)
class Block:
    """Consecutive rules of one chain that share a rule id."""

    rule_id: str | None
    position: int  # 1-based position of the first rule
    count: int
    packets: int
    bytes: int
    digest: str = ""  # of the block's content (engine.dataplane.shape.digest_blocks)


@dataclass(frozen=True)
class ObservedChain:
    name: str
    rules: tuple[ObservedRule, ...]

    def blocks(self) -> tuple[Block, ...]:
        runs: list[list[ObservedRule]] = []
        for r in self.rules:
            if runs and runs[-1][0].rule_id == r.rule_id and r.rule_id is not None:
                runs[-1].append(r)
            else:
                runs.append([r])
        out: list[Block] = []
        pos = 1
        for run in runs:
            out.append(Block(run[0].rule_id, pos, len(run), sum(r.packets for r in run),
                             sum(r.bytes for r in run), block_digest(r.digest for r in run)))
            pos += len(run)
        return tuple(out)

    def block_digests(self) -> tuple[tuple[str, str], ...]:
        """(rule id, content digest) per block (FOREIGN for rules without an id)."""
        return digest_blocks((r.rule_id, r.digest) for r in self.rules)


@dataclass(frozen=True)
class ObservedHook:
    kernel_chain: str
    chain: str  # the target of the jump
    position: int  # 1-based
    packets: int
    bytes: int
    plain: bool = True  # False: edited in place, it no longer matches every packet


@dataclass(frozen=True)
class ForeignRef:
    """A rule nodewall does not own that jumps into one of its chains."""

    chain: str  # where the foreign rule sits
    position: int
    target: str  # the nw- chain it jumps to


@dataclass(frozen=True)
class ObservedTable:
    family: Family
    table: TableName
    present: bool  # False: the legacy table does not exist (nothing of ours there)
    chains: tuple[ObservedChain, ...] = ()
    hooks: tuple[ObservedHook, ...] = ()
    foreign_refs: tuple[ForeignRef, ...] = ()

    def chain(self, name: str) -> ObservedChain | None:
        for c in self.chains:
            if c.name == name:
                return c
        return None

    @property
    def owns_anything(self) -> bool:
        return bool(self.chains or self.hooks)


@dataclass(frozen=True)
class IptablesObserved:
    tables: tuple[ObservedTable, ...]

    def table(self, family: Family, name: TableName) -> ObservedTable:
        for t in self.tables:
            if t.family == family and t.table == name:
                return t
        return ObservedTable(family, name, present=False)


def _owned_chain(name: str, rules: list) -> bool:
    """nodewall's chain: one whose whole name is one nodewall makes (whatever it holds
    now: drift is repaired, not walked around), or any `nw-` chain holding a rule with
    nodewall's `nw:<id>` comment (its marker on every rule it writes).  A foreign
    `nw-custom` is neither."""
    if owned_chain_name(name):
        return True
    return name.startswith(PREFIX) and any(r.nw_id for r in rules)


def observe_handle(h: Handle) -> ObservedTable:
    """Read nodewall's part of one open table snapshot."""
    raw = {name: list(h.rules(name)) for name in h.chains()}
    owned = {name for name, rules in raw.items() if _owned_chain(name, rules)}
    chains = [ObservedChain(name, tuple(ObservedRule(r.nw_id, r.target, r.packets, r.bytes,
                                                     r.digest)
                                        for r in raw[name]))
              for name in raw if name in owned]
    hooks: list[ObservedHook] = []
    refs: list[ForeignRef] = []
    builtin = set(BUILTIN_CHAINS[h.name])
    for name, rules in raw.items():
        if name in owned:
            continue
        for pos, r in enumerate(rules, start=1):
            if r.target not in owned:
                continue
            if name in builtin and r.nw_id == HOOK_RULE_ID:
                hooks.append(ObservedHook(name, r.target, pos, r.packets, r.bytes, r.plain))
            else:
                refs.append(ForeignRef(name, pos, r.target))
    return ObservedTable(h.family, h.name, True, tuple(chains), tuple(hooks),  # type: ignore[arg-type]
                         tuple(refs))


def observe_table(family: Family, table: TableName) -> ObservedTable:
    if table not in loaded_tables(family):
        return ObservedTable(family, table, present=False)
    with Handle(family, table) as h:
        return observe_handle(h)


def observe(families: Iterable[Family] = FAMILIES,
            tables: Iterable[TableName] = TABLES) -> IptablesObserved:
    """nodewall's chains and hooks in raw/mangle/filter, v4 and v6, of the current
    namespace.  Tables that do not exist are reported absent, not created."""
    tables = tuple(tables)
    return IptablesObserved(tuple(observe_table(f, t) for f in families for t in tables))


def counters(observed: IptablesObserved | None = None) -> dict[tuple[str, str], tuple[int, int]]:
    """{(rule_id, table): (packets, bytes)}, summed over families and over the rules
    that share an id (hooks excluded)."""
    out: dict[tuple[str, str], tuple[int, int]] = {}
    for (rid, table, _chain), (p, b) in chain_counters(observed).items():
        p0, b0 = out.get((rid, table), (0, 0))
        out[(rid, table)] = (p0 + p, b0 + b)
    return out


def chain_counters(observed: IptablesObserved | None = None
                   ) -> dict[tuple[str, str, str], tuple[int, int]]:
    """{(rule_id, table, chain): (packets, bytes)}, summed over families and over the
    rules of an id in one chain (hooks excluded): a rule shared by two host endpoints
    counts apart in each endpoint's chain."""
    observed = observed or observe()
    out: dict[tuple[str, str, str], tuple[int, int]] = {}
    for t in observed.tables:
        for c in t.chains:
            for r in c.rules:
                if r.rule_id is None or r.rule_id == HOOK_RULE_ID:
                    continue
                key = (r.rule_id, t.table, c.name)
                p, b = out.get(key, (0, 0))
                out[key] = (p + r.packets, b + r.bytes)
    return out
