"""Desired tables vs observed kernel -> ordered ops per (family, table).

Chains are diffed as sequences of rule-id blocks (equal id <=> equal rendered block,
see engine.plan.desired), so unchanged rules are never touched and keep their counters.
That holds for the rules nodewall wrote; a block whose content digest differs from
the one recorded for its id (engine.dataplane.shape: edited in place, comment kept)
is not nodewall's rule any more: it is deleted and the wanted block inserted in its
place (its counters are lost, and the plan says so).
Within one table the ops are ordered so that they can be applied one after the other
to a single libiptc snapshot and committed at once:

  1. create new chains (jumps to them may follow)
  2. delete stale blocks, bottom-up in each chain (positions above stay valid)
  3. insert new blocks, top-down
  4. hooks: remove stray / duplicate ones, move ours to position 1, add missing ones
  5. flush, then delete, the chains no longer wanted (nothing jumps to them any more)
"""
from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from nodewall.engine.dataplane.iptables.libiptc import (
    BUILTIN_CHAINS,
    FAMILIES,
    TABLES,
    family_label,
)
from nodewall.engine.dataplane.iptables.observe import IptablesObserved, ObservedHook, ObservedTable
from nodewall.engine.dataplane.iptables.render import render_text
from nodewall.engine.dataplane.shape import BlockDigests, ChainKey, edited_blocks
from nodewall.engine.errors import OwnershipError
from nodewall.engine.plan.desired import (
    PREFIX,
    Chain,
    ChainRule,
    DesiredState,
    Family,
    TableName,
    TableState,
)

MAX_CHAIN_NAME = 28

OpKind = Literal["create_chain", "delete", "insert", "remove_hook", "move_hook", "add_hook",
                 "flush_chain", "delete_chain"]


def short_id(rule_id: str | None, n: int = 10) -> str:
    if rule_id is None:
        return "(no nodewall id)"
    return "nw:" + (rule_id if len(rule_id) <= n else rule_id[:n] + "…")


@dataclass(frozen=True)
class Op:
    kind: OpKind
    family: Family
    table: TableName
    chain: str  # the nw- chain (hooks: the chain jumped to)
    position: int = 0  # 1-based; insert/delete: first rule; hooks: in the kernel chain
    rules: tuple[ChainRule, ...] = ()  # insert
    count: int = 0  # delete: number of iptables rules
    rule_id: str | None = None  # insert/delete: the block's id
    kernel_chain: str = ""  # hooks
    packets: int = 0  # delete/remove: counters lost with it (for humans)
    edited: bool = False  # delete / remove_hook: it was edited in place

    def describe(self) -> str:
        where = f"{self.table} {family_label(self.family)}"
        k = self.kind
        if k == "create_chain":
            return f"+ {where} chain {self.chain}"
        if k == "delete_chain":
            return f"- {where} chain {self.chain}"
        if k == "flush_chain":
            return f"- {where} {self.chain} (all rules)"
        if k == "insert":
            return "\n".join(
                f"+ {where} {self.chain} [{self.position + i}] "
                f"{render_text(r, self.family, comment=False)}  ({short_id(r.rule_id)})"
                for i, r in enumerate(self.rules))
        if k == "delete":
            n = f" x{self.count}" if self.count > 1 else ""
            why = (f"edited in place, replaced: its counters are lost, {self.packets} packets"
                   if self.edited else f"{self.packets} packets")
            return f"- {where} {self.chain} [{self.position}] {short_id(self.rule_id)}{n}  ({why})"
        if k == "add_hook":
            return f"+ {where} {self.kernel_chain} [1] -j {self.chain}  (nw:hook)"
        if k == "remove_hook":
            why = ", edited in place: it no longer matches every packet" if self.edited else ""
            return (f"- {where} {self.kernel_chain} [{self.position}] -j {self.chain}"
                    f"  (nw:hook{why})")
        return (f"~ {where} {self.kernel_chain} [{self.position}->1] -j {self.chain}"
                f"  (nw:hook moved back to the top)")

    @property
    def rule_delta(self) -> tuple[int, int]:
        """(iptables rules added, removed) by this op, hooks included."""
        return {"insert": (len(self.rules), 0), "delete": (0, self.count),
                "add_hook": (1, 0), "remove_hook": (0, 1)}.get(self.kind, (0, 0))


