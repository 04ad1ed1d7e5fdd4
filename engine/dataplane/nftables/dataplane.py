"""nftables as a Dataplane: nodewall's own `table inet nodewall` with its base chains,
chains, rules and sets (engine.dataplane.protocol); it replaces the ipsets + iptables
pair when the packet filter is nftables.

Kernel transactions of an apply (each all-or-nothing; readers see before or after):
  - rules changed, sets small (up to nft_sets.INLINE_MAX ranges each, before and
    after; nft_sets.inline): ONE nft batch declares and fills the sets (nft text),
    flushes every chain of the table, deletes the chains and sets no longer wanted and
    adds the wanted chains and rules;
  - only set elements changed (a nets_file delta): the big sets' in ONE netlink
    transaction, the small sets' in one nft batch (one transaction when only one kind
    changed); the rules are not rewritten (their counters keep counting);
  - a big set and the rules changed: the big set first (one netlink transaction;
    a new set is declared by one nft batch before: no rule uses it yet, packets do not
    see it), then the one nft batch of rules and small sets.
Why not always one: libnftables builds and sends its own batch (no API takes foreign
netlink messages, none hands its bytes out), and 1M elements through libnftables cost
~20 s and ~1 GB (interval checks and one expression object per element), which is
why big sets are streamed by a hand-written netlink batch
(engine.dataplane.nftables.netlink).  Netlink size is not the limit: the 1M load is one
batch of ~50 MB.  Writing the rules in that batch too would mean encoding every nft
expression by hand, a second nft compiler.  So in the last case a live big set may hold
its new elements a few milliseconds before the rules change; a crash between the two
transactions leaves the journal, whose recovery puts the previous generation back
whole (engine.safety.transactions).

After the writes, a read-back checks every chain's rule ids and every set.  Rules keep
their counters across applies: each re-added rule carries the packets/bytes read for
the same (chain, rule id) just before, except a rule edited in place (its content
digest is not the one recorded for its id, engine.dataplane.shape): the ruleset is
rewritten and its counters start from zero.  Other tables are never touched.
"""
from __future__ import annotations

from dataclasses import dataclass

from nodewall.engine.dataplane.nftables import observe as nft_observe
from nodewall.engine.dataplane.nftables import render
from nodewall.engine.dataplane.nftables import sets as nft_sets
from nodewall.engine.dataplane.nftables.observe import NftObserved
from nodewall.engine.dataplane.protocol import ChainCounters, Counters, TxContext
from nodewall.engine.dataplane.shape import (
    BlockDigests,
    ChainKey,
    Drift,
    ExpectedShape,
    HookKey,
    chain_drift,
    digest_blocks,
    edited_blocks,
    id_blocks,
)
from nodewall.engine.errors import KernelError
from nodewall.engine.plan.desired import HOOK_RULE_ID, DesiredState

HOOK_OF = {"prerouting": "PREROUTING", "input": "INPUT", "output": "OUTPUT",
           "forward": "FORWARD", "postrouting": "POSTROUTING"}
FAMILY_OF = {"ipv4": 4, "ipv6": 6}


@dataclass(frozen=True)
class NftPlan:
    sets: nft_sets.SetPlan
    ruleset: tuple[str, ...]  # describe lines of the chains part
    counts: dict[str, int]  # rules_added, rules_removed, chains_added, chains_removed
    edited: frozenset[tuple[str, str]] = frozenset()  # (nft chain, rule id) edited in place

    def describe(self) -> list[str]:
        return [*self.sets.describe(), *self.ruleset]

    def stats(self) -> dict[str, int]:
        return {**self.sets.stats(), **self.counts}


def _ids(observed: NftObserved) -> dict[str, tuple[str, ...]]:
    return {c.name: tuple(r.rule_id or "(foreign)" for r in c.rules) for c in observed.chains}


