"""Interfaces of the CURRENT network namespace, read over rtnetlink (pyroute2).

Not /sys/class/net: sysfs keeps showing the namespace it was mounted in, which is the
host's even after setns().  One dump of links and one of addresses per call, and the
XDP program names come from the bpf(2) syscall (cached by program id), so this is
cheap enough to call every second.
"""
from __future__ import annotations

import functools
from typing import Any

from nodewall.engine.dataplane.xdp import bpf_syscall as bpf
from nodewall.engine.errors import EnvironmentProblem
from nodewall.engine.observe.report import InterfaceInfo

OWNED_PREFIX = "nw_"

IFF_UP = 0x1
IFF_LOWER_UP = 0x10000

# IFLA_XDP_ATTACHED as decoded by pyroute2 -> our vocabulary
_XDP_MODES = {"xdp": "native", "xdpgeneric": "generic", "xdpoffload": "offload"}
_XDP_MODE_IDS = (("IFLA_XDP_DRV_PROG_ID", "native"), ("IFLA_XDP_SKB_PROG_ID", "generic"),
                 ("IFLA_XDP_HW_PROG_ID", "offload"))

def bpf_prog_name(prog_id: int) -> str | None:
    """The name of loaded BPF program PROG_ID (at most 15 characters, as the kernel
    keeps it), or None when it cannot be read (gone, no CAP_SYS_ADMIN, unknown arch)."""
    try:
        return _known_prog_name(prog_id)
    except LookupError:
        return None  # not remembered: it may be a permission problem that goes away


@functools.lru_cache(maxsize=1024)
def _known_prog_name(prog_id: int) -> str:
    """A program's name never changes and the kernel does not hand out an id again
    within a boot, so a name once read stays right: remembered for the process (the
    TUI asks every tick), the least recently asked forgotten first."""
    try:
        info = bpf.prog_info_by_id(prog_id)
    except OSError as exc:
        raise LookupError(prog_id) from exc
    if info is None:
        raise LookupError(prog_id)
    return info.name


def _state(operstate: str | None, flags: int) -> str:
    if operstate == "UP":
        return "up"
    if not flags & IFF_UP:
        return "down"
    if operstate in ("DOWN", "LOWERLAYERDOWN", "NOTPRESENT", "DORMANT"):
        return "down"
    if flags & IFF_LOWER_UP:
        return "up"  # lo, tun and friends report operstate UNKNOWN while working
    return "unknown"


def _xdp(msg: object) -> tuple[str | None, int | None]:
    """(mode, program id) of the XDP program attached to a link message."""
    xdp = msg.get_attr("IFLA_XDP")  # type: ignore[attr-defined]
    if not xdp:
        return None, None
    attached = xdp.get_attr("IFLA_XDP_ATTACHED")
    if not attached:
        return None, None
    if attached in _XDP_MODES:
        prog_id = xdp.get_attr("IFLA_XDP_PROG_ID")
        return _XDP_MODES[attached], int(prog_id) if prog_id else None
    for attr, mode in _XDP_MODE_IDS:  # "xdpmulti": several modes at once, native first
        prog_id = xdp.get_attr(attr)
        if prog_id:
            return mode, int(prog_id)
    return None, None


def _addresses(ipr: Any) -> dict[int, list[str]]:
    by_index: dict[int, list[str]] = {}
    for msg in ipr.get_addr():
        addr = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
        if addr:
            by_index.setdefault(msg["index"], []).append(f"{addr}/{msg['prefixlen']}")
    for addrs in by_index.values():
        addrs.sort(key=lambda a: (":" in a, a))  # IPv4 first, then IPv6
    return by_index


def _open() -> Any:
    # pyroute2's package import costs ~80 ms (it loads ndb, ipdb, conntrack, ...):
    # only status and the TUI need it, so it is imported here, not by `apply`.
    from pyroute2 import IPRoute
    try:
        return IPRoute()
    except OSError as exc:
        raise EnvironmentProblem(f"cannot open an rtnetlink socket: {exc}",
                                 hint="is this a Linux host with netlink available?") from exc


def list_interfaces() -> list[InterfaceInfo]:
    """Every link of the current namespace, ordered by index."""
    with _open() as ipr:
        links = ipr.get_links()
        addrs = _addresses(ipr)
    out = []
    for msg in links:
        stats = msg.get_attr("IFLA_STATS64") or msg.get_attr("IFLA_STATS") or {}
        mode, prog_id = _xdp(msg)
        prog_name = bpf_prog_name(prog_id) if prog_id else None
        out.append(InterfaceInfo(
            name=msg.get_attr("IFLA_IFNAME"),
            index=msg["index"],
            state=_state(msg.get_attr("IFLA_OPERSTATE"), msg["flags"]),
            mtu=int(msg.get_attr("IFLA_MTU") or 0),
            addresses=tuple(addrs.get(msg["index"], ())),
            rx_bytes=int(stats.get("rx_bytes", 0)),
            tx_bytes=int(stats.get("tx_bytes", 0)),
            rx_packets=int(stats.get("rx_packets", 0)),
            tx_packets=int(stats.get("tx_packets", 0)),
            xdp_mode=mode,
            xdp_prog_id=prog_id,
            xdp_prog_name=prog_name,
            # a guess by name only; status replaces it with the XDP dataplane's answer
            # (the ids of the programs nodewall pinned), which a foreign nw_… cannot fake
            xdp_owned=bool(prog_name and prog_name.startswith(OWNED_PREFIX)),
        ))
    out.sort(key=lambda i: i.index)
    return out
