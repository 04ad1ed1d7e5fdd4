"""CPU accounting of one CPU while a benchmark runs: /proc ticks (a CPU's line of
/proc/stat, a process's utime + stime), how busy the whole machine is, and a perf
cpu-clock profile split into server, conntrack, netfilter, iptables and foreign work."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

PERF_PERIOD_NS = 1_000_000  # one cpu-clock sample per ms of CPU
HZ = os.sysconf("SC_CLK_TCK")


def cpu_ticks(cpu: int) -> dict[str, int]:
    """/proc/stat's line for one CPU (USER_HZ ticks)."""
    names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    with open("/proc/stat") as fh:
        for line in fh:
            if line.startswith(f"cpu{cpu} "):
                return dict(zip(names, map(int, line.split()[1:9])))
    raise RuntimeError(f"cpu{cpu} not in /proc/stat")


def proc_ticks(pid: int) -> int:
    """utime + stime of a process (all its threads), clock ticks."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def busy_cores(seconds: float = 0.5) -> float:
    """How many cores' worth of CPU the whole machine used over SECONDS."""
    def snap() -> tuple[int, int]:
        with open("/proc/stat") as fh:
            f = [int(x) for x in fh.readline().split()[1:9]]
        return sum(f) - f[3] - f[4] - f[7], sum(f) - f[7]
    b0, t0 = snap()
    time.sleep(seconds)
    b1, t1 = snap()
    return (os.cpu_count() or 1) * (b1 - b0) / max(1, t1 - t0)


def wait_quiet(limit_s: float = 10.0, threshold: float = 0.25) -> float:
    """Before a run: wait (at most LIMIT_S) until the machine's other work — our lab
    is idle now — stays under THRESHOLD cores; the seconds waited.  Other jobs on a
    shared machine then overlap fewer runs; the perf split still reports what did."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s and busy_cores() > threshold:
        pass
    return time.monotonic() - t0


_CT_FRAME = re.compile(r"^(__)?(nf_conntrack|nf_ct_|nf_confirm|ipv4_confirm|ipv4_conntrack|"
                       r"ipv6_confirm|ipv6_conntrack|init_conntrack|resolve_normal_ct|"
                       r"hash_conntrack|destroy_conntrack|tcp_in_window)")
_NET_RX = ("net_rx_action", "process_backlog", "__netif_receive_skb")


def perf_available() -> bool:
    return shutil.which("perf") is not None


def perf_start(cpu: int, out: Path, own_cpu: int | None = None) -> subprocess.Popen | None:
    """cpu-clock samples of CPU with kernel call chains; perf itself on OWN_CPU."""
    if not perf_available():
        return None
    pin = ["taskset", "-c", str(own_cpu)] if own_cpu is not None else []
    proc = subprocess.Popen([*pin, "perf", "record", "-q", "-o", str(out), "-C", str(cpu), "-g",
                             "-e", "cpu-clock", "-c", str(PERF_PERIOD_NS)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL)
    time.sleep(0.3)
    if proc.poll() is not None:  # perf refused (paranoid setting, no PMU): go without
        return None
    return proc


def perf_stop(proc: subprocess.Popen | None) -> None:
    if proc is None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def perf_split(path: Path) -> dict[str, int] | None:
    """Samples of one profiled CPU: server (redis-server, or network receive in any
    context), conntrack (a conntrack frame on the stack), netfilter (inside any hook),
    iptables (inside a rule walk), ipset (an ipset lookup inside a rule walk),
    nftables (inside an nft chain walk), foreign
    (other processes), idle."""
    if not path.exists():
        return None
    res = subprocess.run(["perf", "script", "-i", str(path), "-F", "comm,cpu,ip,sym"],
                         capture_output=True, text=True, timeout=300, check=False)
    counts = {"server": 0, "conntrack": 0, "netfilter": 0, "iptables": 0, "ipset": 0, "nftables": 0,
              "foreign": 0, "idle": 0, "total": 0}

    def flush(comm: str | None, frames: list[str]) -> None:
        if comm is None:
            return
        counts["total"] += 1
        if any(_CT_FRAME.match(f) for f in frames):
            counts["conntrack"] += 1
        if "nf_hook_slow" in frames:  # every netfilter hook: conntrack's and iptables'
            counts["netfilter"] += 1
        if "ipt_do_table" in frames:  # the rule walk of any iptables table
            counts["iptables"] += 1
            if "ip_set_test" in frames:  # inside it: an ipset lookup (`-m set`)
                counts["ipset"] += 1
        if "nft_do_chain" in frames:  # the rule walk of an nftables base chain
            counts["nftables"] += 1
        if comm == "redis-server" or any(f in _NET_RX for f in frames):
            counts["server"] += 1
        elif comm.startswith("swapper"):
            counts["idle"] += 1
        else:
            counts["foreign"] += 1

    comm: str | None = None
    frames: list[str] = []
    for line in res.stdout.splitlines():
        if not line.strip():
            flush(comm, frames)
            comm, frames = None, []
        elif not line[0].isspace():
            flush(comm, frames)
            m = re.match(r"^(.*?)\s+\[\d+\]", line)
            comm, frames = (m.group(1).strip() if m else line.strip()), []
        else:
            parts = line.split()
            if len(parts) >= 2:
                frames.append(parts[1].split("+")[0])
    flush(comm, frames)
    return counts if counts["total"] else None