def _wanted(desired: DesiredState) -> dict[str, tuple[str, ...]]:
    """nft chain -> rule ids (hook jumps: "hook")."""
    out: dict[str, tuple[str, ...]] = {}
    for ts in desired.tables:
        for c in ts.chains:
            out[render.chain_name(ts.family, ts.table, c.name)] = tuple(r.rule_id for r in c.rules)
        for h in ts.hooks:
            base = render.base_chain(ts.table, h.kernel_chain)
            out[base] = out.get(base, ()) + (HOOK_RULE_ID,)
    return out


def _edited(observed: NftObserved, recorded: BlockDigests) -> dict[str, tuple[str, ...]]:
    """nft chain -> the ids of its blocks edited in place (content digest not the
    recorded one; in a base chain, a hook jump that is no longer plain)."""
    out = {}
    for c in observed.chains:
        key = render.chain_key(c.name)
        if key is not None:
            found = edited_blocks(recorded.get(key, {}), digest_blocks(
                (r.rule_id, r.digest) for r in c.rules))
        else:
            found = (HOOK_RULE_ID,) if any(r.rule_id == HOOK_RULE_ID and not r.plain
                                           for r in c.rules) else ()
        if found:
            out[c.name] = found
    return out


def _chain_line(name: str, old: tuple[str, ...] | None, new: tuple[str, ...] | None,
                edited: tuple[str, ...]) -> str:
    if new is None:
        return f"- nft chain {name} ({len(old or ())} rules)"
    if old is None:
        return f"+ nft chain {name} ({len(new)} rules)"
    gone = [i for i in id_blocks(old) if i not in new]
    came = [i for i in id_blocks(new) if i not in old]
    if old == new:
        return (f"~ nft chain {name}: {len(edited)} rule block(s) edited in place, "
                "replaced: their counters are lost")
    return (f"~ nft chain {name}: {len(came)} rule block(s) added, {len(gone)} removed"
            + ("" if gone or came else ", reordered")
            + (f", {len(edited)} edited in place, replaced: their counters are lost"
               if edited else ""))


def _ruleset_lines(desired: DesiredState, observed: NftObserved, recorded: BlockDigests
                   ) -> tuple[list[str], dict[str, int], dict[str, tuple[str, ...]]]:
    have = _ids(observed) if observed.present else {}
    want = _wanted(desired)
    edited = _edited(observed, recorded) if observed.present else {}
    lines: list[str] = []
    added = removed = 0
    if want and not observed.present:
        lines.append(f"+ nft table {render.FAMILY} {render.TABLE}")
    for name in sorted(set(have) | set(want)):
        old, new = have.get(name), want.get(name)
        fixed = edited.get(name, ()) if new is not None else ()
        if old == new and not fixed:
            continue
        lines.append(_chain_line(name, old, new, fixed))
        redo = sum(1 for i in (old or ()) if i in fixed)
        removed += redo + sum(1 for i in (old or ()) if i not in (new or ()))
        added += redo + sum(1 for i in (new or ()) if i not in (old or ()))
    if observed.present and not want and not desired.ipsets:
        lines.append(f"- nft table {render.FAMILY} {render.TABLE}")
    return lines, {"rules_added": added, "rules_removed": removed,
                   "chains_added": len(want.keys() - have.keys()),
                   "chains_removed": len(have.keys() - want.keys())}, edited


def _carry(observed: NftObserved, edited: frozenset[tuple[str, str]] = frozenset()
           ) -> dict[tuple[str, str], list[tuple[int, int]]]:
    """The counters to carry into the rewritten rules (not those edited in place)."""
    out: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for c in observed.chains:
        for r in c.rules:
            if (c.name, r.rule_id) in edited:
                continue
            if r.rule_id == HOOK_RULE_ID and r.nfproto in FAMILY_OF:
                key = (c.name, f"hook{FAMILY_OF[r.nfproto]}")
            elif r.rule_id is not None:
                key = (c.name, r.rule_id)
            else:
                continue
            out.setdefault(key, []).append((r.packets, r.bytes))
    return out


