"""Apply desired iptables state to the legacy xtables of the current namespace.

Per (family, table): take /run/xtables.lock, open a fresh libiptc snapshot, plan
against *that* snapshot (so nothing another tool changed since `nodewall diff` is
overwritten or mis-positioned), run the ops in memory, commit once (one atomic table
replacement), read back and verify, release the lock.  Unchanged rules keep their
counters: libiptc carries them over for every rule it did not touch.
"""
from __future__ import annotations

from dataclasses import dataclass

from nodewall.engine.dataplane.iptables.libiptc import (
    FAMILIES,
    TABLES,
    Handle,
    family_label,
    loaded_tables,
)
from nodewall.engine.dataplane.iptables.observe import ObservedTable, observe_handle
from nodewall.engine.dataplane.iptables.plan import IptablesPlan, Op, TablePlan, plan_table
from nodewall.engine.dataplane.iptables.render import hook_spec, rule_spec, to_iptc
from nodewall.engine.dataplane.iptables.xtables_lock import DEFAULT_TIMEOUT_S, xtables_lock
from nodewall.engine.dataplane.shape import BlockDigests
from nodewall.engine.errors import KernelError, OwnershipError
from nodewall.engine.plan.desired import DesiredState, Family, TableName, TableState


def _run(h: Handle, op: Op) -> None:
    k = op.kind
    if k == "create_chain":
        h.create_chain(op.chain)
    elif k == "delete":
        for _ in range(op.count):
            h.delete_at(op.chain, op.position)
    elif k == "insert":
        for i, rule in enumerate(op.rules):
            entry = to_iptc(rule_spec(rule, op.family))
            h.insert(op.chain, entry.rule, op.position + i)
    elif k == "remove_hook":
        h.delete_at(op.kernel_chain, op.position)
    elif k in ("add_hook", "move_hook"):
        if k == "move_hook":
            h.delete_at(op.kernel_chain, op.position)
        h.insert(op.kernel_chain, to_iptc(hook_spec(op.chain, op.family)).rule, 1)
    elif k == "flush_chain":
        h.flush_chain(op.chain)
    elif k == "delete_chain":
        h.delete_chain(op.chain)
    else:  # pragma: no cover - Op.kind is a closed Literal
        raise ValueError(op.kind)


def verify_table(want: TableState | None, have: ObservedTable) -> list[str]:
    """Differences between what should be there and what is; [] when equal."""
    problems: list[str] = []
    where = f"{have.table} {family_label(have.family)}"
    wanted = {c.name: c for c in (want.chains if want else ())}
    for name, chain in wanted.items():
        obs = have.chain(name)
        if obs is None:
            problems.append(f"{where}: chain {name} missing")
            continue
        got = [r.rule_id for r in obs.rules]
        exp = [r.rule_id for r in chain.rules]
        if got != exp:
            problems.append(f"{where}: {name} holds ids {got}, expected {exp}")
    for c in have.chains:
        if c.name not in wanted:
            problems.append(f"{where}: unexpected chain {c.name}")
    hooks = {h.kernel_chain: h.chain for h in (want.hooks if want else ())}
    seen: dict[str, list[tuple[int, str]]] = {}
    for h in have.hooks:
        seen.setdefault(h.kernel_chain, []).append((h.position, h.chain))
    for kc in set(hooks) | set(seen):
        exp = [(1, hooks[kc])] if kc in hooks else []
        if sorted(seen.get(kc, [])) != exp:
            problems.append(f"{where}: hooks in {kc} are {sorted(seen.get(kc, []))}, "
                            f"expected {exp}")
    return problems


