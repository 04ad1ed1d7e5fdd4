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

import time
from pathlib import Path
from typing import Any

from . import (
    ipset_flush,
    ipset_observe,
    ipset_sync,
    iptables_apply,
    iptables_observe,
    iptables_plan,
)
from .desired import DesiredState
from .iptables_mode import detect as detect_iptables_mode
from .netsfile_baseline import BaselineStore
from .service_model import PlanPreview
from .xdp_backend import XdpBackend

MODE_TTL_S = 30.0


class Kernel:
    def __init__(self, state_root: Path | None = None, xdp: XdpBackend | None = None):
        self.state_root = state_root
        self.xdp = xdp or XdpBackend()
        self._mode: tuple[float, str] | None = None

    # -- read ------------------------------------------------------------------
    def preview(self, desired: DesiredState,
                baselines: BaselineStore | None = None) -> PlanPreview:
        ipt = iptables_plan.plan(desired, iptables_observe.observe())
        sets = ipset_sync.plan(desired.ipsets, baselines)
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

    def counters(self) -> dict[tuple[str, str], tuple[int, int]]:
        """{(rule_id, backend): (packets, bytes)}; backend is raw/mangle/filter/xdp."""
        out = dict(iptables_observe.counters())
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
        ipset_sync.sync(desired.ipsets, baselines)
        iptables_apply.apply(desired)
        if desired.xdp.interfaces:
            self.xdp.apply(desired.xdp)
        else:
            self.xdp.flush()
        ipset_flush.destroy_unused({s.name for s in desired.ipsets}).raise_if_incomplete()

    def verify(self, desired: DesiredState) -> None:
        """iptables is verified per commit; here: every set exists, XDP is attached."""
        from .errors import KernelError
        live = ipset_observe.observe()
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

    def drift(self, expected: dict[str, Any]) -> list[str]:
        out: list[str] = []
        observed = iptables_observe.observe()
        have_chains: dict[str, list[str]] = {}
        have_hooks: set[str] = set()
        for t in observed.tables:
            for c in t.chains:
                ids: list[str] = []
                for r in c.rules:
                    rid = r.rule_id or "(foreign)"
                    if not ids or ids[-1] != rid:
                        ids.append(rid)
                have_chains[f"{t.family}/{t.table}/{c.name}"] = ids
            for h in t.hooks:
                have_hooks.add(f"{t.family}/{t.table}/{h.kernel_chain}->{h.chain}")
        for key, ids in expected.get("chains", {}).items():
            if key not in have_chains:
                out.append(f"chain {key} is missing")
            elif have_chains[key] != ids:
                out.append(f"chain {key} was changed ({len(have_chains[key])} rule blocks, "
                           f"expected {len(ids)})")
        for key in have_chains.keys() - expected.get("chains", {}).keys():
            out.append(f"chain {key} is not in the recorded generation")
        for hook in expected.get("hooks", []):
            if hook not in have_hooks:
                out.append(f"hook {hook} is missing")
        live = ipset_observe.observe()
        for name in expected.get("ipsets", []):
            if name not in live:
                out.append(f"ipset {name} is missing")
            else:
                manifest = ipset_sync.load_manifest(name)
                if manifest is not None and manifest.entries != live[name].entries:
                    out.append(f"ipset {name} was changed outside nodewall ("
                               f"{live[name].entries} entries, applied {manifest.entries})")
        attached = self.xdp.attached() if expected.get("xdp") else {}
        for iface in expected.get("xdp", []):
            a = attached.get(iface)
            if a is None:
                out.append(f"XDP program on {iface} is detached")
        return out
