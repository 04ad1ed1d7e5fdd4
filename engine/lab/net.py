"""The lab's plumbing: namespaces, the veth pair, addresses and routes, process
cleanup.  Every command names a lab namespace (`ip -n NS` / `ip netns exec NS`), so
nothing here can reach the host's own namespace."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass

from nodewall.engine.errors import EnvironmentProblem, KernelError
from nodewall.engine.system import procfs
from nodewall.engine.system.netns import exists as netns_exists

IFNAME = "eth0"
SERVER_V4, SERVER_V6 = "10.0.0.1", "fd00:77::1"
CLIENT_V4, CLIENT_V6 = "10.0.0.2", "fd00:77::2"
BLOCKED_V4, BLOCKED_V6 = "203.0.113.7", "2001:db8:bad::7"  # the demo blocklist denies these
CONNTRACK_COMMENT = "nodewall lab: conntrack on"


@dataclass(frozen=True)
class LabNames:
    prefix: str

    @property
    def server(self) -> str:
        return f"{self.prefix}-srv"

    @property
    def client(self) -> str:
        return f"{self.prefix}-cli"


def run(*args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    try:
        res = subprocess.run(list(args), check=False, text=True, capture_output=True,
                             timeout=timeout)
    except FileNotFoundError as exc:
        raise EnvironmentProblem(f"`{args[0]}` is not installed",
                                 hint="apt-get install iproute2 iptables redis-server") from exc
    except subprocess.TimeoutExpired as exc:
        raise KernelError(f"`{' '.join(args)}` did not finish in {timeout}s") from exc
    if check and res.returncode != 0:
        raise KernelError(f"`{' '.join(args)}` failed: {res.stderr.strip()}",
                          hint="is this root? `nodewall lab down` cleans a half-made lab")
    return res


def create_pair(names: LabNames) -> None:
    """Both namespaces, a veth pair named eth0 on both sides, addresses, routes, lo up."""
    for ns in (names.server, names.client):
        run("ip", "netns", "add", ns)
    run("ip", "-n", names.server, "link", "add", IFNAME, "type", "veth",
        "peer", "name", IFNAME, "netns", names.client)
    plan = ((names.server, (f"{SERVER_V4}/24", f"{SERVER_V6}/64")),
            (names.client, (f"{CLIENT_V4}/24", f"{CLIENT_V6}/64",
                            f"{BLOCKED_V4}/32", f"{BLOCKED_V6}/128")))
    for ns, cidrs in plan:
        run("ip", "-n", ns, "link", "set", "lo", "up")
        for cidr in cidrs:
            run("ip", "-n", ns, "addr", "add", cidr, "dev", IFNAME,
                *(["nodad"] if ":" in cidr else []))
        run("ip", "-n", ns, "link", "set", IFNAME, "up")
    # the server reaches the blocklisted client addresses over the link; the client
    # routes the server's addresses out of eth0 whichever source it binds
    run("ip", "-n", names.server, "route", "add", f"{BLOCKED_V4}/32", "dev", IFNAME)
    run("ip", "-n", names.server, "-6", "route", "add", f"{BLOCKED_V6}/128", "dev", IFNAME)


def enable_conntrack(ns: str) -> None:
    """Make namespace NS track connections.  Since Linux 4.10 a namespace tracks
    nothing until some rule needs conntrack; this appends one rule per family to
    filter INPUT that only counts (no target) and says who put it there."""
    for tool in ("iptables", "ip6tables"):
        binary = shutil.which(f"{tool}-legacy") or shutil.which(tool)
        if binary is None:
            raise EnvironmentProblem(f"{tool} is not installed", hint="apt-get install iptables")
        run("ip", "netns", "exec", ns, binary, "-w", "5", "-A", "INPUT", "-m", "conntrack",
            "--ctstate", "NEW,ESTABLISHED,RELATED,INVALID,UNTRACKED",
            "-m", "comment", "--comment", CONNTRACK_COMMENT)


def netns_pids(ns: str) -> list[int]:
    """Processes inside namespace NS, never the calling one (`nodewall demo` enters
    the lab's server namespace and tears the lab down from there)."""
    if not netns_exists(ns):
        return []
    res = run("ip", "netns", "pids", ns, check=False)
    return [int(p) for p in res.stdout.split() if p.isdigit() and int(p) != os.getpid()]


def kill_pids(pids: Sequence[int], grace_s: float = 3.0) -> None:
    """SIGTERM, wait up to GRACE_S, then SIGKILL whatever is left."""
    running = []
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
            running.append(pid)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace_s
    while running and time.monotonic() < deadline:
        running = [p for p in running if alive(p)]
        if running:
            time.sleep(0.05)
    for pid in running:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def alive(pid: int) -> bool:
    """Whether PID runs (a zombie does not; our own dead children get reaped)."""
    try:  # reap it if it is our child, so it does not linger as a zombie
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    return procfs.is_alive(pid)


def delete_namespaces(names: LabNames) -> None:
    """Kill every process inside the lab's namespaces, then delete them (idempotent)."""
    for ns in (names.server, names.client):
        kill_pids(netns_pids(ns))
    for ns in (names.server, names.client):
        if netns_exists(ns):
            run("ip", "netns", "del", ns)
