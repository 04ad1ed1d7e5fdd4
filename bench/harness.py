"""Running things in a throwaway lab for the benchmark suite.

- A lab per section (engine.lab: <prefix>-srv / <prefix>-cli, Redis), with a unique
  prefix "nwb<hex>" and always torn down; commands and functions run inside it.
- The nodewall CLI run as an operator would, with its peak RSS.
- Probes from a listed source and the drop counters that prove they were dropped.

Nothing here touches the host's namespace: every command names a namespace we made.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.common import PROBE_SRC, SERVER


# -- namespaces ---------------------------------------------------------------------------
def unique_prefix() -> str:
    return "nwb" + uuid.uuid4().hex[:6]


@contextlib.contextmanager
def lab() -> Iterator:
    """A fresh lab (server with Redis, client), always deleted."""
    from nodewall.engine.lab import lifecycle as lab_mod
    prefix = unique_prefix()
    info = lab_mod.lab_up(prefix, duration=3600, traffic=False)
    try:
        yield info
    finally:
        lab_mod.lab_down(prefix)
        with contextlib.suppress(Exception):
            shutil.rmtree(f"/sys/fs/bpf/nodewall/{info.server_ns}", ignore_errors=True)


def in_ns(ns: str, *argv: str, check: bool = True, timeout: float = 120,
          stdin=None) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], check=check, text=True,
                          capture_output=True, timeout=timeout, stdin=stdin)


def run_in(ns: str, fn: Callable, *args, **kwargs):
    from nodewall.engine.system.netns import run_in_netns
    return run_in_netns(ns, fn, *args, **kwargs)


# -- the CLI --------------------------------------------------------------------------------
def nodewall_argv() -> list[str]:
    script = Path(sys.executable).parent / "nodewall"
    return [str(script)] if script.exists() else [sys.executable, "-m", "nodewall.engine.cli.main"]


@dataclass
class CliRun:
    seconds: float
    returncode: int
    stdout: str
    stderr: str
    peak_rss_mb: float  # VmHWM of the nodewall process itself (polled until exit)
    maxrss_tree_mb: float  # wait4 ru_maxrss: the largest of it and its reaped children
    cpu_s: float = 0.0  # wait4 user + system time of it and its reaped children


def _hwm_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def nodewall_cli(ns: str, state_dir: Path, *args: str, timeout: float = 900,
                 env: dict[str, str] | None = None) -> CliRun:
    """`nodewall --netns NS --state-dir DIR ARGS…` as a subprocess; wall time from
    spawn to exit, peak RSS polled from /proc every 5 ms.  `env`: its environment
    (default: this process's)."""
    argv = [*nodewall_argv(), "--netns", ns, "--state-dir", str(state_dir), *args]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                env=env)
        peak = [0]
        done = threading.Event()

        def poll() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], _hwm_kb(proc.pid))
                done.wait(0.005)

        th = threading.Thread(target=poll, daemon=True)
        th.start()
        deadline = time.monotonic() + timeout
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, ru = os.wait4(proc.pid, 0)
                break
            time.sleep(0.002)
        seconds = time.perf_counter() - t0
        done.set()
        th.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return CliRun(seconds, proc.returncode, out.read(), err.read(), peak[0] / 1024,
                      ru.ru_maxrss / 1024, ru.ru_utime + ru.ru_stime)


def nodewall_must(ns: str, state_dir: Path, *args: str, timeout: float = 900,
                  env: dict[str, str] | None = None) -> CliRun:
    r = nodewall_cli(ns, state_dir, *args, timeout=timeout, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"nodewall {' '.join(args)} exited {r.returncode}: "
                           f"{r.stderr.strip()[-2000:]}")
    return r


# -- probes and drop counters ----------------------------------------------------------------
def _send_udp(src: str, dst: str, count: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((src, 0))
        for _ in range(count):
            with contextlib.suppress(OSError):
                s.sendto(b"nodewall-bench-probe", (dst, 9))
    finally:
        s.close()


def send_probe(client_ns: str, src: str = PROBE_SRC, count: int = 1) -> None:
    run_in(client_ns, _send_udp, src, SERVER, count)


def raw_drop_packets(ns: str, chain: str | None = None, rulenum: int | None = None) -> int:
    """Packets of every DROP rule in the raw table (or of one rule: CHAIN RULENUM)."""
    argv = ["iptables-legacy", "-w", "5", "-t", "raw", "-nvxL"]
    if chain:
        argv.append(chain)
        if rulenum:
            argv.append(str(rulenum))
    res = in_ns(ns, *argv, check=False)
    total = 0
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) > 2 and parts[0].isdigit() and parts[2] == "DROP":
            total += int(parts[0])
    return total


def nft_drop_packets(ns: str) -> int:
    """Packets of every drop rule in the raw-priority chains of `table inet nodewall`
    (terse `list ruleset`: no set element is fetched)."""
    res = in_ns(ns, "nft", "-t", "-j", "list", "ruleset", check=False)
    if res.returncode != 0 or not res.stdout.strip():
        return 0
    total = 0
    for item in json.loads(res.stdout).get("nftables", []):
        rule = item.get("rule")
        if not rule or rule.get("table") != "nodewall" or not rule["chain"].startswith("raw"):
            continue
        exprs = rule.get("expr", [])
        if any("drop" in e for e in exprs):
            total += sum(e["counter"].get("packets", 0) for e in exprs
                         if isinstance(e.get("counter"), dict))
    return total


def _xdp_deny() -> int:
    from nodewall.engine.dataplane.xdp.backend import XdpBackend
    return XdpBackend().action_counters().get("deny", (0, 0))[0]


def xdp_drop_packets(ns: str) -> int:
    return run_in(ns, _xdp_deny)


def until_dropped(client_ns: str, counter: Callable[[], int], before: int,
                  timeout: float = 10.0, src: str = PROBE_SRC) -> float:
    """Probe from SRC until COUNTER exceeds BEFORE; returns the perf_counter time of
    the confirming read.  Raises when nothing is seen dropped within TIMEOUT."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        send_probe(client_ns, src)
        if counter() > before:
            return time.perf_counter()
        time.sleep(0.01)
    raise RuntimeError(f"a probe from {src} was not seen dropped within {timeout:g} s "
                       f"(counter {counter()}, before {before})")
