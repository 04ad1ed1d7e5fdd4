"""The demo lab (and the kernel tests' fixture): two throwaway namespaces,

    <prefix>-srv  eth0 10.0.0.1/24 fd00:77::1/64          Redis on 6379 (v4 and v6)
    <prefix>-cli  eth0 10.0.0.2/24 fd00:77::2/64          bounded traffic generator
                       203.0.113.7/32 2001:db8:bad::7/128  (sources the demo blocklist denies)

joined by a veth pair named eth0 on both sides, so example profiles written for
interface "eth0" apply to the lab server.  The server namespace tracks connections
from the start (lab_net.enable_conntrack) so the conntrack panel has something to show.

lab_up() on a lab that already exists tears it down first and builds a fresh one (new
deadline, no leftovers).  Redis runs until lab_down(); the traffic generator stops by
itself at the deadline.  Pid and log files live under /run/nodewall/<prefix>/.
"""
from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nodewall.engine.dataplane.ipsets.sync import RUN_ROOT as IPSET_RUN_ROOT
from nodewall.engine.dataplane.xdp.maps import PIN_ROOT
from nodewall.engine.errors import EnvironmentProblem, KernelError
from nodewall.engine.lab import net as lab_net
from nodewall.engine.lab import traffic as lab_traffic
from nodewall.engine.lab.net import LabNames
from nodewall.engine.safety.state_dir import default_state_dir
from nodewall.engine.system.netns import exists as netns_exists
from nodewall.engine.system.netns import run_in_netns

RUN_ROOT = Path("/run/nodewall")
REDIS_PORT = 6379
READY_TIMEOUT_S = 10.0
DEFAULT_RATE = 30.0
_PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{0,9}$")


@dataclass(frozen=True)
class LabInfo:
    prefix: str
    server_ns: str
    client_ns: str
    interfaces: tuple[tuple[str, str], ...]  # (namespace, interface)
    server_addresses: tuple[str, ...]
    client_addresses: tuple[str, ...]
    blocked_addresses: tuple[str, ...]  # client sources the demo blocklist denies
    redis_port: int
    redis_pid: int | None  # None when not running
    traffic_pid: int | None  # None when not running (e.g. past the deadline)
    deadline: float  # unix time at which the traffic generator stops
    run_dir: str

    @property
    def namespaces(self) -> tuple[str, str]:
        return (self.server_ns, self.client_ns)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        left = max(0, int(self.deadline - time.time()))
        head = (f"lab {self.prefix}: server {self.server_ns} "
                f"({', '.join(self.server_addresses)}), client {self.client_ns} "
                f"({', '.join(self.client_addresses)})")
        procs = (f"  redis :{self.redis_port} pid {self.redis_pid or 'not running'}; traffic "
                 f"pid {self.traffic_pid or 'not running'}, {left}s left; files in {self.run_dir}")
        return "\n".join((head, "  blocklisted client sources: "
                          + ", ".join(self.blocked_addresses), procs))


def _names(prefix: str) -> LabNames:
    if not _PREFIX_RE.match(prefix):
        raise EnvironmentProblem(
            f"bad lab prefix {prefix!r}",
            hint="1-10 characters, lower-case letters and digits, starting with a letter")
    return LabNames(prefix)


def run_dir(prefix: str) -> Path:
    return RUN_ROOT / prefix


def _read_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if lab_net.alive(pid) else None  # zombies count as gone


def _start_redis(names: LabNames, rdir: Path) -> None:
    if shutil.which("redis-server") is None:
        raise EnvironmentProblem("redis-server is not installed",
                                 hint="apt-get install redis-server")
    lab_net.run("ip", "netns", "exec", names.server, "redis-server",
                "--port", str(REDIS_PORT), "--bind", "0.0.0.0 ::", "--protected-mode", "no",
                "--save", "", "--appendonly", "no", "--daemonize", "yes",
                "--dir", str(rdir), "--pidfile", str(rdir / "redis.pid"),
                "--logfile", str(rdir / "redis.log"))


def _redis_answers(host: str, port: int, deadline: float) -> bool:
    """PING until PONG or the deadline (runs inside the client namespace)."""
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1) as sock:
                sock.sendall(b"*1\r\n$4\r\nPING\r\n")
                if sock.recv(64).startswith(b"+PONG"):
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def _start_traffic(names: LabNames, rdir: Path, duration: int, rate: float) -> int:
    log = open(rdir / "traffic.log", "ab")  # noqa: SIM115 - handed to the child
    try:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", names.client, sys.executable, "-m",
             "nodewall.engine.lab.traffic", "--duration", str(duration),
             "--rate", str(rate), "--port", str(REDIS_PORT),
             "--pidfile", str(rdir / "traffic.pid")],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    finally:
        log.close()
    # `ip netns exec` execs the interpreter: the pid stays the same
    (rdir / "traffic.pid").write_text(f"{proc.pid}\n")
    return proc.pid


