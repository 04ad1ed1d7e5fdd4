"""The xtables lock: the same flock(2) on /run/xtables.lock that iptables,
iptables-restore and ebtables take around every change, so nodewall's commits never
interleave with another tool's (Docker, kube-proxy, an operator's shell).

The lock file is not per network namespace: one lock serialises every namespace's
xtables writers, exactly as iptables itself does.
"""
from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nodewall.engine.errors import EnvironmentProblem, KernelError

DEFAULT_LOCK_PATH = Path("/run/xtables.lock")
DEFAULT_TIMEOUT_S = 10.0
_POLL_S = 0.05


def lock_path() -> Path:
    """iptables honours XTABLES_LOCKFILE; so do we, to share the lock it takes."""
    return Path(os.environ.get("XTABLES_LOCKFILE") or DEFAULT_LOCK_PATH)


class XtablesLockTimeout(KernelError):
    """Another process held the xtables lock for longer than we were willing to wait."""


@contextmanager
def xtables_lock(timeout_s: float = DEFAULT_TIMEOUT_S,
                 path: Path | None = None) -> Iterator[None]:
    """Hold the xtables lock for the duration of the block, waiting at most
    `timeout_s` seconds (0 = try once)."""
    path = path or lock_path()
    try:
        fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise EnvironmentProblem(
            f"cannot open the xtables lock {path}: {exc.strerror}",
            hint="run as root; iptables uses the same file") from exc
    try:
        deadline = time.monotonic() + max(0.0, timeout_s)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
                if time.monotonic() >= deadline:
                    raise XtablesLockTimeout(
                        f"another program held the xtables lock {path} for more than "
                        f"{timeout_s:g}s; nothing was changed",
                        hint=f"see who holds it with `fuser -v {path}` (an iptables or "
                             "iptables-restore that hangs?), then retry") from None
                time.sleep(_POLL_S)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