@dataclass(frozen=True)
class TablePlan:
    family: Family
    table: TableName
    ops: tuple[Op, ...]
    create_table: bool = False  # the legacy table does not exist yet


@dataclass(frozen=True)
class IptablesPlan:
    tables: tuple[TablePlan, ...]

    @property
    def ops(self) -> tuple[Op, ...]:
        return tuple(op for t in self.tables for op in t.ops)

    @property
    def empty(self) -> bool:
        return not self.ops

    def describe(self) -> list[str]:
        return [line for op in self.ops for line in op.describe().split("\n")]

    def stats(self) -> dict[str, int]:
        added = sum(op.rule_delta[0] for op in self.ops)
        removed = sum(op.rule_delta[1] for op in self.ops)
        return {"rules_added": added, "rules_removed": removed,
                "chains_added": sum(op.kind == "create_chain" for op in self.ops),
                "chains_removed": sum(op.kind == "delete_chain" for op in self.ops)}


def _blocks(chain: Chain) -> list[tuple[str, tuple[ChainRule, ...]]]:
    out: list[tuple[str, list[ChainRule]]] = []
    for r in chain.rules:
        if out and out[-1][0] == r.rule_id:
            out[-1][1].append(r)
        else:
            out.append((r.rule_id, [r]))
    return [(i, tuple(rs)) for i, rs in out]


def check_table_state(ts: TableState) -> None:
    """Contract checks (the planner's bugs, not the operator's)."""
    names = [c.name for c in ts.chains]
    for n in names:
        if not n.startswith(PREFIX) or len(n) > MAX_CHAIN_NAME:
            raise ValueError(f"chain name {n!r}: must start with {PREFIX!r}, <= 28 chars")
    if len(set(names)) != len(names):
        raise ValueError(f"{ts.table} v{ts.family}: duplicate chain names")
    kernel = [h.kernel_chain for h in ts.hooks]
    if len(set(kernel)) != len(kernel):
        raise ValueError(f"{ts.table} v{ts.family}: more than one hook per kernel chain")
    for h in ts.hooks:
        if h.kernel_chain not in BUILTIN_CHAINS[ts.table]:
            raise ValueError(f"{ts.table} has no kernel chain {h.kernel_chain}")
        if h.chain not in names:
            raise ValueError(f"hook {h.kernel_chain} -> {h.chain}: no such desired chain")


def _chain_ops(family: Family, table: TableName, want: Chain, have_blocks: list,
               recorded: Mapping[str, str]) -> tuple[list[Op], list[Op]]:
    """(deletes bottom-up, inserts top-down) turning the observed blocks into `want`;
    a block edited in place (its digest is not the one `recorded` for its id) matches
    nothing, so it is deleted and the wanted one inserted."""
    want_blocks = _blocks(want)
    edited = set(edited_blocks(recorded, ((b.rule_id, b.digest) for b in have_blocks
                                          if b.rule_id is not None)))
    a = [(b.rule_id, b.count) if b.rule_id not in edited else (None, -b.position)
         for b in have_blocks]
    b = [(i, len(rs)) for i, rs in want_blocks]
    sm = difflib.SequenceMatcher(None, a, b, autojunk=False)
    kept_a: set[int] = set()
    kept_b: set[int] = set()
    for m in sm.get_matching_blocks():
        kept_a.update(range(m.a, m.a + m.size))
        kept_b.update(range(m.b, m.b + m.size))
    deletes = [Op("delete", family, table, want.name, position=blk.position, count=blk.count,
                  rule_id=blk.rule_id, packets=blk.packets, edited=blk.rule_id in edited)
               for i, blk in reversed(list(enumerate(have_blocks))) if i not in kept_a]
    inserts: list[Op] = []
    pos = 1
    for j, (rule_id, rules) in enumerate(want_blocks):
        if j not in kept_b:
            inserts.append(Op("insert", family, table, want.name, position=pos,
                              rules=rules, rule_id=rule_id))
        pos += len(rules)
    return deletes, inserts


