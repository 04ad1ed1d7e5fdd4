"""The XDP backend: observe / plan / apply / counters / flush / attached, all in the
CURRENT network namespace (callers enter it first).

apply() order (each step leaves the kernel consistent):
  1. refuse foreign XDP programs on any target interface (nothing changed yet);
  2. compile a new program only when none is pinned, the pinned one is too small, or
     it was built from other sources (its recorded build digest differs);
  3. tries: unchanged -> untouched; small change with stable set bits -> delta in
     place, adds (upserts) first; otherwise a fresh trie per family in the inactive
     generation slot, the rule tables written for that generation, then one update of
     nw_active flips every packet to it at once;
  4. attach (native first, generic on fallback) / atomic replace of our own program;
  5. deltas' deletes, detach interfaces no longer wanted, drop the old generation;
  6. metadata (slot -> rule id, bits, digests) into the pinned nw_meta map; verify.
"""
from __future__ import annotations

import ctypes
import hashlib
import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodewall.engine.dataplane.xdp import bpf_syscall as sys_
from nodewall.engine.dataplane.xdp import source_maps as trie
from nodewall.engine.dataplane.xdp.layout import ACT_NAMES, MAP_META, NW_IFARR_SLOTS, BuildConfig
from nodewall.engine.dataplane.xdp.maps import (
    Pinned,
    create_hosts,
    create_meta_map,
    create_trie,
    ensure_bpffs,
    pin_all,
    pin_dir,
    unpin_all,
    write_meta_fd,
)
from nodewall.engine.dataplane.xdp.maps import pin_root as default_pin_root
from nodewall.engine.dataplane.xdp.program import (
    Attachment,
    all_attachments,
    attach,
    build_digest,
    compile_program,
    detach,
    foreign_error,
    ifindex,
)
from nodewall.engine.dataplane.xdp.rule_rows import (
    allocate_slots,
    counted_ids,
    failsafe_entries,
    fits,
    iface_value,
    needed_config,
)
from nodewall.engine.errors import KernelError
from nodewall.engine.nets.baseline import BaselineStore, delta_members, file_delta
from nodewall.engine.plan.desired import XdpInterface, XdpState

DELTA_MAX = 65536  # tries at most this big (old and new) are updated in place
FILE_DELTA_MAX = 65536  # host entries changed in place from nets_file deltas, at most
SCHEMA = 1


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


def _counts(xdp: XdpState, family: int) -> int:
    return sum(s.count_v4 if family == 4 else s.count_v6 for s in xdp.sets)


def _inline(xdp: XdpState, family: int) -> bool:
    return any((":" in c) == (family == 6) for s in xdp.sets for c in s.inline)


