"""The kernel side of a transaction, across backends, in the CURRENT namespace.

Order of an apply (each step is atomic on its own; the transaction layer restores the
previous generation if a later one fails):
  1. ipsets: create/replace/delta (member sets before list:sets) — before any rule
     that references them;
  2. iptables: one atomic commit per (family, table), verified by read-back;
  3. XDP: maps (adds before deletes, or a fresh map swapped in), program, attach;
  4. ipsets no longer referenced are destroyed (after the rules that used them).
"""
from __future__ import annotations

import ipaddress
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nodewall.engine.dataplane.ipsets import flush as ipset_flush
from nodewall.engine.dataplane.ipsets import observe as ipset_observe
from nodewall.engine.dataplane.ipsets import sync as ipset_sync
from nodewall.engine.dataplane.iptables import apply as iptables_apply
from nodewall.engine.dataplane.iptables import libiptc as iptables_kernel
from nodewall.engine.dataplane.iptables import observe as iptables_observe
from nodewall.engine.dataplane.iptables import plan as iptables_plan
from nodewall.engine.dataplane.iptables.mode import detect as detect_iptables_mode
from nodewall.engine.dataplane.xdp.backend import XdpBackend
from nodewall.engine.nets.baseline import BaselineStore
from nodewall.engine.plan.desired import PREFIX, DesiredState
from nodewall.engine.service_model import PlanPreview

MODE_TTL_S = 30.0


