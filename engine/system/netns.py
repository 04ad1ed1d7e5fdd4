"""Network namespaces: enter one for the whole process (`--netns NAME`), or run one
function in a forked child inside a namespace (tests, the lab, benchmarks).

Namespaces are the iproute2 kind: bind mounts under /run/netns/NAME.
"""
from __future__ import annotations

import ctypes
import os
import pickle
import socket
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nodewall.engine.errors import EnvironmentProblem, NetnsNotFound, NodewallError

NETNS_RUN_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)
_current: str | None = None  # name of the namespace this process entered, if any


def netns_path(name: str) -> Path:
    return NETNS_RUN_DIR / name


def exists(name: str) -> bool:
    return netns_path(name).exists()


def enter(name: str) -> None:
    """Move the calling process (thread, strictly: call it before starting threads)
    into network namespace NAME."""
    global _current
    path = netns_path(name)
    if not path.exists():
        raise NetnsNotFound(
            f"network namespace '{name}' does not exist",
            hint="list them with `ip netns list`; the lab's are made by `nodewall lab up`")
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise EnvironmentProblem(f"cannot enter network namespace '{name}': "
                                     f"{os.strerror(err)}", hint="run as root")
    finally:
        os.close(fd)
    _current = name


def current_name() -> str | None:
    """The namespace this process is in: the one entered with enter(), or — when
    started inside one by `ip netns exec NAME` — the /run/netns name whose inode is
    ours.  None for the host's (or an unnamed) namespace."""
    return _current or _detected_name()


def _detected_name() -> str | None:
    try:
        mine = os.stat("/proc/self/ns/net")
    except OSError:
        return None
    try:
        init = os.stat("/proc/1/ns/net")
        if (init.st_dev, init.st_ino) == (mine.st_dev, mine.st_ino):
            return None
    except OSError:  # /proc/1 unreadable (a sandbox): look the name up anyway
        pass
    try:
        names = sorted(os.listdir(NETNS_RUN_DIR))
    except OSError:
        return None
    for name in names:
        try:
            st = os.stat(NETNS_RUN_DIR / name)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino):
            return name
    return None


def scope_name() -> str:
    """A filesystem-safe name for the current namespace ("host" for the host's);
    used to keep bpffs pins, ipset manifests and state per namespace."""
    return current_name() or "host"


def interface_exists(name: str) -> bool:
    """Whether a link called NAME exists in the current namespace (if_nametoindex
    asks the kernel through a socket of this process's namespace)."""
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True


def run_in_netns(name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run fn(*args, **kwargs) in a forked child that entered namespace NAME and
    return its (picklable) result; exceptions are re-raised in the parent."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(rfd)
        code = 0
        try:
            enter(name)
            payload = ("ok", fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - shipped to the parent
            code = 1
            try:
                pickle.dumps(exc)
                payload = ("err", exc)
            except Exception:  # noqa: BLE001
                payload = ("err", NodewallError(f"{type(exc).__name__}: {exc}"))
            payload = (*payload, traceback.format_exc())
        try:
            with os.fdopen(wfd, "wb") as out:
                pickle.dump(payload, out)
        finally:
            os._exit(code)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as inp:
        data = inp.read()
    os.waitpid(pid, 0)
    if not data:
        raise NodewallError(f"child in netns '{name}' died without a result")
    payload = pickle.loads(data)
    if payload[0] == "ok":
        return payload[1]
    exc = payload[1]
    exc.child_traceback = payload[2]
    raise exc
