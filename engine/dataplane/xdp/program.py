"""Compile bpf/nw_xdp.c with bcc (sources from the nodewall.bpf package through
importlib.resources, never relative to the cwd; sizes as -D flags), and attach /
detach XDP programs with ownership checks."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import socket
from collections.abc import Collection
from dataclasses import dataclass
from importlib import resources

from nodewall.engine.dataplane.xdp import bpf_syscall as bpf
from nodewall.engine.dataplane.xdp.layout import (
    HEADER_FILE,
    PROG_FILE,
    PROG_NAME,
    PROGRAM_MAPS,
    BuildConfig,
)
from nodewall.engine.errors import EnvironmentProblem, KernelError, OwnershipError

INCLUDE = f'#include "{HEADER_FILE}"'


def with_header(text: str) -> str:
    """C source text with the shared header (bpf/nw_xdp.h) inlined."""
    header = resources.files("nodewall.bpf").joinpath(HEADER_FILE).read_text(encoding="utf-8")
    return text.replace(INCLUDE, header)


def source_text() -> str:
    """bpf/nw_xdp.c with the shared header inlined."""
    return with_header(resources.files("nodewall.bpf").joinpath(PROG_FILE)
                       .read_text(encoding="utf-8"))


def build_digest(cfg: BuildConfig) -> str:
    h = hashlib.sha256(source_text().encode())
    h.update(" ".join(cfg.cflags()).encode())
    return h.hexdigest()[:16]


@dataclass
class Compiled:
    """A loaded (not yet attached) program and its maps, as plain fds owned by this
    process (close() them once pinned: the pins keep the objects alive)."""

    prog_fd: int
    map_fds: dict[str, int]

    def close(self) -> None:
        for fd in (self.prog_fd, *self.map_fds.values()):
            try:
                os.close(fd)
            except OSError:
                pass
        self.map_fds = {}


_MSG_MAX = 1 << 16


def _compile_child(sock: socket.socket, cfg: BuildConfig, source: str, func: str,
                   maps: tuple[str, ...]) -> None:
    """In the forked child: compile and load with bcc, send the fds to the parent."""
    try:
        from bcc import BPF  # type: ignore[import-not-found]
    except ImportError as e:
        sock.sendall(json.dumps({"error": "import", "message": str(e)}).encode())
        return
    try:
        b = BPF(text=source, cflags=cfg.cflags())
        fn = b.load_func(func, BPF.XDP)
        fds = [fn.fd, *(b[m].map_fd for m in maps)]
    except Exception as e:  # noqa: BLE001 - bcc raises bare Exception (compile, verifier)
        sock.sendall(json.dumps({"error": "load",
                                 "message": str(e)[:_MSG_MAX // 2]}).encode())
        return
    socket.send_fds(sock, [json.dumps({"ok": len(fds)}).encode()], fds)


def compile_program(cfg: BuildConfig, source: str | None = None, func: str = PROG_NAME,
                    maps: tuple[str, ...] = PROGRAM_MAPS) -> Compiled:
    """Compile and load a program (source: C text, default source_text(); func: its
    function; maps: the maps whose fds come back) in a forked child: bcc/LLVM (~140
    MB of RSS) never enter this process.  The child sends the program's and maps' fds over a
    socketpair (SCM_RIGHTS); the kernel objects live on through those fds after the
    child exits, and this process works on them with raw bpf syscalls."""
    source = source if source is not None else source_text()
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:  # child: never returns
        code = 1
        try:
            parent.close()
            _compile_child(child, cfg, source, func, maps)
            code = 0
        finally:  # anything raised: the parent gets no answer and says so
            os._exit(code)
    child.close()
    fds: list[int] = []
    try:
        msg, fds, _flags, _addr = socket.recv_fds(parent, _MSG_MAX, len(maps) + 1)
        rest = b""
        while msg and not fds:  # an error message may come in pieces
            rest = parent.recv(_MSG_MAX)
            if not rest:
                break
            msg += rest
    finally:
        parent.close()
        os.waitpid(pid, 0)
    try:
        answer = json.loads(msg.decode()) if msg else {"error": "load",
                                                       "message": "the compiler child died"}
    except ValueError:
        answer = {"error": "load", "message": msg.decode(errors="replace")[:500]}
    if answer.get("ok") == len(maps) + 1 and len(fds) == len(maps) + 1:
        return Compiled(fds[0], dict(zip(maps, fds[1:])))
    for fd in fds:
        os.close(fd)
    if answer.get("error") == "import":
        raise EnvironmentProblem("bcc is not importable",
                                 hint="install python3-bpfcc (Debian) and make the venv "
                                      "with --system-site-packages (`make setup`)")
    raise KernelError(f"cannot load the XDP program: {answer.get('message', '?')}",
                      hint="kernel headers for bcc: run `.ci/setup`; "
                           "the verifier log is above")


# ---- attach ----

MODE_FLAGS = {"native": bpf.XDP_FLAGS_DRV_MODE, "generic": bpf.XDP_FLAGS_SKB_MODE}
_MODE_NAMES = {bpf.XDP_ATTACHED_DRV: "native", bpf.XDP_ATTACHED_SKB: "generic",
               bpf.XDP_ATTACHED_HW: "offload", bpf.XDP_ATTACHED_MULTI: "multi"}


@dataclass(frozen=True)
class Attachment:
    iface: str
    ifindex: int
    mode: str  # native / generic / offload / multi
    prog_id: int
    prog_name: str
    owned: bool  # nodewall's: the program id is one nodewall pinned (not its name)


def ifindex(iface: str) -> int:
    try:
        return socket.if_nametoindex(iface)
    except OSError as e:
        raise EnvironmentProblem(f"interface '{iface}' does not exist in this namespace",
                                 hint="check the host endpoint's interface name "
                                      "(`ip link`), or --netns") from e


def query(iface: str, idx: int, owned_ids: Collection[int] = ()) -> Attachment | None:
    """The XDP program on iface; owned when its id is in owned_ids (the programs
    nodewall pinned: a foreign program named nw_… is still foreign)."""
    try:
        q = bpf.xdp_query(idx)
    except OSError as e:
        raise KernelError(f"cannot query XDP on {iface}: {e.strerror}") from e
    if q.attach_mode == bpf.XDP_ATTACHED_NONE:
        return None
    pid = q.prog_id or q.drv_prog_id or q.skb_prog_id or q.hw_prog_id
    info = bpf.prog_info_by_id(pid)
    name = info.name if info else "?"
    return Attachment(iface, idx, _MODE_NAMES.get(q.attach_mode, "?"), pid, name,
                      pid in owned_ids)


def all_attachments(owned_ids: Collection[int] = ()) -> dict[str, Attachment]:
    out: dict[str, Attachment] = {}
    for idx, name in socket.if_nameindex():
        a = query(name, idx, owned_ids)
        if a is not None:
            out[name] = a
    return out


def foreign_error(a: Attachment) -> OwnershipError:
    return OwnershipError(
        f"interface {a.iface} already has XDP program '{a.prog_name}' (id {a.prog_id}, "
        f"{a.mode}) that nodewall does not own; left it alone",
        hint=f"remove it yourself (`ip link set dev {a.iface} xdp off`) if nodewall should "
             "take over, or use backend = \"iptables\" for this profile")


_FALLBACK = (errno.EOPNOTSUPP, errno.EINVAL, 524, errno.ENODEV, errno.EBUSY)


def attach(iface: str, idx: int, prog_fd: int, mode: str,
           current: Attachment | None) -> str:
    """Attach prog_fd to iface; returns the mode it ended up in.  Never replaces a
    program nodewall does not own: a fresh attach uses XDP_FLAGS_UPDATE_IF_NOEXIST,
    a replace XDP_FLAGS_REPLACE with the expected old program (atomic)."""
    if current is not None and not current.owned:
        raise foreign_error(current)
    if current is not None:
        want = current.mode if mode == "auto" else mode
        if want == current.mode and current.mode in MODE_FLAGS:
            old = bpf.prog_fd_by_id(current.prog_id)
            try:
                bpf.xdp_attach(idx, prog_fd, MODE_FLAGS[want], old_prog_fd=old)
            except OSError as e:
                raise KernelError(f"cannot replace nodewall's XDP program on {iface}: "
                                  f"{e.strerror}", hint="someone changed it meanwhile; "
                                  "run apply again") from e
            finally:
                os.close(old)
            return want
        detach(iface, idx, current)
    order = ["native", "generic"] if mode == "auto" else [mode]
    last: OSError | None = None
    for m in order:
        try:
            bpf.xdp_attach(idx, prog_fd, bpf.XDP_FLAGS_UPDATE_IF_NOEXIST | MODE_FLAGS[m])
            return m
        except OSError as e:
            last = e
            if e.errno == errno.EEXIST:
                now = query(iface, idx)
                if now is not None and not now.owned:
                    raise foreign_error(now) from e
            if e.errno not in _FALLBACK:
                break
    assert last is not None
    raise KernelError(f"cannot attach XDP ({'/'.join(order)}) to {iface}: {last.strerror}",
                      hint="xdp_mode = \"generic\" works on any interface; the raw iptables "
                           "rules still apply meanwhile")


def detach(iface: str, idx: int, current: Attachment) -> None:
    """Detach nodewall's program (only if it is still the one we saw)."""
    if not current.owned:
        raise foreign_error(current)
    flags = MODE_FLAGS.get(current.mode, 0)
    try:
        old = bpf.prog_fd_by_id(current.prog_id)
    except OSError:
        return  # already gone
    try:
        bpf.xdp_detach(idx, flags, old_prog_fd=old)
    except OSError as e:
        if e.errno not in (errno.ENOENT, errno.ENODEV):
            raise KernelError(f"cannot detach XDP from {iface}: {e.strerror}") from e
    finally:
        os.close(old)