def _max_entries(n: int) -> int:
    return max(1024, n + n // 4 + 1024)


def _bits(xdp: XdpState) -> dict[str, str]:
    return {str(s.bit): s.origin for s in xdp.sets}


def _bits_compatible(old: dict[str, str], new: dict[str, str]) -> bool:
    return all(old.get(b) in (None, o) for b, o in new.items())


def _reusable(meta: dict[str, Any], xdp: XdpState) -> BuildConfig | None:
    """The pinned program's build config when it can take xdp as it is: big enough
    and compiled from the same sources (a changed struct layout needs a new program)."""
    if not meta.get("build"):
        return None
    cfg = BuildConfig.from_json(meta["build"])
    if not fits(cfg, xdp) or meta.get("build_digest") != build_digest(cfg):
        return None
    return cfg


def rules_digest(iface: XdpInterface) -> str:
    """What an interface's rule table is built from: unchanged digest, no rewrite."""
    text = repr((iface.rules, iface.failsafe, iface.failsafe_return))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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
        """Every interface of this namespace with an XDP program, ours or not."""
        return all_attachments()

    def observe(self) -> XdpObserved:
        meta = None
        if Pinned.exists(self.dir):
            with Pinned.open(self.dir) as p:  # type: ignore[union-attr]
                meta = p.read_meta()
        return XdpObserved(self.attached(), meta)

    def counters(self) -> dict[str, tuple[int, int]]:
        """rule_id -> (packets, bytes) summed over CPUs (and interfaces)."""
        if not Pinned.exists(self.dir):
            return {}
        with Pinned.open(self.dir) as p:  # type: ignore[union-attr]
            slots = p.read_meta().get("slots", {})
            return {rid: p.slot_counter(s) for rid, s in slots.items()}

    def action_counters(self) -> dict[str, tuple[int, int]]:
        if not Pinned.exists(self.dir):
            return {}
        with Pinned.open(self.dir) as p:  # type: ignore[union-attr]
            return dict(zip(ACT_NAMES, p.action_counters()))

    # ---- plan ----
    def plan(self, xdp: XdpState, observed: XdpObserved) -> list[XdpOp]:
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
        if _reusable(meta, xdp) is None:
            ops.append(XdpOp("load", "program", "compile and load nw_xdp"))
        tries = meta.get("tries", {})
        for fam in (4, 6):
            digest = trie.source_digest(xdp.sets, fam)
            if tries.get(str(fam), {}).get("digest") != digest:
                ops.append(XdpOp("trie", f"ipv{fam}",
                                 f"load up to {_counts(xdp, fam)} source entries"))
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
    def apply(self, xdp: XdpState, baselines: BaselineStore | None = None) -> XdpApplied:
        """baselines: the nets_files as the previous generation applied them; a small
        edit of a big file then changes only the host entries it touches."""
        observed = self.observe()
        ops = self.plan(xdp, observed)
        result = XdpApplied(ops=ops)
        if not xdp.interfaces:
            if ops:
                self.flush()
            return result
        ensure_bpffs(self.pin_root)
        targets = {i.iface: ifindex(i.iface) for i in xdp.interfaces}
        meta = dict(observed.meta or {})
        old_cfg = BuildConfig.from_json(meta["build"]) if meta.get("build") else None
        reuse = _reusable(meta, xdp)
        fresh = reuse is None
        compiled = None
        if reuse is None:
            cfg = needed_config(xdp, old_cfg)
            compiled = compile_program(cfg)
            meta_fd = create_meta_map()
            p = Pinned(self.dir, compiled.prog_fd, {**compiled.map_fds, MAP_META: meta_fd})
            meta = {}
        else:
            cfg = reuse
            p = Pinned.open(self.dir)  # type: ignore[assignment]
        try:
            self._fill(p, cfg, xdp, meta, targets, fresh, baselines)
            new_prog_id = p.prog_id()
            for i in xdp.interfaces:
                cur = observed.attachments.get(i.iface)
                if cur is not None and cur.prog_id == new_prog_id:
                    want_mode = xdp.mode if xdp.mode != "auto" else cur.mode
                    if want_mode == cur.mode:
                        result.modes[i.iface] = cur.mode
                        continue
                result.modes[i.iface] = attach(i.iface, targets[i.iface], p.prog_fd,
                                               xdp.mode, cur)
            for name in meta.get("ifaces", {}):
                if name in targets:
                    continue
                a = observed.attachments.get(name)
                if a is not None and a.owned:
                    detach(name, a.ifindex, a)
            meta["ifaces"] = {i.iface: {"ifindex": targets[i.iface],
                                        "mode": result.modes[i.iface],
                                        "rules_digest": rules_digest(i)}
                              for i in xdp.interfaces}
            meta["prog_id"] = new_prog_id
            meta["schema"] = SCHEMA
            meta["build"] = cfg.to_json()
            meta["build_digest"] = build_digest(cfg)
            meta["mode"] = xdp.mode
            meta["not_accelerated"] = dict(xdp.not_accelerated)
            if fresh:
                write_meta_fd(p.maps[MAP_META], meta)
                pin_all(self.dir, p.prog_fd, p.maps)
            else:
                p.write_meta(meta)
            self._verify(p, xdp, targets)
        finally:
            if compiled is not None:
                os.close(p.maps[MAP_META])
                compiled.close()
            else:
                p.close()
        return result

    def _fill(self, p: Pinned, cfg: BuildConfig, xdp: XdpState, meta: dict[str, Any],
              targets: dict[str, int], fresh: bool,
              baselines: BaselineStore | None = None) -> None:
        old_gen = None if fresh else p.active_gen()
        old_bits = meta.get("bits", {})
        new_bits = _bits(xdp)
        compatible = not fresh and _bits_compatible(old_bits, new_bits)
        old_tries = meta.get("tries", {})
        rule_ids = counted_ids(xdp)
        slots = allocate_slots(rule_ids, meta.get("slots", {}) if not fresh else {},
                               cfg.max_slots)
        for rid, s in slots.items():
            if meta.get("slots", {}).get(rid) != s:
                p.zero_slot(s)
        new_tries: dict[str, dict[str, Any]] = {}
        plans: dict[int, str] = {}  # family -> keep / filedelta / delta / reload / empty
        fchanges: dict[int, tuple[dict[bytes, int], dict[bytes, int], list[bytes]]] = {}
        for fam in (4, 6):
            digest = trie.source_digest(xdp.sets, fam)
            old = old_tries.get(str(fam), {})
            count = _counts(xdp, fam)
            if compatible and old.get("digest") == digest:
                plans[fam] = "keep"
            elif not fresh and count == 0 and not _inline(xdp, fam):
                plans[fam] = "empty"  # nothing of this family: the slot is emptied last
            elif compatible and baselines is not None and (fc := self._file_delta(
                    p, fam, old_gen, xdp, old, baselines)) is not None:  # type: ignore[arg-type]
                plans[fam] = "filedelta"
                fchanges[fam] = fc
            elif (compatible and count <= DELTA_MAX and old.get("count", 0) <= DELTA_MAX
                  and 0 < count <= old.get("max_entries", 0)):
                plans[fam] = "delta"
            else:
                plans[fam] = "reload"
            new_tries[str(fam)] = {"digest": digest, "count": count,
                                   "max_entries": old.get("max_entries", 0),
                                   "sources": trie.sources_record(xdp.sets, fam)}
        contents: dict[int, dict[bytes, int]] = {}
        for fam in (4, 6):
            if plans[fam] == "delta":  # in place only into maps that exist
                contents[fam] = trie.content_dict(trie.iter_batches(xdp.sets, fam), fam)
                if not self._delta_fits(p, fam, old_gen, contents[fam]):  # type: ignore[arg-type]
                    plans[fam] = "reload"
        swap = fresh or "reload" in plans.values()
        if swap:  # the fresh generation gets fresh tries for whatever changed
            plans = {f: ("reload" if h == "delta" else h) for f, h in plans.items()}
        values = {name: iface_value(cfg, next(i for i in xdp.interfaces if i.iface == name),
                                    slots) for name in targets}
        # rule tables are never rewritten in place (an array value is copied without a
        # lock): any change goes to the inactive generation, then one flip
        flip = swap or self._tables_changed(p, cfg, old_gen, targets, values)  # type: ignore[arg-type]
        gen = 0 if fresh else (1 - old_gen if flip else old_gen)  # type: ignore[operator]
        if flip and not fresh:
            for idx, g in p.iface_keys():  # stale tables of two applies ago
                if g == gen:
                    p.del_iface(idx, g)
        pending_deletes: list[tuple[int, tuple[list[bytes], dict[bytes, int]]]] = []
        for fam in (4, 6):
            how = plans[fam]
            if how == "reload":
                self._reload(p, fam, gen, xdp, new_tries[str(fam)])
                continue
            if how == "delta":  # in place in the live maps: adds now, deletes last
                pending_deletes.append((fam, self._delta_adds(p, fam, old_gen,  # type: ignore[arg-type]
                                                              contents[fam])))
            if how == "filedelta":  # the same, for the host entries a nets_file edit touched
                adds, fixups, deletes = fchanges[fam]
                self._write(p, fam, old_gen, adds)  # type: ignore[arg-type]
                pending_deletes.append((fam, (deletes, fixups)))
            if how in ("keep", "delta", "filedelta") and flip and not fresh:
                for host in (False, True):  # the same maps serve the new generation
                    fd = p.inner_fd(fam, old_gen, host)  # type: ignore[arg-type]
                    p.set_inner(fam, gen, fd, host)
                    if fd is not None:
                        os.close(fd)
        for name, idx in targets.items():
            p.put_iface(idx, gen, values[name])
        if flip and not fresh:
            p.set_active(gen)  # every packet from here on sees the new generation
            for idx, g in p.iface_keys():
                if g == old_gen and idx >= NW_IFARR_SLOTS:
                    p.del_iface(idx, g)  # hash entries go (RCU); array slots stay until
                    # the next flip clears them: a packet still on the old gen reads them
            for fam in (4, 6):
                for host in (False, True):
                    p.set_inner(fam, old_gen, None, host)  # type: ignore[arg-type]
        elif fresh:
            p.set_active(0)
        for fam in (4, 6):
            if plans[fam] == "empty":
                for host in (False, True):
                    p.set_inner(fam, gen, None, host)
                new_tries[str(fam)]["max_entries"] = 0
        for fam, (deletes, fixups) in pending_deletes:
            fds = {host: p.inner_fd(fam, gen, host) for host in (False, True)}
            try:
                for b in trie.batches_from_dict(fixups, fam):
                    fd = fds[b.host]
                    assert fd is not None  # checked by _delta_fits
                    trie.update_batch(fd, b.keys, b.values, b.count,
                                      trie.key_size(fam, b.host))
                trie.delete_content(fds[True], fds[False], deletes, fam)
            finally:
                for fd in fds.values():
                    if fd is not None:
                        os.close(fd)
        meta["gen"] = gen
        meta["slots"] = slots
        meta["actions"] = {r.rule_id: r.action for i in xdp.interfaces for r in i.rules}
        meta["actions"].update({rid: "failsafe" for i in xdp.interfaces
                                for _, _, rid in failsafe_entries(i)})
        meta["bits"] = new_bits
        meta["tries"] = new_tries

    @staticmethod
    def _tables_changed(p: Pinned, cfg: BuildConfig, gen: int, targets: dict[str, int],
                        values: dict[str, Any]) -> bool:
        """Does generation gen hold other rule tables than values (or more of them)?"""
        for name, idx in targets.items():
            cur = p.get_iface(cfg, idx, gen)
            if cur is None or bytes(cur) != bytes(values[name]):
                return True
        return any(g == gen and idx not in targets.values() for idx, g in p.iface_keys())

    def _reload(self, p: Pinned, fam: int, gen: int, xdp: XdpState,
                info: dict[str, Any]) -> None:
        """Fresh maps for the family in slot gen: the host hash and the trie, each
        created on its first entry (a family without host entries has no hash, one
        without shorter prefixes no trie: the program skips an empty slot)."""
        count = _counts(xdp, fam)
        for host in (False, True):
            p.set_inner(fam, gen, None, host)
        if count == 0 and not _inline(xdp, fam):
            info["max_entries"] = 0
            return
        size = _max_entries(count)
        fds: dict[bool, int] = {}

        def fd_for(host: bool) -> int:
            if host not in fds:
                fds[host] = create_hosts(fam, size) if host else create_trie(fam, size)
            return fds[host]

        try:
            trie.load(fd_for, trie.iter_batches(xdp.sets, fam), fam)
            for host, fd in fds.items():
                p.set_inner(fam, gen, fd, host)  # one update swaps each map in
        finally:
            for fd in fds.values():
                os.close(fd)
        info["max_entries"] = size

    @staticmethod
    def _write(p: Pinned, fam: int, gen: int, content: dict[bytes, int]) -> None:
        """Upsert LPM-style keyed entries into the live maps of generation gen."""
        if not content:
            return
        fds = {host: p.inner_fd(fam, gen, host) for host in (False, True)}
        try:
            for b in trie.batches_from_dict(content, fam):
                fd = fds[b.host]
                assert fd is not None  # checked by the caller
                trie.update_batch(fd, b.keys, b.values, b.count, trie.key_size(fam, b.host))
        finally:
            for fd in fds.values():
                if fd is not None:
                    os.close(fd)

    @staticmethod
    def _member_changes(xdp: XdpState, fam: int, rec: dict[str, Any],
                        baselines: BaselineStore) -> tuple[dict[int, int], dict[int, int]] | None:
        """Host address -> bits gained, and -> bits lost, between the sources recorded in
        the metadata (rec) and xdp's, from the inline lists and the nets_file deltas
        against the previous generation's copies.  None when that is not known for sure
        or not host entries only (a shorter prefix changes the covering bits of every
        host under it: the caller reloads the family)."""
        w = trie.width(fam)
        if set(rec) != {str(s.bit) for s in xdp.sets}:
            return None
        gained: dict[int, int] = {}
        lost: dict[int, int] = {}
        try:
            for s in xdp.sets:
                r = rec[str(s.bit)]
                files = [str(Path(f).absolute()) for f in s.files]
                if [f for f, _ in r["files"]] != files:
                    return None
                new_inline = {str(ipaddress.ip_network(c, strict=False)) for c in s.inline
                              if (":" in c) == (fam == 6)}
                old_inline = {str(ipaddress.ip_network(c, strict=False)) for c in r["inline"]}
                add, rem = new_inline - old_inline, old_inline - new_inline
                if rem and files:  # a file may still hold it
                    return None
                for path, size in r["files"]:
                    base = baselines.get(Path(path))
                    if base is None or base.copy_path.stat().st_size != size:
                        return None
                    delta = file_delta(base.copy_path, Path(path))
                    if delta is None:
                        return None
                    if delta.unchanged:
                        continue
                    f_add, f_rem = delta_members(delta, fam)
                    if f_rem and len(files) > 1:  # another of the set's files may hold it
                        return None
                    add.update(f_add)
                    rem.update(m for m in f_rem if m not in new_inline)
                rem -= add
                bit = 1 << s.bit
                for members, out in ((add, gained), (rem, lost)):
                    for m in members:
                        net = ipaddress.ip_network(m)
                        if net.prefixlen != w:
                            return None
                        a = int(net.network_address)
                        out[a] = out.get(a, 0) | bit
                if len(gained) + len(lost) > FILE_DELTA_MAX:
                    return None
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return gained, lost

    def _file_delta(self, p: Pinned, fam: int, gen: int, xdp: XdpState, old: dict[str, Any],
                    baselines: BaselineStore
                    ) -> tuple[dict[bytes, int], dict[bytes, int], list[bytes]] | None:
        """The in-place change of the family's host hash for small nets_file / inline
        edits (see _member_changes): (upserts now, each old | new bits; final values
        after the flip; keys deleted after the flip), or None for a full reload.

        A host entry's value is (bits of the sets holding the address itself) | (the
        value of the longest covering prefix in the trie, i.e. its covering bits); no
        prefix changes here, so the trie lookup gives the covering bits, the old entry
        minus them the sets that hold the address exactly (bits also in the covering
        value do not matter: they stay set either way).  An entry that would say no
        more than the trie is deleted: a miss falls through to the trie."""
        rec = old.get("sources")
        if not rec or _counts(xdp, fam) > old.get("max_entries", 0):
            return None
        changes = self._member_changes(xdp, fam, rec, baselines)
        if changes is None:
            return None
        gained, lost = changes
        if not gained and not lost:
            return {}, {}, []
        host_fd, trie_fd = p.inner_fd(fam, gen, True), p.inner_fd(fam, gen, False)
        try:
            if host_fd is None and gained:
                return None  # the generation has no host hash: a reload makes one
            w = trie.width(fam)
            full = w.to_bytes(4, "little")
            hkey = ctypes.create_string_buffer(w // 8)
            lkey = ctypes.create_string_buffer(4 + w // 8)
            val = ctypes.c_uint64()
            adds: dict[bytes, int] = {}
            fixups: dict[bytes, int] = {}
            deletes: list[bytes] = []
            for a in sorted(gained.keys() | lost.keys()):
                raw = a.to_bytes(w // 8, "big")
                cover = 0
                if trie_fd is not None:
                    ctypes.memmove(lkey, full + raw, 4 + w // 8)
                    cover = val.value if sys_.map_lookup(trie_fd, lkey, val) else 0
                old_v = None
                if host_fd is not None:
                    ctypes.memmove(hkey, raw, w // 8)
                    old_v = val.value if sys_.map_lookup(host_fd, hkey, val) else None
                exact = (((old_v or 0) & ~cover) & ~lost.get(a, 0)) | gained.get(a, 0)
                new_v = exact | cover
                k = full + raw
                if exact & ~cover:
                    if old_v != new_v:
                        adds[k] = new_v | (old_v or 0)
                        if old_v is not None and old_v & ~new_v:
                            fixups[k] = new_v
                elif old_v is not None:
                    deletes.append(k)
            return adds, fixups, deletes
        finally:
            for fd in (host_fd, trie_fd):
                if fd is not None:
                    os.close(fd)

    @staticmethod
    def _delta_fits(p: Pinned, fam: int, gen: int, new: dict[bytes, int]) -> bool:
        """Do the maps that new's entries need (host hash, trie) exist in slot gen?"""
        full = (32 if fam == 4 else 128).to_bytes(4, "little")
        need = {k[:4] == full for k in new}
        for host in need:
            fd = p.inner_fd(fam, gen, host)
            if fd is None:
                return False
            os.close(fd)
        return True

    def _delta_adds(self, p: Pinned, fam: int, gen: int,
                    new: dict[bytes, int]) -> tuple[list[bytes], dict[bytes, int]]:
        """Upsert new/changed entries now, each with the OR of its old and new bits (the
        rule tables still live test the old bits, the next generation's the new ones;
        compatible bits never mean two sets).  A shorter prefix added or removed changes
        the covering bits of the host entries under it: new holds them recomputed, so
        they are among the changes.  Return the keys to delete afterwards and the final
        values of the entries that must lose old bits then."""
        fds = {host: p.inner_fd(fam, gen, host) for host in (False, True)}
        try:
            old = trie.dump_content(fds[True], fds[False], fam)
            adds = {k: v | old.get(k, 0) for k, v in new.items() if old.get(k) != v}
            for b in trie.batches_from_dict(adds, fam):
                fd = fds[b.host]
                assert fd is not None  # checked by _delta_fits
                trie.update_batch(fd, b.keys, b.values, b.count, trie.key_size(fam, b.host))
            fixups = {k: v for k, v in new.items() if k in old and old[k] & ~v}
            return [k for k in old if k not in new], fixups
        finally:
            for fd in fds.values():
                if fd is not None:
                    os.close(fd)

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
