"""nodewall's pinned XDP objects under /sys/fs/bpf/nodewall/<scope>/: open them by
path (no bcc, no recompiling), read counters, swap tries, write rule tables and the
JSON metadata (slot -> rule id, set bits, trie digests) kept in the pinned nw_meta
array (bpffs holds only BPF objects, so the JSON lives in a map, not a file)."""
from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from nodewall.engine.dataplane.xdp import bpf_syscall as bpf
from nodewall.engine.dataplane.xdp.layout import (
    HOST4_KEY_SIZE,
    HOST6_KEY_SIZE,
    LATER_MAPS,
    LPM4_KEY_SIZE,
    LPM6_KEY_SIZE,
    LPM_VALUE_SIZE,
    MAP_ACT,
    MAP_ACTIVE,
    MAP_CNT,
    MAP_HOST4,
    MAP_HOST6,
    MAP_IFARR,
    MAP_IFCFG,
    MAP_META,
    MAP_SRC4,
    MAP_SRC6,
    META_VALUE_SIZE,
    NW_ACT_MAX,
    NW_GENERATIONS,
    NW_IFARR_SLOTS,
    PIN_PROG,
    PIN_PROG_NEXT,
    PROGRAM_MAPS,
    BuildConfig,
    Counter,
    IfKey,
    ifarr_index,
    structs,
)
from nodewall.engine.errors import EnvironmentProblem, KernelError
from nodewall.engine.system import netns, procfs

BPFFS = Path("/sys/fs/bpf")
PIN_ROOT = BPFFS / "nodewall"
_libc = ctypes.CDLL(None, use_errno=True)
# mount namespace -> the bpffs root seen from it: a fact of the mount namespace for
# the life of the process (a process changes mount namespace rarely, and then finds
# its own entry), so it is kept process-wide rather than per transaction
_root_by_mntns: dict[tuple[int, int] | None, Path] = {}


