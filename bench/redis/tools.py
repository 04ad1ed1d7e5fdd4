"""The lab's Redis from the outside: redis-benchmark from the client namespace, the
server namespace's conntrack counters, and pinning each side to its own CPU."""
from __future__ import annotations

import os
import re
import subprocess

from bench import common as c
from bench import harness as h


def redis_benchmark(client_ns: str, *, requests: int, clients: int, keepalive: bool,
                    test: str = "ping_inline", cpu: int | None = None,
                    timeout: float = 300) -> dict[str, float]:
    """rps, avg/p50/p95/p99/max latency (ms) from `redis-benchmark --csv`."""
    pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
    res = h.in_ns(client_ns, *pin, "redis-benchmark", "-h", c.SERVER, "-p", "6379", "-n",
                  str(requests), "-c", str(clients), "-k", "1" if keepalive else "0",
                  "-t", test, "--csv", timeout=timeout)
    lines = [ln for ln in res.stdout.splitlines() if ln.strip()]
    head = [h.strip('"') for h in lines[0].split(",")]
    vals = [v.strip('"') for v in lines[-1].split(",")]
    return {h: float(v) for h, v in zip(head, vals) if h != "test"}


def conntrack_count(ns: str) -> int:
    return int(h.in_ns(ns, "cat", "/proc/sys/net/netfilter/nf_conntrack_count").stdout)


def conntrack_stat(ns: str, field: str = "drop") -> int:
    """The namespace's conntrack statistic FIELD summed over CPUs (`conntrack -S`)."""
    res = h.in_ns(ns, "conntrack", "-S", check=False)
    return sum(int(m) for m in re.findall(rf"\b{field}=(\d+)", res.stdout))


def placement() -> tuple[int, int] | None:
    """(client CPU, server CPU), or None when there are fewer than two CPUs to use."""
    cpus = sorted(os.sched_getaffinity(0))
    return (cpus[0], cpus[-1]) if len(cpus) >= 2 else None


def pin(lab, client_cpu: int, server_cpu: int) -> None:
    """redis-server's threads on SERVER_CPU; each namespace's receive processing (RPS on
    its eth0, a setting of our own veth) on its own side's CPU."""
    subprocess.run(["taskset", "-a", "-p", "-c", str(server_cpu), str(lab.redis_pid)],
                   check=True, capture_output=True, timeout=10)
    for ns, cpu in ((lab.server_ns, server_cpu), (lab.client_ns, client_cpu)):
        h.in_ns(ns, "sh", "-c",
                f"echo {1 << cpu:x} > /sys/class/net/eth0/queues/rx-0/rps_cpus")