class Kernel:
    def __init__(self, state_root: Path | None = None, xdp: XdpBackend | None = None):
        self.state_root = state_root
        self.xdp = xdp or XdpBackend()
        self._mode: tuple[float, str] | None = None
        self._view: dict[str, Any] | None = None

    # -- one transaction's view of the sets -----------------------------------
    @contextmanager
    def transaction_view(self) -> Iterator[None]:
        """Within one locked transaction, read the ipset headers once and let apply()
        reuse the plan preview() made: listing a 1M-member set's header makes the
        kernel walk all of it (~20 ms), which would otherwise happen five times."""
        self._view = {}
        try:
            yield
        finally:
            self._view = None

    def _observed_sets(self) -> dict[str, ipset_observe.ObservedSet]:
        if self._view is None:
            return ipset_observe.observe()
        if "sets" not in self._view:
            self._view["sets"] = ipset_observe.observe()
        return self._view["sets"]

    @staticmethod
    def warm_up() -> None:
        """Load the libraries behind the backends (libiptc via python-iptables), so
        a transaction's own duration does not include the import."""
        iptables_kernel._iptc()

    # -- read ------------------------------------------------------------------
    def preview(self, desired: DesiredState,
                baselines: BaselineStore | None = None) -> PlanPreview:
        ipt = iptables_plan.plan(desired, iptables_observe.observe())
        sets = ipset_sync.plan(desired.ipsets, baselines, self._observed_sets())
        if self._view is not None:
            self._view["plan"] = (desired.ipsets, baselines, sets)
        xdp_ops = self.xdp.plan(desired.xdp, self.xdp.observe())
        lines = [*sets.describe(), *ipt.describe(), *(op.describe() for op in xdp_ops)]
        s_stats, i_stats = sets.stats(), ipt.stats()
        placement = [(r.rule_id, f"xdp on {i.iface}")
                     for i in desired.xdp.interfaces for r in i.rules]
        placement += [(rid, f"raw only: {why}")
                      for rid, why in sorted(desired.xdp.not_accelerated.items())]
        return PlanPreview(
            lines=tuple(lines),
            rules_added=i_stats.get("rules_added", 0),
            rules_removed=i_stats.get("rules_removed", 0),
            chains_added=i_stats.get("chains_added", 0),
            chains_removed=i_stats.get("chains_removed", 0),
            set_members_added=s_stats.get("set_members_added", 0),
            set_members_removed=s_stats.get("set_members_removed", 0),
            sets_added=s_stats.get("sets_added", 0),
            sets_removed=s_stats.get("sets_removed", 0),
            xdp=tuple(placement),
            warnings=desired.warnings)

    def counters(self, observed: iptables_observe.IptablesObserved | None = None
                 ) -> dict[tuple[str, str], tuple[int, int]]:
        """{(rule_id, backend): (packets, bytes)}; backend is raw/mangle/filter/xdp.
        `observed`: a read of the tables the caller already made (status reads once)."""
        out = dict(iptables_observe.counters(observed))
        for rid, pb in self.xdp.counters().items():
            out[(rid, "xdp")] = pb
        return out

    def iptables_mode(self) -> str:
        now = time.monotonic()
        if self._mode is None or now - self._mode[0] > MODE_TTL_S:
            self._mode = (now, detect_iptables_mode().kind)
        return self._mode[1]

    # -- write -----------------------------------------------------------------
    def apply(self, desired: DesiredState, baselines: BaselineStore | None) -> None:
        observed = self._observed_sets()
        planned = None
        if self._view is not None and "plan" in self._view:
            ipsets, planned_baselines, sets_plan = self._view.pop("plan")
            if ipsets is desired.ipsets and planned_baselines is baselines:
                planned = sets_plan
        if self._view is not None:
            self._view.pop("sets", None)  # the kernel's sets change from here on
        ipset_sync.sync(desired.ipsets, baselines, observed=observed, planned=planned)
        iptables_apply.apply(desired)
        if desired.xdp.interfaces:
            self.xdp.apply(desired.xdp, baselines=baselines)
        else:
            self.xdp.flush()
        ipset_flush.destroy_unused({s.name for s in desired.ipsets},
                                   observed=observed).raise_if_incomplete()

    def verify(self, desired: DesiredState) -> None:
        """iptables is verified per commit; here: every set exists, XDP is attached."""
        from nodewall.engine.errors import KernelError
        live = ipset_observe.names()
        missing = [s.name for s in desired.ipsets if s.name not in live]
        attached = self.xdp.attached() if desired.xdp.interfaces else {}
        detached = [i.iface for i in desired.xdp.interfaces if i.iface not in attached]
        if missing or detached:
            raise KernelError(f"verification failed: missing ipsets {missing}, "
                              f"XDP not attached on {detached}")

    def flush(self) -> None:
        self.xdp.flush()
        iptables_apply.raise_if_incomplete(iptables_apply.flush())
        ipset_flush.flush_all().raise_if_incomplete()

    # -- drift -----------------------------------------------------------------
    @staticmethod
    def expected_shape(desired: DesiredState, host_endpoints: dict[str, str]) -> dict[str, Any]:
        chains = {}
        for t in desired.tables:
            for c in t.chains:
                ids: list[str] = []
                for r in c.rules:  # one entry per block of rules sharing an id
                    if not ids or ids[-1] != r.rule_id:
                        ids.append(r.rule_id)
                chains[f"{t.family}/{t.table}/{c.name}"] = ids
        hooks = sorted(f"{t.family}/{t.table}/{h.kernel_chain}->{h.chain}"
                       for t in desired.tables for h in t.hooks)
        return {"chains": chains, "hooks": hooks,
                "ipsets": sorted(s.name for s in desired.ipsets),
                "xdp": sorted(i.iface for i in desired.xdp.interfaces),
                "host_endpoints": host_endpoints}

    def drift(self, expected: dict[str, Any],
              observed: iptables_observe.IptablesObserved | None = None) -> list[str]:
        """What differs between the kernel and a recorded generation's shape: nw- chains
        missing, changed (rule blocks by id: deleted, added, reordered, foreign rules
        inside) or unexpected; hooks missing or no longer first; ipsets missing or
        with other members; XDP detached or replaced."""
        out: list[str] = []
        observed = observed or iptables_observe.observe()
        have_chains: dict[str, list[str]] = {}
        have_hooks: dict[str, int] = {}
        for t in observed.tables:
            for c in t.chains:
                ids: list[str] = []
                for r in c.rules:
                    rid = r.rule_id or "(foreign)"
                    if not ids or ids[-1] != rid:
                        ids.append(rid)
                have_chains[f"{t.family}/{t.table}/{c.name}"] = ids
            for h in t.hooks:
                have_hooks[f"{t.family}/{t.table}/{h.kernel_chain}->{h.chain}"] = h.position
        for key, ids in expected.get("chains", {}).items():
            if key not in have_chains:
                out.append(f"chain {key} is missing")
            elif have_chains[key] != ids:
                have = have_chains[key]
                gone = [i for i in ids if i not in have]
                extra = [i for i in have if i not in ids]
                what = (f"{len(gone)} rule block(s) missing" if gone else "") + \
                    ("; " if gone and extra else "") + \
                    (f"{len(extra)} not nodewall's or not recorded" if extra else "")
                out.append(f"chain {key} was changed ({what or 'rules reordered'}: "
                           f"{len(have)} rule blocks, expected {len(ids)})")
        for key in sorted(have_chains.keys() - expected.get("chains", {}).keys()):
            out.append(f"chain {key} is not in the recorded generation")
        for hook in expected.get("hooks", []):
            if hook not in have_hooks:
                out.append(f"hook {hook} is missing")
            elif have_hooks[hook] != 1:
                out.append(f"hook {hook} is at position {have_hooks[hook]}, not first")
        live = ipset_observe.observe()
        for name in expected.get("ipsets", []):
            if name not in live:
                out.append(f"ipset {name} is missing")
                continue
            manifest = ipset_sync.load_manifest(name)
            if manifest is None:
                continue
            if manifest.entries != live[name].entries:
                out.append(f"ipset {name} was changed outside nodewall ("
                           f"{live[name].entries} entries, applied {manifest.entries})")
            elif _members_differ(name, manifest, live[name]):
                out.append(f"ipset {name} was changed outside nodewall (other members)")
        for name in sorted(set(live) - set(expected.get("ipsets", []))):
            out.append(f"ipset {name} is not in the recorded generation")
        attached = self.xdp.attached() if expected.get("xdp") else {}
        for iface in expected.get("xdp", []):
            a = attached.get(iface)
            if a is None:
                out.append(f"XDP program on {iface} is detached")
            elif not a.owned:
                out.append(f"XDP on {iface} runs a program that is not nodewall's "
                           f"({a.prog_name or a.prog_id})")
        return out

    def forget_drifted_sets(self, desired: DesiredState) -> list[str]:
        """Drop the manifest of every small set whose members were changed by hand
        (same count), so that the next sync reloads it in full.  Returns their names."""
        live = self._observed_sets()
        out = []
        for spec in desired.ipsets:
            man = ipset_sync.load_manifest(spec.name)
            if man is not None and spec.name in live and \
                    _members_differ(spec.name, man, live[spec.name]):
                ipset_sync.drop_manifest(spec.name)
                out.append(spec.name)
        return out

    def foreign(self, observed: iptables_observe.IptablesObserved | None = None) -> list[str]:
        """What other tools have that touches nodewall's objects, or sits where it
        works (left alone, but worth knowing): rules jumping into nw- chains or
        matching nw- sets, and XDP programs that are not nodewall's."""
        out: list[str] = []
        for t in (observed or iptables_observe.observe()).tables:
            for r in t.foreign_refs:
                out.append(f"{t.table} v{t.family}: rule {r.position} of {r.chain} "
                           f"(not nodewall's) jumps to {r.target}")
        for family, tool in ((4, "iptables-legacy-save"), (6, "ip6tables-legacy-save")):
            for line in _save_lines(tool):
                chain = line.split(" ", 2)[1] if line.startswith("-A ") else ""
                if chain and not chain.startswith(PREFIX) and "--match-set nw-" in line \
                        and "nw:" not in line:
                    out.append(f"v{family}: a rule not nodewall's uses a nodewall ipset: "
                               f"{line}")
        for name, a in sorted(self.xdp.attached().items()):
            if not a.owned:
                out.append(f"XDP on {name}: program {a.prog_name or a.prog_id} is not "
                           "nodewall's (left alone)")
        return out


def _members_differ(name: str, man: ipset_sync.Manifest, live: ipset_observe.ObservedSet,
                    limit: int = 65536) -> bool:
    """Exact member check for small sets whose content the manifest fully records
    (inline members only, or a list:set); larger ones are checked by count."""
    if man.files or live.entries > limit:
        return False
    have = ipset_observe.list_members(name)
    if man.kind == "list:set":
        return tuple(have) != man.members
    try:
        norm = {str(ipaddress.ip_network(m, strict=False)) for m in have}
    except ValueError:
        return True
    return norm != set(man.inline)


def _save_lines(tool: str) -> list[str]:
    """`*-legacy-save` of the tables already loaded (never loads a module)."""
    family = 6 if tool.startswith("ip6") else 4
    tables = iptables_kernel.loaded_tables(family)  # type: ignore[arg-type]
    if not tables or shutil.which(tool) is None:
        return []
    out = []
    for table in sorted(tables & {"raw", "mangle", "filter", "nat", "security"}):
        proc = subprocess.run([tool, "-t", table], capture_output=True, text=True,
                              timeout=30, check=False)
        out += proc.stdout.splitlines()
    return out