def lab_up(prefix: str = "nwlab", duration: int = 1800, *, traffic: bool = True,
           rate: float = DEFAULT_RATE) -> LabInfo:
    """Build the lab (tearing an existing one with this prefix down first).  The
    traffic generator runs DURATION seconds at RATE ops/s; traffic=False leaves the
    client quiet (tests that send their own packets)."""
    if duration <= 0:
        raise EnvironmentProblem("lab duration must be positive", hint="--duration 1800")
    if not 0 < rate <= lab_traffic.MAX_RATE:
        raise EnvironmentProblem(f"lab traffic rate must be in (0, {lab_traffic.MAX_RATE:g}]",
                                 hint=f"the default is {DEFAULT_RATE:g} ops/s")
    names = _names(prefix)
    lab_down(prefix)
    rdir = run_dir(prefix)
    rdir.mkdir(parents=True, exist_ok=True)
    try:
        lab_net.create_pair(names)
        lab_net.enable_conntrack(names.server)
        _start_redis(names, rdir)
        if not run_in_netns(names.client, _redis_answers, lab_net.SERVER_V4, REDIS_PORT,
                            time.monotonic() + READY_TIMEOUT_S):
            raise KernelError(f"redis in {names.server} did not answer within "
                              f"{READY_TIMEOUT_S:g}s", hint=f"see {rdir / 'redis.log'}")
        deadline = time.time() + duration
        if traffic:
            _start_traffic(names, rdir, duration, rate)
        (rdir / "lab.json").write_text(json.dumps({"deadline": deadline,
                                                   "duration": duration}))
    except BaseException:
        lab_down(prefix)
        raise
    info = lab_status(prefix)
    assert info is not None
    return info


def lab_for_demo(prefix: str, choose: Callable[[LabInfo], str]
                 ) -> tuple[LabInfo | None, bool]:
    """(the lab, whether this call started it) for `nodewall demo`: a lab already
    running is never replaced silently; choose(running) answers "reuse", "new"
    (replace it) or "quit" (lab None)."""
    running = lab_status(prefix)
    if running is not None:
        answer = choose(running)
        if answer == "reuse":
            return running, False
        if answer != "new":
            return None, False
    return lab_up(prefix), True


def lab_status(prefix: str = "nwlab") -> LabInfo | None:
    """The lab with this prefix, or None when its namespaces do not exist."""
    names = _names(prefix)
    if not (netns_exists(names.server) and netns_exists(names.client)):
        return None
    rdir = run_dir(prefix)
    try:
        deadline = float(json.loads((rdir / "lab.json").read_text())["deadline"])
    except (OSError, ValueError, KeyError):
        deadline = 0.0
    return LabInfo(
        prefix=prefix, server_ns=names.server, client_ns=names.client,
        interfaces=((names.server, lab_net.IFNAME), (names.client, lab_net.IFNAME)),
        server_addresses=(f"{lab_net.SERVER_V4}/24", f"{lab_net.SERVER_V6}/64"),
        client_addresses=(f"{lab_net.CLIENT_V4}/24", f"{lab_net.CLIENT_V6}/64"),
        blocked_addresses=(f"{lab_net.BLOCKED_V4}/32", f"{lab_net.BLOCKED_V6}/128"),
        redis_port=REDIS_PORT,
        redis_pid=_read_pid(rdir / "redis.pid"),
        traffic_pid=_read_pid(rdir / "traffic.pid"),
        deadline=deadline, run_dir=str(rdir))


def lab_down(prefix: str = "nwlab") -> None:
    """Stop the lab's processes and delete its namespaces; quiet when there is none."""
    names = _names(prefix)
    rdir = run_dir(prefix)
    pids = [p for p in (_read_pid(rdir / "traffic.pid"), _read_pid(rdir / "redis.pid")) if p]
    # only processes that really live in the lab's namespaces (a stale pid file may
    # name a recycled pid of somebody else's process)
    inside = set(lab_net.netns_pids(names.server)) | set(lab_net.netns_pids(names.client))
    lab_net.kill_pids([p for p in pids if p in inside])
    lab_net.delete_namespaces(names)
    if rdir.exists():
        shutil.rmtree(rdir, ignore_errors=True)
    for ns in (names.server, names.client):
        forget_namespace(ns)


def forget_namespace(ns: str) -> None:
    """Drop what nodewall keeps outside a namespace that is gone: its bpffs pins
    (which would keep the XDP program and maps alive), its ipset manifests and its
    default state dir (generations that no longer describe any kernel)."""
    for path in (PIN_ROOT / ns, IPSET_RUN_ROOT / ns, default_state_dir(ns)):
        shutil.rmtree(path, ignore_errors=True)
