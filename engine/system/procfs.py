"""The one reader of /proc for processes: state, parent, command name and namespaces
(and of the possible-CPU list in /sys, the stride of per-CPU figures).  Every function
answers for a process that may vanish while it is read (then None)."""
from __future__ import annotations

import functools
import os
from pathlib import Path

PROC = Path("/proc")
CPU_POSSIBLE = Path("/sys/devices/system/cpu/possible")


@functools.cache
def possible_cpus() -> tuple[int, ...]:
    """The CPU numbers the kernel may ever bring up ("0-3,8"): per-CPU BPF map values
    and /proc/net/stat rows have one slot for each.  Fixed at boot, so read once.
    Empty when unreadable."""
    try:
        text = CPU_POSSIBLE.read_text().strip()
    except OSError:
        return ()
    cpus: list[int] = []
    for part in filter(None, text.split(",")):
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return tuple(cpus)


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first)."""
    try:
        return (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def state(pid: int) -> str | None:
    """One letter: R, S, D, Z, T, …; None when there is no such process."""
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def parent(pid: int) -> int | None:
    fields = _stat_fields(pid)
    try:
        return int(fields[1]) if fields else None
    except ValueError:
        return None


def command_name(pid: int) -> str | None:
    try:
        return (PROC / str(pid) / "comm").read_text().strip()
    except OSError:
        return None


def namespace_id(pid: int | str, kind: str) -> tuple[int, int] | None:
    """(device, inode) of /proc/PID/ns/KIND (`kind`: net, mnt, …); PID may be "self"."""
    try:
        st = os.stat(PROC / str(pid) / "ns" / kind)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def pids() -> list[int]:
    return [int(d.name) for d in PROC.iterdir() if d.name.isdigit()]


def is_alive(pid: int | None) -> bool:
    """A process exists and is not a zombie (an exited child not yet reaped)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return state(pid) not in ("Z", None)


def start_time(pid: int) -> int | None:
    """When the process started, in clock ticks since boot (/proc/PID/stat field 22):
    with the boot id, it tells a process from a later one that reuses its PID."""
    fields = _stat_fields(pid)
    try:
        return int(fields[19]) if fields else None
    except (ValueError, IndexError):
        return None


def boot_id() -> str:
    """A random id the kernel makes at every boot."""
    try:
        return (PROC / "sys" / "kernel" / "random" / "boot_id").read_text().strip()
    except OSError:
        return ""


CAP_NET_ADMIN = 12


def has_capability(cap: int) -> bool:
    """Whether this process has capability `cap` in its effective set."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> cap & 1)
    except (OSError, ValueError, IndexError):
        pass
    return False
