"""The XDP backend: observe / plan / apply / counters / flush / attached, all in the
CURRENT network namespace (callers enter it first).

apply() order (each step leaves the kernel consistent):
  1. refuse foreign XDP programs on any target interface (nothing changed yet);
  2. compile a new program only when none is pinned, the pinned one is too small, or
     it was built from other sources (its recorded build digest differs); a reused
     program's metadata is marked in flight (in_flight) until step 6 rewrites it;
  3. source maps and rule tables (engine.dataplane.xdp.generations): unchanged ->
     untouched; small change with stable set bits -> delta in place, adds (upserts)
     first; otherwise fresh maps per family in the inactive generation slot, the rule
     tables written for that generation, then one update of nw_active flips every
     packet to it at once; deltas' deletes after the flip;
  4. attach (native first, generic on fallback) / atomic replace of our own program;
  5. detach interfaces no longer wanted;
  6. metadata (slot -> rule id, bits, digests) into the pinned nw_meta map; verify.

The modules that plan and fill the maps (family_plan, generations, rule_rows,
sources) are imported when there is an interface to accelerate: an apply without XDP
(the iptables or nftables packet filter alone) does not load them.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodewall.engine.dataplane.xdp.layout import ACT_NAMES, MAP_META, BuildConfig
from nodewall.engine.dataplane.xdp.maps import (
    Pinned,
    create_meta_map,
    drop_program_next,
    ensure_bpffs,
    owned_prog_ids,
    pin_all,
    pin_dir,
    pin_program_next,
    unpin_all,
    write_meta_fd,
)
from nodewall.engine.dataplane.xdp.maps import pin_root as default_pin_root
from nodewall.engine.dataplane.xdp.program import (
    Attachment,
    Compiled,
    all_attachments,
    attach,
    build_digest,
    compile_program,
    detach,
    foreign_error,
    ifindex,
)
from nodewall.engine.errors import KernelError
from nodewall.engine.nets.baseline import BaselineStore
from nodewall.engine.nets.digests import FileDigests
from nodewall.engine.plan.desired import XdpInterface, XdpState

SCHEMA = 1
IN_FLIGHT = "in_flight"  # meta key: an apply was changing the maps (see in_flight)


@dataclass(frozen=True)
class XdpObserved:
    attachments: dict[str, Attachment]
    meta: dict[str, Any] | None  # None: nothing pinned in this namespace

    @property
    def pinned(self) -> bool:
        return self.meta is not None


@dataclass(frozen=True)
class XdpOp:
    kind: str  # load / trie / rules / attach / detach / drop-rules
    target: str
    detail: str = ""

    def describe(self) -> str:
        return f"xdp {self.kind} {self.target}" + (f": {self.detail}" if self.detail else "")


@dataclass
class XdpApplied:
    ops: list[XdpOp] = field(default_factory=list)
    modes: dict[str, str] = field(default_factory=dict)  # iface -> native / generic


@dataclass
class _Program:
    """The program an apply fills: the pinned one, or a new one (compiled) whose fds
    this process owns until they are pinned."""

    pinned: Pinned
    cfg: BuildConfig
    meta: dict[str, Any]  # the metadata as it will be written ({} for a new program)
    compiled: Compiled | None = None

    @property
    def fresh(self) -> bool:
        return self.compiled is not None

    def close(self) -> None:
        if self.compiled is not None:
            os.close(self.pinned.maps[MAP_META])
            self.compiled.close()
        else:
            self.pinned.close()


def _reusable(meta: dict[str, Any], xdp: XdpState) -> BuildConfig | None:
    """The pinned program's build config when it can take xdp as it is: big enough
    and compiled from the same sources (a changed struct layout needs a new program)."""
    from nodewall.engine.dataplane.xdp.rule_rows import fits
    if not meta.get("build"):
        return None
    cfg = BuildConfig.from_json(meta["build"])
    if not fits(cfg, xdp) or meta.get("build_digest") != build_digest(cfg):
        return None
    return cfg


def rules_digest(iface: XdpInterface) -> str:
    """What an interface's rule table is built from: unchanged digest, no rewrite."""
    # Failsafe entries by what they match: their source location (file:line) is not
    # content, and the same profile read from another path must give the same digest.
    text = repr((iface.rules, [str(f) for f in iface.failsafe],
                 [str(f) for f in iface.failsafe_return]))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def in_flight(meta: dict[str, Any]) -> dict[str, Any]:
    """The metadata while an apply changes the pinned maps: marked in flight, so an
    apply killed mid-way is never taken as done (the flip may have happened without
    the record following, or an in-place delta stopped half-way): the next apply
    reloads every family's maps (family_plan) and rewrites the record."""
    return {**meta, IN_FLIGHT: True}


