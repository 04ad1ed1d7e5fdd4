"""Raw bpf(2) syscalls through ctypes, so that any process (status, the TUI, the
next apply) can open nodewall's pins and read or update its maps without bcc and
without recompiling.  XDP attach/query go through libbpf's netlink helpers.

Every call raises OSError(errno) on failure; callers turn it into KernelError
with a hint.  ctypes releases the GIL during the syscall, so a thread can feed
the kernel while another parses the next chunk.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from dataclasses import dataclass

# __NR_bpf per architecture (uname's machine, what platform.machine() answers; the
# platform module costs an import of ~5 ms); None: unknown, every call fails ENOSYS
SYSCALL_NUMBERS = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361,
                   "s390x": 351, "i686": 357, "armv7l": 386}
SYS_BPF = SYSCALL_NUMBERS.get(os.uname().machine)
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

# commands
MAP_CREATE, MAP_LOOKUP, MAP_UPDATE, MAP_DELETE, MAP_GET_NEXT_KEY = 0, 1, 2, 3, 4
PROG_LOAD = 5
OBJ_PIN, OBJ_GET = 6, 7
PROG_TEST_RUN = 10
PROG_GET_FD_BY_ID, MAP_GET_FD_BY_ID = 13, 14
OBJ_GET_INFO_BY_FD = 15
MAP_UPDATE_BATCH = 26

# map types and flags
HASH, ARRAY, LPM_TRIE = 1, 2, 11
F_NO_PREALLOC = 1
ANY = 0
F_TEST_XDP_LIVE_FRAMES = 1 << 1

# XDP attach flags (linux/if_link.h)
XDP_FLAGS_UPDATE_IF_NOEXIST = 1 << 0
XDP_FLAGS_SKB_MODE = 1 << 1
XDP_FLAGS_DRV_MODE = 1 << 2
XDP_FLAGS_REPLACE = 1 << 4
XDP_ATTACHED_NONE, XDP_ATTACHED_DRV, XDP_ATTACHED_SKB, XDP_ATTACHED_HW, XDP_ATTACHED_MULTI = (
    0, 1, 2, 3, 4)


class _MapCreate(ctypes.Structure):
    _fields_ = [("map_type", ctypes.c_uint32), ("key_size", ctypes.c_uint32),
                ("value_size", ctypes.c_uint32), ("max_entries", ctypes.c_uint32),
                ("map_flags", ctypes.c_uint32), ("inner_map_fd", ctypes.c_uint32),
                ("numa_node", ctypes.c_uint32), ("map_name", ctypes.c_char * 16)]


class _Elem(ctypes.Structure):
    _fields_ = [("map_fd", ctypes.c_uint32), ("_pad", ctypes.c_uint32),
                ("key", ctypes.c_uint64), ("value", ctypes.c_uint64), ("flags", ctypes.c_uint64)]


class _Batch(ctypes.Structure):
    _fields_ = [("in_batch", ctypes.c_uint64), ("out_batch", ctypes.c_uint64),
                ("keys", ctypes.c_uint64), ("values", ctypes.c_uint64),
                ("count", ctypes.c_uint32), ("map_fd", ctypes.c_uint32),
                ("elem_flags", ctypes.c_uint64), ("flags", ctypes.c_uint64)]


class _Obj(ctypes.Structure):
    _fields_ = [("pathname", ctypes.c_uint64), ("bpf_fd", ctypes.c_uint32),
                ("file_flags", ctypes.c_uint32)]


class _ById(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint32), ("next_id", ctypes.c_uint32),
                ("open_flags", ctypes.c_uint32)]


class _Info(ctypes.Structure):
    _fields_ = [("bpf_fd", ctypes.c_uint32), ("info_len", ctypes.c_uint32),
                ("info", ctypes.c_uint64)]


class _TestRun(ctypes.Structure):
    _fields_ = [("prog_fd", ctypes.c_uint32), ("retval", ctypes.c_uint32),
                ("data_size_in", ctypes.c_uint32), ("data_size_out", ctypes.c_uint32),
                ("data_in", ctypes.c_uint64), ("data_out", ctypes.c_uint64),
                ("repeat", ctypes.c_uint32), ("duration", ctypes.c_uint32),
                ("ctx_size_in", ctypes.c_uint32), ("ctx_size_out", ctypes.c_uint32),
                ("ctx_in", ctypes.c_uint64), ("ctx_out", ctypes.c_uint64),
                ("flags", ctypes.c_uint32), ("cpu", ctypes.c_uint32),
                ("batch_size", ctypes.c_uint32)]


class ProgInfoRaw(ctypes.Structure):
    _fields_ = [("type", ctypes.c_uint32), ("id", ctypes.c_uint32), ("tag", ctypes.c_uint8 * 8),
                ("jited_prog_len", ctypes.c_uint32), ("xlated_prog_len", ctypes.c_uint32),
                ("jited_prog_insns", ctypes.c_uint64), ("xlated_prog_insns", ctypes.c_uint64),
                ("load_time", ctypes.c_uint64), ("created_by_uid", ctypes.c_uint32),
                ("nr_map_ids", ctypes.c_uint32), ("map_ids", ctypes.c_uint64),
                ("name", ctypes.c_char * 16)]


class MapInfoRaw(ctypes.Structure):
    _fields_ = [("type", ctypes.c_uint32), ("id", ctypes.c_uint32),
                ("key_size", ctypes.c_uint32), ("value_size", ctypes.c_uint32),
                ("max_entries", ctypes.c_uint32), ("map_flags", ctypes.c_uint32),
                ("name", ctypes.c_char * 16)]


def _addr(obj) -> int:
    return ctypes.addressof(obj) if obj is not None else 0


def syscall(cmd: int, attr: ctypes.Structure | ctypes.Array) -> int:
    """bpf(cmd, &attr, sizeof(attr)); raises OSError(errno)."""
    if SYS_BPF is None:
        raise OSError(errno.ENOSYS, f"no bpf(2) syscall number known for {os.uname().machine}")
    ret = _libc.syscall(SYS_BPF, cmd, ctypes.byref(attr), ctypes.sizeof(attr))
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"bpf cmd {cmd}: {os.strerror(err)}")
    return ret


def map_create(map_type: int, key_size: int, value_size: int, max_entries: int,
               flags: int = 0, name: str = "", inner_map_fd: int = 0) -> int:
    attr = _MapCreate(map_type, key_size, value_size, max_entries, flags, inner_map_fd, 0,
                      name.encode()[:15])
    return syscall(MAP_CREATE, attr)


def _elem(cmd: int, fd: int, key, value=None, flags: int = 0) -> int:
    return syscall(cmd, _Elem(fd, 0, _addr(key), _addr(value), flags))


def map_lookup(fd: int, key, value) -> bool:
    """Fill value; False when the key is absent."""
    try:
        _elem(MAP_LOOKUP, fd, key, value)
        return True
    except OSError as e:
        if e.errno == errno.ENOENT:
            return False
        raise


def map_update(fd: int, key, value, flags: int = ANY) -> None:
    _elem(MAP_UPDATE, fd, key, value, flags)


def map_delete(fd: int, key) -> bool:
    try:
        _elem(MAP_DELETE, fd, key)
        return True
    except OSError as e:
        if e.errno == errno.ENOENT:
            return False
        raise


def map_next_key(fd: int, key, next_key) -> bool:
    """key None = first key.  False at the end."""
    try:
        _elem(MAP_GET_NEXT_KEY, fd, key, next_key)
        return True
    except OSError as e:
        if e.errno == errno.ENOENT:
            return False
        raise


def map_update_batch(fd: int, keys_addr: int, values_addr: int, count: int,
                     elem_flags: int = ANY) -> tuple[int, int]:
    """BPF_MAP_UPDATE_BATCH over raw buffers.  Returns (processed, errno); errno 0
    when all count entries went in."""
    attr = _Batch(0, 0, keys_addr, values_addr, count, fd, elem_flags, 0)
    try:
        syscall(MAP_UPDATE_BATCH, attr)
        return attr.count, 0
    except OSError as e:
        return attr.count, e.errno or errno.EIO


def obj_pin(fd: int, path: str) -> None:
    p = ctypes.create_string_buffer(path.encode())
    syscall(OBJ_PIN, _Obj(ctypes.addressof(p), fd, 0))


def obj_get(path: str) -> int:
    p = ctypes.create_string_buffer(path.encode())
    return syscall(OBJ_GET, _Obj(ctypes.addressof(p), 0, 0))


def prog_fd_by_id(prog_id: int) -> int:
    return syscall(PROG_GET_FD_BY_ID, _ById(prog_id, 0, 0))


def map_fd_by_id(map_id: int) -> int:
    return syscall(MAP_GET_FD_BY_ID, _ById(map_id, 0, 0))


@dataclass(frozen=True)
class ProgInfo:
    id: int
    name: str
    tag: str
    type: int


@dataclass(frozen=True)
class MapInfo:
    id: int
    name: str
    type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int


def prog_info(fd: int) -> ProgInfo:
    raw = ProgInfoRaw()
    syscall(OBJ_GET_INFO_BY_FD, _Info(fd, ctypes.sizeof(raw), ctypes.addressof(raw)))
    return ProgInfo(raw.id, raw.name.decode(errors="replace"), bytes(raw.tag).hex(), raw.type)


def map_info(fd: int) -> MapInfo:
    raw = MapInfoRaw()
    syscall(OBJ_GET_INFO_BY_FD, _Info(fd, ctypes.sizeof(raw), ctypes.addressof(raw)))
    return MapInfo(raw.id, raw.name.decode(errors="replace"), raw.type, raw.key_size,
                   raw.value_size, raw.max_entries, raw.map_flags)


def prog_info_by_id(prog_id: int) -> ProgInfo | None:
    try:
        fd = prog_fd_by_id(prog_id)
    except OSError:
        return None
    try:
        return prog_info(fd)
    finally:
        os.close(fd)


def prog_test_run(prog_fd: int, data: bytes, repeat: int = 1, flags: int = 0,
                  batch_size: int = 0, ctx: ctypes.Structure | None = None) -> tuple[int, int]:
    """BPF_PROG_TEST_RUN; returns (retval, average duration in ns)."""
    buf = ctypes.create_string_buffer(data, len(data))
    out = ctypes.create_string_buffer(len(data) + 256) if not flags else None
    attr = _TestRun(prog_fd, 0, len(data), len(out) if out is not None else 0,
                    ctypes.addressof(buf), _addr(out), repeat, 0,
                    ctypes.sizeof(ctx) if ctx is not None else 0, 0, _addr(ctx), 0,
                    flags, 0, batch_size)
    syscall(PROG_TEST_RUN, attr)
    return attr.retval, attr.duration


class XdpMd(ctypes.Structure):
    """struct xdp_md, the ctx for XDP test runs (ingress_ifindex selects the table)."""

    _fields_ = [("data", ctypes.c_uint32), ("data_end", ctypes.c_uint32),
                ("data_meta", ctypes.c_uint32), ("ingress_ifindex", ctypes.c_uint32),
                ("rx_queue_index", ctypes.c_uint32), ("egress_ifindex", ctypes.c_uint32)]


# ---- XDP attach / query (netlink) through libbpf ----

class _XdpAttachOpts(ctypes.Structure):
    _fields_ = [("sz", ctypes.c_size_t), ("old_prog_fd", ctypes.c_int)]


class _XdpQueryOpts(ctypes.Structure):
    _fields_ = [("sz", ctypes.c_size_t), ("prog_id", ctypes.c_uint32),
                ("drv_prog_id", ctypes.c_uint32), ("hw_prog_id", ctypes.c_uint32),
                ("skb_prog_id", ctypes.c_uint32), ("attach_mode", ctypes.c_uint8)]  # libbpf 1.1


# libbpf, loaded on first use and kept for the process (a shared library, like _libc)
_libbpf: ctypes.CDLL | None = None


def libbpf() -> ctypes.CDLL:
    global _libbpf
    if _libbpf is None:
        name = ctypes.util.find_library("bpf") or "libbpf.so.1"
        _libbpf = ctypes.CDLL(name, use_errno=True)
        _libbpf.bpf_xdp_attach.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_uint32,
                                           ctypes.POINTER(_XdpAttachOpts)]
        _libbpf.bpf_xdp_detach.argtypes = [ctypes.c_int, ctypes.c_uint32,
                                           ctypes.POINTER(_XdpAttachOpts)]
        _libbpf.bpf_xdp_query.argtypes = [ctypes.c_int, ctypes.c_int,
                                          ctypes.POINTER(_XdpQueryOpts)]
    return _libbpf


def _check(ret: int, what: str) -> None:
    if ret < 0:
        raise OSError(-ret, f"{what}: {os.strerror(-ret)}")


def xdp_attach(ifindex: int, prog_fd: int, flags: int, old_prog_fd: int = -1) -> None:
    opts = _XdpAttachOpts(ctypes.sizeof(_XdpAttachOpts), max(old_prog_fd, 0))
    if old_prog_fd >= 0:
        flags |= XDP_FLAGS_REPLACE
    _check(libbpf().bpf_xdp_attach(ifindex, prog_fd, flags, ctypes.byref(opts)), "xdp attach")


def xdp_detach(ifindex: int, flags: int, old_prog_fd: int = -1) -> None:
    opts = _XdpAttachOpts(ctypes.sizeof(_XdpAttachOpts), max(old_prog_fd, 0))
    if old_prog_fd >= 0:
        flags |= XDP_FLAGS_REPLACE
    _check(libbpf().bpf_xdp_detach(ifindex, flags, ctypes.byref(opts)), "xdp detach")


@dataclass(frozen=True)
class XdpQuery:
    prog_id: int  # the single attached program (0 = none)
    drv_prog_id: int
    skb_prog_id: int
    hw_prog_id: int
    attach_mode: int


def xdp_query(ifindex: int) -> XdpQuery:
    opts = _XdpQueryOpts(ctypes.sizeof(_XdpQueryOpts))
    _check(libbpf().bpf_xdp_query(ifindex, 0, ctypes.byref(opts)), "xdp query")
    return XdpQuery(prog_id=opts.prog_id, drv_prog_id=opts.drv_prog_id,
                    skb_prog_id=opts.skb_prog_id, hw_prog_id=opts.hw_prog_id,
                    attach_mode=opts.attach_mode)
