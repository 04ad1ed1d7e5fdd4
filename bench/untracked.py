"""Section 4 — the untracked fast path: `redis-benchmark -k 0` (a new TCP connection per
request) from the lab client against the lab's Redis, with profiles/redis-tracked.toml
(ordinary conntrack-tracked policy: the raw tool is conntrack itself) vs
profiles/redis-host.toml (do_not_track Redis), both with the iptables backend.
Rounds alternate the two profiles; the median requests/s is reported, and the server
namespace's conntrack entry count right after each run (the table flushed before).
The client namespace reuses TIME_WAIT ports (tcp_tw_reuse, wide port range: sysctls of
our own namespace) so tens of thousands of short connections fit in one run."""
from __future__ import annotations

import os
import time

from bench import common as c
from bench.common import Row

SECTION = "untracked"
TRACKED = c.REPO / "profiles" / "redis-tracked.toml"
UNTRACKED = c.REPO / "profiles" / "redis-host.toml"


def redis_benchmark(client_ns: str, *, requests: int, clients: int, keepalive: bool,
                    test: str = "ping_inline") -> dict[str, float]:
    """rps, avg/p50/p95/p99/max latency (ms) from `redis-benchmark --csv`."""
    res = c.in_ns(client_ns, "redis-benchmark", "-h", c.SERVER, "-p", "6379", "-n",
                  str(requests), "-c", str(clients), "-k", "1" if keepalive else "0",
                  "-t", test, "--csv", timeout=300)
    lines = [ln for ln in res.stdout.splitlines() if ln.strip()]
    head = [h.strip('"') for h in lines[0].split(",")]
    vals = [v.strip('"') for v in lines[-1].split(",")]
    return {h: float(v) for h, v in zip(head, vals) if h != "test"}


def conntrack_count(ns: str) -> int:
    return int(c.in_ns(ns, "cat", "/proc/sys/net/netfilter/nf_conntrack_count").stdout)


def run(quick: bool, log=print) -> list[Row]:
    requests, rounds = (5_000, 1) if quick else (40_000, 3)
    clients = 20
    out: dict[str, list[tuple[float, int]]] = {"tracked": [], "untracked": []}
    with c.lab() as lab:
        for key, val in (("net.ipv4.tcp_tw_reuse", "1"),
                         ("net.ipv4.ip_local_port_range", "1024 65535")):
            c.in_ns(lab.client_ns, "sysctl", "-q", "-w", f"{key}={val}")
        state = c.workdir() / f"state-{c.unique_prefix()}"
        try:
            for _ in range(rounds):
                for name, prof in (("tracked", TRACKED), ("untracked", UNTRACKED)):
                    c.nodewall_must(lab.server_ns, state, "apply", "--backend", "iptables",
                                    str(prof))
                    c.in_ns(lab.server_ns, "conntrack", "-F", check=False)
                    time.sleep(0.2)
                    r = redis_benchmark(lab.client_ns, requests=requests, clients=clients,
                                        keepalive=False)
                    ct = conntrack_count(lab.server_ns)
                    out[name].append((r["rps"], ct))
                    log(f"    {name:9}: {r['rps']:,.0f} req/s, conntrack entries {ct}")
        finally:
            c.nodewall_cli(lab.server_ns, state, "flush")
    t_rps = c.median([x[0] for x in out["tracked"]])
    u_rps = c.median([x[0] for x in out["untracked"]])
    t_ct = max(x[1] for x in out["tracked"])
    u_ct = max(x[1] for x in out["untracked"])
    cfg = f"{requests:,} requests, {clients} clients, -k 0, PING_INLINE, median of {rounds}"
    return [
        Row(SECTION, "requests/s, new connection per request", "tracked profile (conntrack)",
            t_rps, u_rps, "req/s", goal=1.4, higher_is_better=True, note=cfg,
            why="client, server and both network stacks share the machine's "
                f"{os.cpu_count()} cores: each request is a TCP connect + close in two "
                "stacks plus redis-benchmark's own work, and conntrack's per-connection "
                "insert/confirm/destroy is a small share of that; spread over rounds "
                f"{min(x[0] for x in out['tracked']):,.0f}–"
                f"{max(x[0] for x in out['tracked']):,.0f} req/s tracked",
            extra={"tracked_all": out["tracked"], "untracked_all": out["untracked"]}),
        Row(SECTION, "conntrack entries after a run (server namespace)", "tracked profile",
            float(t_ct), float(u_ct), "entries", goal=0.0,
            note="goal: 0 entries with the untracked profile"),
    ]