class XdpBackend:
    def __init__(self, pin_root: Path | None = None):
        self._pin_root = Path(pin_root) if pin_root is not None else None

    @property
    def pin_root(self) -> Path:
        """PIN_ROOT, or the host's through /proc/<pid>/root under `ip netns exec`."""
        return self._pin_root if self._pin_root is not None else default_pin_root()

    @property
    def dir(self) -> Path:
        return pin_dir(self.pin_root)

    # ---- read side ----
    def attached(self) -> dict[str, Attachment]:
        """Every interface of this namespace with an XDP program, ours or not (ours:
        a program nodewall pinned in its pin directory)."""
        return all_attachments(owned_prog_ids(self.dir))

    def observe(self) -> XdpObserved:
        meta = None
        if Pinned.exists(self.dir):
            with Pinned.open(self.dir) as p:  # type: ignore[union-attr]
                meta = p.read_meta()
        return XdpObserved(self.attached(), meta)

    def counters(self) -> dict[str, tuple[int, int]]:
        """rule_id -> (packets, bytes) summed over CPUs and interfaces."""
        out: dict[str, tuple[int, int]] = {}
        for (rid, _iface), (pkts, nbytes) in self.iface_counters().items():
            old = out.get(rid, (0, 0))
            out[rid] = (old[0] + pkts, old[1] + nbytes)
        return out

    def iface_counters(self) -> dict[tuple[str, str], tuple[int, int]]:
        """(rule_id, interface) -> (packets, bytes) summed over CPUs."""
        if not Pinned.exists(self.dir):
            return {}
        from nodewall.engine.dataplane.xdp.rule_rows import split_slot_key
        with Pinned.open(self.dir) as p:  # type: ignore[union-attr]
            slots = p.read_meta().get("slots", {})
            return {split_slot_key(key): p.slot_counter(s) for key, s in slots.items()}

    def action_counters(self) -> dict[str, tuple[int, int]]:
        if not Pinned.exists(self.dir):
            return {}
        with Pinned.open(self.dir) as p:  # type: ignore[union-attr]
            return dict(zip(ACT_NAMES, p.action_counters()))

    # ---- plan ----
    def plan(self, xdp: XdpState, observed: XdpObserved,
             digests: FileDigests | None = None) -> list[XdpOp]:
        """digests: the transaction's memo of nets_file hashes (None: hash afresh)."""
        ops: list[XdpOp] = []
        meta = observed.meta or {}
        want = {i.iface for i in xdp.interfaces}
        for name in sorted(want):
            a = observed.attachments.get(name)
            if a is not None and not a.owned:
                raise foreign_error(a)
        if not want:
            if observed.pinned or any(a.owned for a in observed.attachments.values()):
                ops.append(XdpOp("flush", "all", "no interface is accelerated any more"))
            return ops
        from nodewall.engine.dataplane.xdp.family_plan import FAMILIES, set_count
        from nodewall.engine.dataplane.xdp.sources import source_digest
        if _reusable(meta, xdp) is None:
            ops.append(XdpOp("load", "program", "compile and load nw_xdp"))
        tries = {} if meta.get(IN_FLIGHT) else meta.get("tries", {})
        for fam in FAMILIES:
            digest = source_digest(xdp.sets, fam, digests)
            if tries.get(str(fam), {}).get("digest") != digest:
                ops.append(XdpOp("trie", f"ipv{fam}",
                                 f"load up to {set_count(xdp, fam)} source entries"))
        old_ifaces = meta.get("ifaces", {})
        for i in xdp.interfaces:
            if old_ifaces.get(i.iface, {}).get("rules_digest") != rules_digest(i):
                ops.append(XdpOp("rules", i.iface, f"{len(i.rules)} rules, "
                                 f"{len(i.failsafe)} failsafe, "
                                 f"{len(i.failsafe_return)} failsafe return"))
            a = observed.attachments.get(i.iface)
            if a is None or i.iface not in old_ifaces:
                ops.append(XdpOp("attach", i.iface, f"mode {xdp.mode}"))
        for name in sorted(set(old_ifaces) - want):
            ops.append(XdpOp("detach", name))
        return ops

    # ---- apply ----
    def apply(self, xdp: XdpState, baselines: BaselineStore | None = None,
              digests: FileDigests | None = None) -> XdpApplied:
        """baselines: the nets_files as the previous generation applied them; a small
        edit of a big file then changes only the host entries it touches.  digests:
        the transaction's memo of nets_file hashes (its plan made them already)."""
        digests = digests if digests is not None else FileDigests()
        observed = self.observe()
        ops = self.plan(xdp, observed, digests)
        result = XdpApplied(ops=ops)
        if not xdp.interfaces:
            if ops:
                self.flush()
            return result
        from nodewall.engine.dataplane.xdp.generations import fill
        ensure_bpffs(self.pin_root)
        targets = {i.iface: ifindex(i.iface) for i in xdp.interfaces}
        prog = self._program(xdp, dict(observed.meta or {}))
        try:
            if not prog.fresh:  # a kill from here on leaves maps no record describes
                prog.pinned.write_meta(in_flight(prog.meta))
            fill(prog.pinned, prog.cfg, xdp, prog.meta, targets, prog.fresh, baselines,
                 digests)
            new_prog_id = prog.pinned.prog_id()
            result.modes.update(self._attach(prog.pinned, xdp, observed, new_prog_id, targets))
            self._detach_unwanted(prog.meta, observed, targets)
            self._save_meta(prog, xdp, result, new_prog_id, targets)
            self._verify(prog.pinned, xdp, targets)
        finally:
            prog.close()
        return result

    def _program(self, xdp: XdpState, meta: dict[str, Any]) -> _Program:
        """The pinned program when it can take xdp, else a freshly compiled one (its
        maps empty, pinned only once filled)."""
        reuse = _reusable(meta, xdp)
        if reuse is not None:
            return _Program(Pinned.open(self.dir), reuse, meta)  # type: ignore[arg-type]
        from nodewall.engine.dataplane.xdp.rule_rows import needed_config
        old_cfg = BuildConfig.from_json(meta["build"]) if meta.get("build") else None
        cfg = needed_config(xdp, old_cfg)
        compiled = compile_program(cfg)
        pin_program_next(self.dir, compiled.prog_fd)
        meta_fd = create_meta_map()
        p = Pinned(self.dir, compiled.prog_fd, {**compiled.map_fds, MAP_META: meta_fd})
        return _Program(p, cfg, {}, compiled)

    @staticmethod
    def _attach(p: Pinned, xdp: XdpState, observed: XdpObserved, new_prog_id: int,
                targets: dict[str, int]) -> dict[str, str]:
        """Attach (native first, generic on fallback) or atomically replace; an
        interface already running this program in the wanted mode is left as it is."""
        modes: dict[str, str] = {}
        for i in xdp.interfaces:
            cur = observed.attachments.get(i.iface)
            if cur is not None and cur.prog_id == new_prog_id:
                want_mode = xdp.mode if xdp.mode != "auto" else cur.mode
                if want_mode == cur.mode:
                    modes[i.iface] = cur.mode
                    continue
            modes[i.iface] = attach(i.iface, targets[i.iface], p.prog_fd, xdp.mode, cur)
        return modes

    @staticmethod
    def _detach_unwanted(meta: dict[str, Any], observed: XdpObserved,
                         targets: dict[str, int]) -> None:
        for name in meta.get("ifaces", {}):
            if name in targets:
                continue
            a = observed.attachments.get(name)
            if a is not None and a.owned:
                detach(name, a.ifindex, a)

    def _save_meta(self, prog: _Program, xdp: XdpState, result: XdpApplied, new_prog_id: int,
                   targets: dict[str, int]) -> None:
        meta = prog.meta
        meta.pop(IN_FLIGHT, None)
        meta["ifaces"] = {i.iface: {"ifindex": targets[i.iface],
                                    "mode": result.modes[i.iface],
                                    "rules_digest": rules_digest(i)}
                          for i in xdp.interfaces}
        meta["prog_id"] = new_prog_id
        meta["schema"] = SCHEMA
        meta["build"] = prog.cfg.to_json()
        meta["build_digest"] = build_digest(prog.cfg)
        meta["mode"] = xdp.mode
        meta["not_accelerated"] = dict(xdp.not_accelerated)
        if prog.fresh:
            write_meta_fd(prog.pinned.maps[MAP_META], meta)
            pin_all(self.dir, prog.pinned.prog_fd, prog.pinned.maps)
            drop_program_next(self.dir)
        else:
            prog.pinned.write_meta(meta)

    def _verify(self, p: Pinned, xdp: XdpState, targets: dict[str, int]) -> None:
        prog_id = p.prog_id()
        now = self.attached()
        gen = p.active_gen()
        cfg = BuildConfig.from_json(p.read_meta()["build"]) if p.read_meta() else None
        for name, idx in targets.items():
            a = now.get(name)
            if a is None or a.prog_id != prog_id:
                raise KernelError(f"XDP read-back: {name} does not run nodewall's program "
                                  f"{prog_id} (found {a.prog_id if a else 'none'})",
                                  hint="another tool changed XDP meanwhile; run apply again")
            if cfg is not None and p.get_iface(cfg, idx, gen) is None:
                raise KernelError(f"XDP read-back: no rule table for {name}")

    # ---- flush ----
    def flush(self) -> list[str]:
        """Detach nodewall's programs in this namespace and remove its pins.  Foreign
        programs are left alone.  Returns the interfaces detached."""
        done: list[str] = []
        for name, a in self.attached().items():
            if a.owned:
                detach(name, a.ifindex, a)
                done.append(name)
        unpin_all(self.dir)
        return done