def _hook_ops(family: Family, table: TableName, want: dict[str, str],
              have: tuple[ObservedHook, ...]) -> list[Op]:
    ops: list[Op] = []
    by_kc: dict[str, list[ObservedHook]] = {}
    for h in have:
        by_kc.setdefault(h.kernel_chain, []).append(h)
    for kc in sorted(set(want) | set(by_kc)):
        hooks = sorted(by_kc.get(kc, []), key=lambda h: h.position)
        target = want.get(kc)
        keep = next((h for h in hooks if h.chain == target and h.plain), None)
        removed_above = 0
        for h in reversed(hooks):
            if h is keep:
                continue
            ops.append(Op("remove_hook", family, table, h.chain, position=h.position,
                          kernel_chain=kc, packets=h.packets, edited=not h.plain))
            if keep is not None and h.position < keep.position:
                removed_above += 1
        if target is None:
            continue
        if keep is None:
            ops.append(Op("add_hook", family, table, target, position=1, kernel_chain=kc))
        elif keep.position - removed_above != 1:
            ops.append(Op("move_hook", family, table, target,
                          position=keep.position - removed_above, kernel_chain=kc))
    return ops


def plan_table(family: Family, table: TableName, want: TableState | None,
               have: ObservedTable, recorded: BlockDigests | None = None) -> TablePlan:
    chains = want.chains if want else ()
    if want is not None:
        check_table_state(want)
    wanted = {c.name for c in chains}
    doomed = [c.name for c in have.chains if c.name not in wanted]
    refs = [r for r in have.foreign_refs if r.target in doomed]
    if refs:
        where = ", ".join(f"{r.chain} rule {r.position} -> {r.target}" for r in refs)
        raise OwnershipError(
            f"{table} {family_label(family)}: rules nodewall does not own jump into chains "
            f"it must delete ({where})",
            hint=f"remove those rules (see `iptables-legacy-save -t {table}`), then retry; "
                 "nodewall never edits rules it does not own")
    creates = [Op("create_chain", family, table, c.name) for c in chains
               if have.chain(c.name) is None]
    deletes: list[Op] = []
    inserts: list[Op] = []
    for c in chains:
        obs = have.chain(c.name)
        d, i = _chain_ops(family, table, c, list(obs.blocks()) if obs else [],
                          (recorded or {}).get(ChainKey(family, table, c.name), {}))
        deletes += d
        inserts += i
    hooks = _hook_ops(family, table, {h.kernel_chain: h.chain for h in (want.hooks if want
                                                                         else ())}, have.hooks)
    flushes = [Op("flush_chain", family, table, n) for n in doomed]
    drops = [Op("delete_chain", family, table, n) for n in doomed]
    ops = (*creates, *deletes, *inserts, *hooks, *flushes, *drops)
    return TablePlan(family, table, ops, create_table=bool(ops) and not have.present)


def plan(desired: DesiredState, observed: IptablesObserved,
         recorded: BlockDigests | None = None) -> IptablesPlan:
    """The ops that turn the observed nw- chains and hooks into the desired ones, for
    raw/mangle/filter x v4/v6 (a table missing from `desired` is wanted empty);
    `recorded`: the content digests of the generation in place (blocks edited in
    place are replaced; without them, ids only)."""
    out = []
    for family in FAMILIES:
        for table in TABLES:
            tp = plan_table(family, table, desired.table(family, table),
                            observed.table(family, table), recorded)
            if tp.ops:
                out.append(tp)
    return IptablesPlan(tuple(out))