def _hooks(observed: NftObserved) -> tuple[set[HookKey], set[HookKey]]:
    """The hook jumps in nodewall's base chains: (plain ones, ones edited in place)."""
    plain: set[HookKey] = set()
    edited: set[HookKey] = set()
    for c in observed.chains:
        if c.hook is None or render.chain_key(c.name) is not None:
            continue
        table = c.name.partition("-")[0]
        for r in c.rules:
            target = render.chain_key(r.jump) if r.jump else None
            if r.rule_id == HOOK_RULE_ID and target and r.nfproto in FAMILY_OF:
                key = HookKey(FAMILY_OF[r.nfproto], table, HOOK_OF.get(c.hook, c.hook),
                              target.chain)
                (plain if r.plain else edited).add(key)
    return plain, edited


class NftablesDataplane:
    name = "nftables"
    counts_rules = True

    def warm_up(self) -> None:
        nft_observe.context()

    def observe(self) -> NftObserved:
        return nft_observe.observe()

    def prepare(self, desired: DesiredState, ctx: TxContext) -> None:
        """Forget the record of every set the kernel no longer has, or whose content
        was changed by hand (the apply reloads it)."""
        live = ctx.observation(self)
        for spec in desired.ipsets:
            if spec.name not in live.sets or nft_sets.content_drift(spec.name):
                nft_sets.drop_manifest(spec.name)

    def plan(self, desired: DesiredState, ctx: TxContext) -> NftPlan:
        observed = ctx.observation(self)
        set_plan = nft_sets.plan(desired.ipsets, observed, baselines=ctx.baselines,
                                 digests=ctx.digests)
        lines, counts, edited = _ruleset_lines(desired, observed, ctx.recorded)
        made = NftPlan(set_plan, tuple(lines), counts,
                       frozenset((c, i) for c, ids in edited.items() for i in ids))
        ctx.plans[self.name] = (desired, made)
        return made

    def apply(self, desired: DesiredState, ctx: TxContext) -> None:
        observed = ctx.observation(self)
        made = ctx.planned(self, desired) or self.plan(desired, ctx)
        ctx.forget(self)
        if not desired.tables and not desired.ipsets:
            self.flush()
            return
        small = [c for c in made.sets.changes if nft_sets.inline(c)]
        big = [c for c in made.sets.changes if c.action != "none" and not nft_sets.inline(c)]
        nft_sets.sync(big, observed)
        cmds = nft_sets.commands(small)
        if made.ruleset or made.sets.stale or not observed.present:
            cmds = render.ruleset_commands(desired, [c.name for c in observed.chains],
                                           list(observed.sets),
                                           _carry(observed, made.edited))
            cmds[1:1] = nft_sets.commands(small)  # after `add table`, before any rule
        if cmds:
            nft_sets.forget(small)
            nft_observe.run("\n".join(cmds), "ruleset")
            nft_sets.record(small)
        nft_sets.record_edited_sources(made.sets.changes)
        for name in made.sets.stale:
            nft_sets.drop_manifest(name)
        problems = self.verify(desired)
        if problems:
            raise KernelError("nftables read-back: " + "; ".join(problems))

    def retire(self, desired: DesiredState, ctx: TxContext) -> None:
        return None  # the ruleset batch deleted the stale chains and sets

    def verify(self, desired: DesiredState) -> list[str]:
        observed = nft_observe.observe()
        want = _wanted(desired) if (desired.tables or desired.ipsets) else {}
        if not want and not desired.ipsets:
            return [f"table {render.FAMILY} {render.TABLE} still exists"] \
                if observed.present else []
        have = _ids(observed)
        problems = [f"chain {n} holds ids {list(have.get(n, ()))}, expected {list(ids)}"
                    for n, ids in want.items() if have.get(n) != ids]
        problems += [f"unexpected chain {n}" for n in have if n not in want]
        missing = [s.name for s in desired.ipsets if s.name not in observed.sets]
        if missing:
            problems.append(f"missing nft sets {missing}")
        return problems

    def counters(self, observed: NftObserved) -> Counters:
        """{(rule id, raw/mangle/filter): (packets, bytes)} summed over the rules of an
        id (both families), hook jumps excluded."""
        out: dict[tuple[str, str], tuple[int, int]] = {}
        for (rid, table, _chain), (p, b) in self.chain_counters(observed).items():
            p0, b0 = out.get((rid, table), (0, 0))
            out[(rid, table)] = (p0 + p, b0 + b)
        return out

    def chain_counters(self, observed: NftObserved) -> ChainCounters:
        """{(rule id, raw/mangle/filter, chain): (packets, bytes)}, the chain named as
        in iptables (nw-fi-eth0: both families' nft chains of it summed)."""
        out: dict[tuple[str, str, str], tuple[int, int]] = {}
        for c in observed.chains:
            key = render.chain_key(c.name)
            if key is None:
                continue
            for r in c.rules:
                if r.rule_id is None or r.rule_id == HOOK_RULE_ID:
                    continue
                k = (r.rule_id, key.table, key.chain)
                p, b = out.get(k, (0, 0))
                out[k] = (p + r.packets, b + r.bytes)
        return out

    def block_digests(self, observed: NftObserved) -> dict[ChainKey, dict[str, str]]:
        """{chain: {rule id: content digest}} of nodewall's blocks in its table."""
        return {key: dict(digest_blocks((r.rule_id, r.digest) for r in c.rules))
                for c in observed.chains
                for key in [render.chain_key(c.name)] if key is not None}

    def drift(self, expected: ExpectedShape, observed: NftObserved) -> list[Drift]:
        have = {key: digest_blocks((r.rule_id, r.digest) for r in c.rules)
                for c in observed.chains for key in [render.chain_key(c.name)]
                if key is not None}
        hooks, edited = _hooks(observed)
        out = [d for key, ids in sorted(expected.chains.items())
               for d in chain_drift(key, ids, have.get(key), expected.digests.get(key))]
        out += [Drift("chain", str(k), "is not in the recorded generation")
                for k in sorted(have.keys() - expected.chains.keys())]
        out += [Drift("hook", str(h), "was edited in place (it no longer matches every "
                                      "packet of its family)")
                for h in sorted(expected.hooks & (edited - hooks))]
        out += [Drift("hook", str(h), "is missing")
                for h in sorted(expected.hooks - hooks - edited)]
        out += [Drift("ipset", n, "is missing") for n in expected.ipsets
                if n not in observed.sets]
        out += [Drift("ipset", n, why) for n in expected.ipsets if n in observed.sets
                for why in [nft_sets.content_drift(n)] if why]
        out += [Drift("ipset", n, "is not in the recorded generation")
                for n in sorted(set(observed.sets) - set(expected.ipsets))]
        return out

    def foreign(self, observed: NftObserved) -> list[str]:
        """Other nft tables, while nodewall's table is there: each is left alone, and
        its base chains run beside nodewall's (a drop in either is final).  No other
        table can reference nodewall's chains or sets."""
        if not observed.present:
            return []
        out = []
        for table in observed.other_tables:
            family, _, name = table.partition(" ")
            hooks = [f"{c['name']} at {c['hook']} priority {c.get('prio')}"
                     for c in observed.others
                     if (c.get("family"), c.get("table")) == (family, name)]
            where = ("base chains " + ", ".join(hooks) + ": they run beside nodewall's"
                     if hooks else "no base chain")
            out.append(f"nft table {table} (not nodewall's, left alone): {where}")
        return out

    def flush(self) -> None:
        if nft_observe.observe().present:
            nft_observe.run(f"delete table {render.FAMILY} {render.TABLE}", "flush")
        nft_sets.drop_all_manifests()