def apply_table(family: Family, table: TableName, want: TableState | None,
                lock_timeout_s: float = DEFAULT_TIMEOUT_S,
                recorded: BlockDigests | None = None) -> TablePlan:
    """Bring one table to `want` (None = nothing of nodewall's) in one commit;
    `recorded`: content digests of the generation in place (engine.dataplane.shape)."""
    with xtables_lock(lock_timeout_s):
        present = table in loaded_tables(family)
        if not present and not (want and (want.chains or want.hooks)):
            return TablePlan(family, table, ())
        with Handle(family, table) as h:
            tp = plan_table(family, table, want, observe_handle(h), recorded)
            if not tp.ops:
                return tp
            for op in tp.ops:
                _run(h, op)
            h.commit()
        with Handle(family, table) as h:
            problems = verify_table(want, observe_handle(h))
    if problems:
        raise KernelError(
            f"after the commit, {table} {family_label(family)} is not what was asked: "
            + "; ".join(problems),
            hint="another program may have changed the table at the same time; "
                 "run `nodewall diff` and apply again")
    return tp


def apply(desired: DesiredState, lock_timeout_s: float = DEFAULT_TIMEOUT_S,
          recorded: BlockDigests | None = None) -> IptablesPlan:
    """Bring raw/mangle/filter, v4 and v6, to `desired.tables` (a table not listed is
    wanted without anything of nodewall's).  One atomic commit per table that changes;
    tables are done in the order raw, mangle, filter for v4 then v6.  Returns what was
    done.  On error the failing table is unchanged; tables committed before it stay
    committed (the transaction layer restores the previous generation)."""
    done = []
    for family in FAMILIES:
        for table in TABLES:
            tp = apply_table(family, table, desired.table(family, table), lock_timeout_s,
                             recorded)
            if tp.ops:
                done.append(tp)
    return IptablesPlan(tuple(done))


@dataclass(frozen=True)
class FlushReport:
    removed_chains: tuple[str, ...]  # "filter v4 nw-fi-eth0"
    removed_hooks: tuple[str, ...]  # "filter v4 INPUT -> nw-fi"
    kept: tuple[str, ...]  # chains left (emptied) because a foreign rule jumps to them

    @property
    def complete(self) -> bool:
        return not self.kept


def flush_table(family: Family, table: TableName,
                lock_timeout_s: float = DEFAULT_TIMEOUT_S) -> FlushReport:
    where = f"{table} {family_label(family)}"
    with xtables_lock(lock_timeout_s):
        if table not in loaded_tables(family):
            return FlushReport((), (), ())
        with Handle(family, table) as h:
            have = observe_handle(h)
            if not have.owns_anything:
                return FlushReport((), (), ())
            for hook in sorted(have.hooks, key=lambda x: (x.kernel_chain, -x.position)):
                h.delete_at(hook.kernel_chain, hook.position)
            referenced = {r.target for r in have.foreign_refs}
            for c in have.chains:
                h.flush_chain(c.name)
            for c in have.chains:
                if c.name not in referenced:
                    h.delete_chain(c.name)
            h.commit()
    return FlushReport(
        removed_chains=tuple(f"{where} {c.name}" for c in have.chains
                             if c.name not in referenced),
        removed_hooks=tuple(f"{where} {x.kernel_chain} -> {x.chain}" for x in have.hooks),
        kept=tuple(f"{where} {r.target} (emptied; {r.chain} rule {r.position} jumps to it)"
                   for r in have.foreign_refs))


def flush(lock_timeout_s: float = DEFAULT_TIMEOUT_S) -> FlushReport:
    """Remove nodewall's hooks and nw- chains from raw/mangle/filter, v4 and v6, of the
    current namespace; nothing else.  A chain a foreign rule still jumps to is emptied
    but kept (listed in `kept`); call raise_if_incomplete() to make that an error."""
    parts = [flush_table(f, t, lock_timeout_s) for f in FAMILIES for t in TABLES]
    return FlushReport(
        tuple(c for p in parts for c in p.removed_chains),
        tuple(c for p in parts for c in p.removed_hooks),
        tuple(c for p in parts for c in p.kept))


def raise_if_incomplete(report: FlushReport) -> None:
    if report.kept:
        raise OwnershipError(
            "some nw- chains could not be deleted: " + "; ".join(report.kept),
            hint="rules nodewall does not own jump to them; remove those rules "
                 "(iptables-legacy-save shows them) and run `nodewall flush` again")

