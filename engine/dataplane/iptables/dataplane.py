"""Legacy xtables (raw, mangle, filter; v4 and v6) as a Dataplane: nodewall's `nw-`
chains and their hook jumps, one atomic libiptc commit per table, verified by
read-back (engine.dataplane.protocol)."""
from __future__ import annotations

import re
import shutil
import subprocess
import time

from nodewall.engine.dataplane.iptables import apply as iptables_apply
from nodewall.engine.dataplane.iptables import libiptc
from nodewall.engine.dataplane.iptables import observe as iptables_observe
from nodewall.engine.dataplane.iptables import plan as iptables_plan
from nodewall.engine.dataplane.iptables.mode import IptablesMode
from nodewall.engine.dataplane.iptables.mode import detect as detect_iptables_mode
from nodewall.engine.dataplane.iptables.observe import IptablesObserved, ObservedHook
from nodewall.engine.dataplane.protocol import ChainCounters, Counters, TxContext
from nodewall.engine.dataplane.shape import (
    ChainKey,
    Drift,
    ExpectedShape,
    HookKey,
    chain_drift,
)
from nodewall.engine.plan.desired import DesiredState
from nodewall.engine.plan.naming import owned_chain_name, owned_set_name

MODE_TTL_S = 30.0  # the host's iptables mode is detected at most this often
SAVE_TOOLS = ((4, "iptables-legacy-save"), (6, "ip6tables-legacy-save"))
_MATCH_SET = re.compile(r"--match-set (\S+)")
_NOTRACK = re.compile(r"-j (?:CT --notrack|NOTRACK)\b")


class IptablesDataplane:
    name = "iptables"
    counts_rules = True

    def __init__(self) -> None:
        self._mode: tuple[float, IptablesMode] | None = None

    def warm_up(self) -> None:
        libiptc.load()

    def observe(self) -> IptablesObserved:
        return iptables_observe.observe()

    def prepare(self, desired: DesiredState, ctx: TxContext) -> None:
        return None

    def plan(self, desired: DesiredState, ctx: TxContext) -> iptables_plan.IptablesPlan:
        return iptables_plan.plan(desired, ctx.observation(self), ctx.recorded)

    def apply(self, desired: DesiredState, ctx: TxContext) -> None:
        ctx.forget(self)
        iptables_apply.apply(desired, recorded=ctx.recorded)  # verified per commit

    def block_digests(self, observed: IptablesObserved) -> dict[ChainKey, dict[str, str]]:
        """{chain: {rule id: content digest}} of nodewall's blocks in the kernel."""
        return {ChainKey(t.family, t.table, c.name): dict(c.block_digests())
                for t in observed.tables for c in t.chains}

    def retire(self, desired: DesiredState, ctx: TxContext) -> None:
        return None  # apply already removed the chains desired no longer has

    def verify(self, desired: DesiredState) -> list[str]:
        return []  # each table commit is read back and checked by apply

    def counters(self, observed: IptablesObserved) -> Counters:
        return iptables_observe.counters(observed)

    def chain_counters(self, observed: IptablesObserved) -> ChainCounters:
        return iptables_observe.chain_counters(observed)

    def drift(self, expected: ExpectedShape, observed: IptablesObserved) -> list[Drift]:
        """nw- chains missing, changed (rule blocks by id: deleted, added, reordered,
        foreign rules inside, edited in place) or unexpected; hooks missing or no
        longer first."""
        have_chains, have_hooks = _shape_of(observed)
        out = [d for key, ids in sorted(expected.chains.items())
               for d in chain_drift(key, ids, have_chains.get(key),
                                    expected.digests.get(key))]
        for key in sorted(have_chains.keys() - expected.chains.keys()):
            out.append(Drift("chain", str(key), "is not in the recorded generation"))
        for hook in sorted(expected.hooks):
            seen = have_hooks.get(hook)
            if seen is None:
                out.append(Drift("hook", str(hook), "is missing"))
            elif not seen.plain:
                out.append(Drift("hook", str(hook), "was edited in place (it no longer "
                                                    "matches every packet)"))
            elif seen.position != 1:
                out.append(Drift("hook", str(hook),
                                 f"is at position {seen.position}, not first"))
        return out

    def foreign(self, observed: IptablesObserved) -> list[str]:
        """Rules of other tools that jump into nw- chains or match nw- sets."""
        out = [f"{t.table} v{t.family}: rule {r.position} of {r.chain} "
               f"(not nodewall's) jumps to {r.target}"
               for t in observed.tables for r in t.foreign_refs]
        for family, tool in SAVE_TOOLS:
            out += _foreign_in_save(family, _save_lines(family, tool))
        return out

    def flush(self) -> None:
        iptables_apply.raise_if_incomplete(iptables_apply.flush())

    def host_mode(self) -> IptablesMode:
        """Where other tools' iptables rules live (legacy / nft / mixed / none) and what
        the host's `iptables` command drives (legacy / nft / unknown)."""
        now = time.monotonic()
        if self._mode is None or now - self._mode[0] > MODE_TTL_S:
            self._mode = (now, detect_iptables_mode())
        return self._mode[1]


def _shape_of(observed: IptablesObserved
              ) -> tuple[dict[ChainKey, tuple[tuple[str, str], ...]], dict[HookKey, ObservedHook]]:
    """(chain: (rule id, content digest) per block, hook: the jump, a plain one first)."""
    chains: dict[ChainKey, tuple[tuple[str, str], ...]] = {}
    hooks: dict[HookKey, ObservedHook] = {}
    for t in observed.tables:
        for c in t.chains:
            chains[ChainKey(t.family, t.table, c.name)] = c.block_digests()
        for h in t.hooks:
            key = HookKey(t.family, t.table, h.kernel_chain, h.chain)
            if key not in hooks or h.plain and not hooks[key].plain:
                hooks[key] = h
    return chains, hooks


def _foreign_in_save(family: int, lines: list[str]) -> list[str]:
    """Other tools' rules that use a nodewall ipset, and their raw NOTRACK rules when
    nodewall's filter chains accept untracked packets (they would be accepted too)."""
    out, notracks, accepts_untracked, table = [], [], False, ""
    for line in lines:
        table = line[1:] if line.startswith("*") else table
        chain = line.split(" ", 2)[1] if line.startswith("-A ") else ""
        if not chain:
            continue
        if owned_chain_name(chain) or "nw:" in line:
            accepts_untracked |= table == "filter" and "UNTRACKED" in line
            continue
        if any(owned_set_name(m) for m in _MATCH_SET.findall(line)):
            out.append(f"v{family}: a rule not nodewall's uses a nodewall ipset: {line}")
        if table == "raw" and _NOTRACK.search(line):
            notracks.append(line)
    if accepts_untracked:
        out += [f"v{family}: a raw rule not nodewall's NOTRACKs packets, and nodewall's filter "
                f"accepts untracked packets (as its untracked policy allowed them): {line}; "
                "hint: say it as a do_not_track policy instead" for line in notracks]
    return out

def _save_lines(family: int, tool: str) -> list[str]:
    """`*-legacy-save` of the tables already loaded (never loads a module)."""
    tables = libiptc.loaded_tables(family)  # type: ignore[arg-type]
    if not tables or shutil.which(tool) is None:
        return []
    out = []
    for table in sorted(tables & {"raw", "mangle", "filter", "nat", "security"}):
        proc = subprocess.run([tool, "-t", table], capture_output=True, text=True,
                              timeout=30, check=False)
        out += proc.stdout.splitlines()
    return out