def _ns_id(path: str | Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def pin_scope() -> str:
    """The pin directory's name for the current network namespace: the --netns name,
    or the /run/netns name of the namespace `ip netns exec NS` started us in, else
    "host" (engine.netns.scope_name)."""
    return netns.scope_name()


def pin_dir(root: Path | None = None) -> Path:
    return (root if root is not None else pin_root()) / pin_scope()


def bpffs_mounted(path: Path = BPFFS) -> bool:
    with open("/proc/self/mounts", encoding="utf-8") as fh:
        return any(line.split()[1:3] == [str(path), "bpf"] for line in fh)


def _bpffs_in(pid: int) -> bool:
    """Is /sys/fs/bpf a bpffs mount in pid's mount namespace?"""
    try:
        with open(f"/proc/{pid}/mountinfo", encoding="utf-8") as fh:
            for line in fh:
                left, _, right = line.partition(" - ")
                if left.split()[4:5] == [str(BPFFS)] and right.split()[:1] == ["bpf"]:
                    return True
    except OSError:
        pass
    return False


def _ancestors(limit: int = 64) -> list[int]:
    out, pid = [], os.getppid()
    for _ in range(limit):
        if pid <= 1 or pid in out:
            break
        out.append(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            pid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return out


def bpffs_root() -> Path:
    """The bpffs to pin into, seen from this process.  `ip netns exec` runs commands
    in a private mount namespace with a fresh /sys, where /sys/fs/bpf is not the
    host's bpffs (a bpffs mounted there would vanish with the command, and its pins
    with it).  Then the host's bpffs is reached through /proc/<pid>/root of a process
    in another mount namespace that has one (PID 1, else the nearest ancestor, e.g.
    the shell that ran `ip netns exec`); otherwise /sys/fs/bpf as it is."""
    mine = _ns_id("/proc/self/ns/mnt")
    if mine not in _root_by_mntns:
        _root_by_mntns[mine] = _find_bpffs_root(mine)
    return _root_by_mntns[mine]


def _find_bpffs_root(mine: tuple[int, int] | None) -> Path:
    local = _ns_id(BPFFS) if bpffs_mounted() else None
    for pid in (1, *_ancestors()):
        other = _ns_id(f"/proc/{pid}/ns/mnt")
        if other is None:
            continue  # not ours to look at (another user, or a sandbox's PID 1)
        if other == mine:
            if pid == 1:
                return BPFFS  # the host's mount namespace is ours
            continue
        if not _bpffs_in(pid):
            continue
        path = Path(f"/proc/{pid}/root") / BPFFS.relative_to("/")
        there = _ns_id(path)
        if there is None or there == local:
            return BPFFS  # the same bpffs is mounted here too
        return path
    return BPFFS


def pin_root() -> Path:
    """nodewall's pin root in the bpffs this process should use (see bpffs_root)."""
    return bpffs_root() / "nodewall"


def ensure_bpffs(root: Path = PIN_ROOT) -> None:
    """Mount bpffs at /sys/fs/bpf when it is not (and root lies there), then make the
    pin directory."""
    if (root.is_relative_to(BPFFS) and not bpffs_mounted()
            and _libc.mount(b"bpf", str(BPFFS).encode(), b"bpf", 0, None) != 0):
        err = ctypes.get_errno()
        raise EnvironmentProblem(f"cannot mount bpffs on {BPFFS}: {os.strerror(err)}",
                                 hint="run as root, or `mount -t bpf bpf /sys/fs/bpf`")
    pin_dir(root).mkdir(parents=True, exist_ok=True)


def _ncpus() -> int:  # the stride of per-CPU values: a shorter buffer would be overrun
    if n := len(procfs.possible_cpus()):
        return n
    raise EnvironmentProblem("cannot read /sys/devices/system/cpu/possible", hint="mount sysfs")


def _u32(v: int = 0) -> ctypes.c_uint32:
    return ctypes.c_uint32(v)


@dataclass
class Pinned:
    """Open fds of nodewall's pinned program and maps in one pin directory."""

    dir: Path
    prog_fd: int
    maps: dict[str, int] = field(default_factory=dict)

    @staticmethod
    def exists(d: Path) -> bool:
        return (d / PIN_PROG).exists() and (d / MAP_META).exists()

    @classmethod
    def open(cls, d: Path) -> Pinned | None:
        if not cls.exists(d):
            return None
        try:
            prog = bpf.obj_get(str(d / PIN_PROG))
            p = cls(d, prog)
            for name in (*PROGRAM_MAPS, MAP_META):
                if not (d / name).exists() and name in LATER_MAPS:
                    continue  # pinned by an older program (recompiled on the next apply)
                p.maps[name] = bpf.obj_get(str(d / name))
        except OSError as e:
            raise KernelError(f"cannot open nodewall's XDP pins in {d}: {e.strerror}",
                              hint="`nodewall flush` removes a broken pin directory") from e
        return p

    def close(self) -> None:
        for fd in (self.prog_fd, *self.maps.values()):
            try:
                os.close(fd)
            except OSError:
                pass
        self.maps.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- metadata ----
    def read_meta(self) -> dict[str, Any]:
        return read_meta_fd(self.maps[MAP_META])

    def write_meta(self, meta: dict[str, Any]) -> None:
        write_meta_fd(self.maps[MAP_META], meta)

    def prog_id(self) -> int:
        return bpf.prog_info(self.prog_fd).id

    # ---- generations ----
    def active_gen(self) -> int:
        v = _u32()
        bpf.map_lookup(self.maps[MAP_ACTIVE], _u32(0), v)
        return v.value & 1

    def set_active(self, gen: int) -> None:
        bpf.map_update(self.maps[MAP_ACTIVE], _u32(0), _u32(gen))

    @staticmethod
    def _outer(family: int, host: bool) -> str:
        if host:
            return MAP_HOST4 if family == 4 else MAP_HOST6
        return MAP_SRC4 if family == 4 else MAP_SRC6

    def inner_fd(self, family: int, gen: int, host: bool = False) -> int | None:
        """A new fd for the trie (host: the host hash) in slot gen (None when the slot
        is empty)."""
        outer = self.maps[self._outer(family, host)]
        mid = _u32()
        if not bpf.map_lookup(outer, _u32(gen), mid):
            return None
        return bpf.map_fd_by_id(mid.value)

    @contextmanager
    def inner_maps(self, family: int, gen: int) -> Iterator[dict[bool, int | None]]:
        """New fds of both source maps of slot gen, {host: fd or None}, closed on exit."""
        fds = {host: self.inner_fd(family, gen, host) for host in (False, True)}
        try:
            yield fds
        finally:
            for fd in fds.values():
                if fd is not None:
                    os.close(fd)

    def set_inner(self, family: int, gen: int, fd: int | None, host: bool = False) -> None:
        outer = self.maps[self._outer(family, host)]
        if fd is None:
            bpf.map_delete(outer, _u32(gen))
        else:
            bpf.map_update(outer, _u32(gen), ctypes.c_uint32(fd))

    # ---- rule tables ----
    # Interfaces with ifindex < NW_IFARR_SLOTS: array nw_ifarr (slot ifindex * 2 + gen,
    # field present = 1); larger ifindexes: hash nw_ifcfg.  An array value is copied in
    # place without a lock, so the backend writes only the INACTIVE generation's slots
    # (and flips nw_active afterwards): a packet never reads a half-written table.
    def _ifarr_size(self) -> int:
        return bpf.map_info(self.maps[MAP_IFARR]).value_size

    def put_iface(self, ifindex: int, gen: int, value: ctypes.Structure) -> None:
        ai = ifarr_index(ifindex, gen)
        if ai is None:
            bpf.map_update(self.maps[MAP_IFCFG], IfKey(ifindex, gen), value)
        else:
            bpf.map_update(self.maps[MAP_IFARR], _u32(ai), value)

    def get_iface(self, cfg: BuildConfig, ifindex: int, gen: int) -> ctypes.Structure | None:
        v = structs(cfg).iface()
        ai = ifarr_index(ifindex, gen)
        if ai is None:
            return v if bpf.map_lookup(self.maps[MAP_IFCFG], IfKey(ifindex, gen), v) else None
        bpf.map_lookup(self.maps[MAP_IFARR], _u32(ai), v)
        return v if v.present else None

    def del_iface(self, ifindex: int, gen: int) -> None:
        ai = ifarr_index(ifindex, gen)
        if ai is None:
            bpf.map_delete(self.maps[MAP_IFCFG], IfKey(ifindex, gen))
        else:
            bpf.map_update(self.maps[MAP_IFARR], _u32(ai),
                            ctypes.create_string_buffer(self._ifarr_size()))

    def iface_keys(self) -> list[tuple[int, int]]:
        """(ifindex, gen) of every rule table, array slots and hash entries."""
        fd = self.maps[MAP_IFCFG]
        out: list[tuple[int, int]] = []
        key, nxt = IfKey(), IfKey()
        first = True
        for _ in range(1 << 16):
            if not bpf.map_next_key(fd, None if first else key, nxt):
                break
            first = False
            ctypes.memmove(ctypes.byref(key), ctypes.byref(nxt), ctypes.sizeof(key))
            out.append((key.ifindex, key.gen))
        if MAP_IFARR in self.maps:
            buf = ctypes.create_string_buffer(self._ifarr_size())
            for ai in range(NW_IFARR_SLOTS * NW_GENERATIONS):
                if (bpf.map_lookup(self.maps[MAP_IFARR], _u32(ai), buf)
                        and buf.raw[4:8] != b"\0\0\0\0"):
                    out.append((ai // NW_GENERATIONS, ai % NW_GENERATIONS))
        return out

    # ---- counters ----
    def _percpu(self, name: str, index: int) -> tuple[int, int]:
        n = _ncpus()
        vals = (Counter * n)()
        if not bpf.map_lookup(self.maps[name], _u32(index), vals):
            return 0, 0
        return sum(v.packets for v in vals), sum(v.bytes for v in vals)

    def slot_counter(self, slot: int) -> tuple[int, int]:
        return self._percpu(MAP_CNT, slot)

    def action_counters(self) -> list[tuple[int, int]]:
        return [self._percpu(MAP_ACT, i) for i in range(NW_ACT_MAX)]

    def zero_slot(self, slot: int) -> None:
        bpf.map_update(self.maps[MAP_CNT], _u32(slot), (Counter * _ncpus())())


def create_meta_map() -> int:
    return bpf.map_create(bpf.ARRAY, 4, META_VALUE_SIZE, 1, 0, MAP_META)


def read_meta_fd(fd: int) -> dict[str, Any]:
    buf = ctypes.create_string_buffer(META_VALUE_SIZE)
    if not bpf.map_lookup(fd, _u32(0), buf):
        return {}
    n = int.from_bytes(buf.raw[:4], "little")
    if not 0 < n <= META_VALUE_SIZE - 4:
        return {}
    return json.loads(buf.raw[4:4 + n].decode())


def write_meta_fd(fd: int, meta: dict[str, Any]) -> None:
    data = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
    if len(data) > META_VALUE_SIZE - 4:
        raise KernelError(f"XDP metadata too large ({len(data)} bytes)",
                          hint="too many rule ids for the XDP metadata map; "
                               "use backend iptables for part of the rules")
    buf = ctypes.create_string_buffer(len(data).to_bytes(4, "little") + data, META_VALUE_SIZE)
    bpf.map_update(fd, _u32(0), buf)


def create_trie(family: int, max_entries: int) -> int:
    ks = LPM4_KEY_SIZE if family == 4 else LPM6_KEY_SIZE
    try:
        return bpf.map_create(bpf.LPM_TRIE, ks, LPM_VALUE_SIZE, max_entries,
                               bpf.F_NO_PREALLOC, f"nw_trie{family}")
    except OSError as e:
        raise KernelError(f"cannot create the IPv{family} XDP trie "
                          f"({max_entries} entries): {e.strerror}",
                          hint="check free memory; lower settings.max_set_entries") from e


def create_hosts(family: int, max_entries: int) -> int:
    """The exact-match hash of a family's host entries (/32 or /128)."""
    ks = HOST4_KEY_SIZE if family == 4 else HOST6_KEY_SIZE
    try:
        return bpf.map_create(bpf.HASH, ks, LPM_VALUE_SIZE, max_entries,
                               bpf.F_NO_PREALLOC, f"nw_hosts{family}")
    except OSError as e:
        raise KernelError(f"cannot create the IPv{family} XDP host hash "
                          f"({max_entries} entries): {e.strerror}",
                          hint="check free memory; lower settings.max_set_entries") from e


def pin_all(d: Path, prog_fd: int, map_fds: dict[str, int]) -> None:
    """Pin (replacing any old pins) the program and maps into d."""
    d.mkdir(parents=True, exist_ok=True)
    for name, fd in ((PIN_PROG, prog_fd), *map_fds.items()):
        path = d / name
        if path.exists():
            path.unlink()
        try:
            bpf.obj_pin(fd, str(path))
        except OSError as e:
            raise KernelError(f"cannot pin {path}: {e.strerror}",
                              hint="is /sys/fs/bpf a bpffs mount?") from e


def pin_program_next(d: Path, prog_fd: int) -> None:
    """Pin a fresh program as PIN_PROG_NEXT before it is attached anywhere."""
    d.mkdir(parents=True, exist_ok=True)
    path = d / PIN_PROG_NEXT
    if path.exists():
        path.unlink()
    try:
        bpf.obj_pin(prog_fd, str(path))
    except OSError as e:
        raise KernelError(f"cannot pin {path}: {e.strerror}",
                          hint="is /sys/fs/bpf a bpffs mount?") from e


def drop_program_next(d: Path) -> None:
    try:
        (d / PIN_PROG_NEXT).unlink()
    except FileNotFoundError:
        pass


def owned_prog_ids(d: Path) -> frozenset[int]:
    """Ids of the XDP programs nodewall pinned in d: its record of which attached
    programs are its own (a program's name proves nothing)."""
    ids = set()
    for name in (PIN_PROG, PIN_PROG_NEXT):
        try:
            fd = bpf.obj_get(str(d / name))
        except OSError:
            continue
        try:
            ids.add(bpf.prog_info(fd).id)
        except OSError:
            pass
        finally:
            os.close(fd)
    return frozenset(ids)


def unpin_all(d: Path) -> None:
    if not d.exists():
        return
    for p in d.iterdir():
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            try:
                p.unlink()
            except OSError as e:
                if e.errno != errno.ENOENT:
                    raise
    try:
        d.rmdir()
        if not any(d.parent.iterdir()):
            d.parent.rmdir()
    except OSError:
        pass
