"""The order in which the kernel evaluates a DesiredState's rules, for humans (status
grouped by policy in evaluation order, the TUI's sort).  Per direction: XDP, raw,
mangle, filter, the chains followed from their hooks as jumps lead (a rule met twice,
e.g. in both families, keeps its first place)."""
from __future__ import annotations

from nodewall.engine.plan.desired import DesiredState, TableState

TABLE_ORDER = ("raw", "mangle", "filter")


def _walk(ts: TableState, chain: str, seen_chains: set[str], out: list[str]) -> None:
    if chain in seen_chains:
        return
    seen_chains.add(chain)
    rules = next((c.rules for c in ts.chains if c.name == chain), ())
    for rule in rules:
        if rule.rule_id not in out:
            out.append(rule.rule_id)
        if rule.target.chain:
            _walk(ts, rule.target.chain, seen_chains, out)


def _merge(first: list[str], second: list[str]) -> list[str]:
    """One sequence keeping the order of both (the IPv4 and the IPv6 walk of a table):
    what only one walk has goes where that walk meets it."""
    only_first, only_second = set(first) - set(second), set(second) - set(first)
    out: list[str] = []
    done: set[str] = set()
    i = j = 0
    while i < len(first) or j < len(second):
        if i < len(first) and first[i] in done:
            i += 1
        elif j < len(second) and second[j] in done:
            j += 1
        else:
            if i < len(first) and first[i] in only_first:
                pick = first[i]
            elif j < len(second) and (second[j] in only_second or i >= len(first)):
                pick = second[j]
            else:
                pick = first[i]
            out.append(pick)
            done.add(pick)
    return out


def _table_walk(ts: TableState) -> list[str]:
    walked: list[str] = []
    seen: set[str] = set()
    for hook in ts.hooks:
        _walk(ts, hook.chain, seen, walked)
    return walked


def evaluation_order(desired: DesiredState) -> dict[str, int]:
    """rule id -> its place in evaluation order (0 first): XDP, then each table with
    its IPv4 and IPv6 walks merged (a v6-only rule such as NDP sits where v6 meets it)."""
    ordered: list[str] = []
    for xi in desired.xdp.interfaces:
        ordered += [r.rule_id for r in xi.rules if r.rule_id not in ordered]
    for table in TABLE_ORDER:
        walks = [_table_walk(ts) for ts in desired.tables if ts.table == table]
        merged: list[str] = []
        for walk in walks:
            merged = _merge(merged, walk)
        ordered += [rid for rid in merged if rid not in ordered]
    return {rid: i for i, rid in enumerate(ordered)}
