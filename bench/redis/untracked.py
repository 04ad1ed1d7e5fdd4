"""Section 4 — the untracked fast path: `redis-benchmark -k 0` (a new TCP connection per
request) from the lab client against the lab's Redis, with profiles/redis-tracked.toml
(ordinary conntrack-tracked policy: the raw tool is conntrack itself) vs
profiles/redis-host.toml (do_not_track Redis), both with the iptables backend, then a
few rounds of the same on the nftables packet filter (`--backend nftables`).

Method (what makes the comparison fair on a small shared machine):
- Pinning.  redis-server (all its threads) runs on one CPU ("the server CPU"),
  redis-benchmark on another, and RPS on each namespace's eth0 steers that side's
  receive processing to its own CPU.  Without RPS a veth delivers a packet on the
  *sender's* CPU, so the server's conntrack work for client->server packets would run
  on the client's CPU; with it, the server CPU carries Redis plus the server's whole
  network stack, conntrack included.  (Needs 2 CPUs; with 1 nothing is pinned.)
- Rounds alternate the profiles in ABBA order (T U, U T, T U, ...) so a slow drift of
  the machine's other load falls on both; each run starts from a flushed conntrack
  table (conntrack -F in the server namespace).  Reported: the median requests/s of
  each profile, the min-max spread, and the median of the per-round untracked/tracked
  ratios (paired, so less sensitive to other jobs).  The headline medians are taken
  over the "quiet" runs (other jobs <= 5 % of the server CPU, from the perf split)
  when each profile has two or more, and the all-runs medians are quoted beside them;
  before each run the bench waits (at most 10 s) for the machine to go quiet.
- CPU per request on the server CPU, two ways: from /proc (redis-server's utime+stime,
  and the softirq ticks of the server CPU in /proc/stat), and, when `perf` is present,
  from a cpu-clock profile of the server CPU (1 sample = 1 ms): samples of redis-server
  plus network softirq in any context = server CPU; samples whose kernel stack is inside
  conntrack (nf_conntrack_*, nf_ct_*, ipv4_confirm, ...) = conntrack's own cost; samples
  of other processes are counted as "foreign" (other jobs on the machine) and left out.
- Conntrack pressure: the server namespace's table is filled to nf_conntrack_max with
  ASSURED ESTABLISHED entries (ctnetlink, `conntrack -R`; neither early_drop nor the GC
  may evict those), then bounded PING probes on new connections run with each profile.
  nf_conntrack_max is set low inside the namespace when the kernel lets a child
  namespace write it; where it is read-only there (it is global: this kernel), the
  table is filled to the global limit instead — the host's sysctls are never written.

The client namespace reuses TIME_WAIT ports (tcp_tw_reuse, wide port range: sysctls of
our own namespace) so tens of thousands of short connections fit in one run."""
from __future__ import annotations

import socket
import time
from pathlib import Path

from bench import common as c
from bench import harness as h
from bench.common import Row
from bench.redis import cpu, tools

SECTION = "untracked"
TRACKED = c.REPO / "profiles" / "redis-tracked.toml"
UNTRACKED = c.REPO / "profiles" / "redis-host.toml"
CT_SYSCTL = "/proc/sys/net/netfilter/nf_conntrack_max"
LOW_CT_MAX = 2048  # the pressure test's limit where a child namespace may set one
FILL_LIMIT = 1_000_000  # never fill more entries than this (kernel memory)
QUIET = 0.05  # a run is "quiet" when other jobs took at most this share of the server CPU


# -- one measured run ---------------------------------------------------------------------------
def one_run(lab, state: Path, prof: Path, *, requests: int, clients: int,
            cpus: tuple[int, int] | None, tag: str, backend: str = "iptables") -> dict:
    h.nodewall_must(lab.server_ns, state, "apply", "--backend", backend, str(prof))
    h.in_ns(lab.server_ns, "conntrack", "-F", check=False)
    waited = cpu.wait_quiet()
    server_cpu = cpus[1] if cpus else None
    perf = (cpu.perf_start(server_cpu, c.workdir() / f"{tag}.perf", cpus[0])
            if cpus else None)
    t0 = cpu.cpu_ticks(server_cpu) if cpus else None
    r0 = cpu.proc_ticks(lab.redis_pid)
    r = tools.redis_benchmark(lab.client_ns, requests=requests, clients=clients, keepalive=False,
                        cpu=cpus[0] if cpus else None)
    r1 = cpu.proc_ticks(lab.redis_pid)
    t1 = cpu.cpu_ticks(server_cpu) if cpus else None
    cpu.perf_stop(perf)
    us = 1e6 / cpu.HZ / requests  # ticks -> µs per request
    out = {"rps": r["rps"], "ct": tools.conntrack_count(lab.server_ns),
           "redis_us": (r1 - r0) * us, "waited_s": waited}
    if t0 and t1:
        d = {k: t1[k] - t0[k] for k in t0}
        out["softirq_us"] = d["softirq"] * us
        busy = sum(d.values()) - d["idle"] - d["iowait"] - d["steal"]
        out["softirq_share"] = d["softirq"] / busy if busy else 0.0
    split = cpu.perf_split(c.workdir() / f"{tag}.perf") if perf else None
    if split:
        ms = cpu.PERF_PERIOD_NS / 1e3 / requests  # samples -> µs per request
        out["perf_server_us"] = split["server"] * ms
        out["perf_ct_us"] = split["conntrack"] * ms
        out["perf_nf_us"] = split["netfilter"] * ms
        out["perf_ipt_us"] = split["iptables"] * ms
        out["perf_ipset_us"] = split["ipset"] * ms
        out["perf_nft_us"] = split["nftables"] * ms
        out["perf_foreign_share"] = split["foreign"] / split["total"]
        (c.workdir() / f"{tag}.perf").unlink(missing_ok=True)
    return out


# -- conntrack pressure ------------------------------------------------------------------------
def _probe(host: str, port: int, attempts: int, timeout: float) -> tuple[int, float]:
    """New-connection PINGs (runs in the client namespace): (answered, seconds)."""
    ok = 0
    t0 = time.monotonic()
    for _ in range(attempts):
        try:
            with socket.create_connection((host, port), timeout=timeout) as s:
                s.settimeout(timeout)
                s.sendall(b"*1\r\n$4\r\nPING\r\n")
                if s.recv(64).startswith(b"+PONG"):
                    ok += 1
        except OSError:
            pass
    return ok, time.monotonic() - t0


def _fill(ns: str, entries: int, start: int = 0) -> None:
    """ENTRIES assured ESTABLISHED TCP entries (distinct tuples from 10.9.0.0/16 numbered
    from START, 10 min timeout) via one batched ctnetlink load."""
    path = c.workdir() / f"ctfill-{ns}.txt"
    with open(path, "w") as fh:
        fh.writelines(f"-I -p tcp -s 10.9.{(i >> 16) & 255}.{(i >> 8) & 255} -d {c.SERVER} "
                     f"--sport {1024 + (i & 255)} --dport 6379 --state ESTABLISHED "
                     f"-u SEEN_REPLY,ASSURED -t 600\n" for i in range(start, start + entries))
    try:
        h.in_ns(ns, "conntrack", "-R", str(path), check=False, timeout=300)
    finally:
        path.unlink(missing_ok=True)


def pressure(lab, state: Path, *, attempts: int, log=print) -> dict:
    ns = lab.server_ns
    host_max = int(Path(CT_SYSCTL).read_text())
    writable = h.in_ns(ns, "sh", "-c", f"test -w {CT_SYSCTL}", check=False).returncode == 0
    limit = None
    if writable:  # a per-namespace limit (kernels that allow it): set it low, ours only
        h.in_ns(ns, "sysctl", "-q", "-w", f"net.netfilter.nf_conntrack_max={LOW_CT_MAX}",
                check=False)
        if int(Path(CT_SYSCTL).read_text()) != host_max:  # it was global after all
            Path(CT_SYSCTL).write_text(f"{host_max}\n")
            raise RuntimeError("nf_conntrack_max written in a child namespace changed the "
                               "host's value; restored it")
        limit = int(h.in_ns(ns, "cat", CT_SYSCTL).stdout)
    if limit is None or limit == host_max:
        limit = int(h.in_ns(ns, "cat", CT_SYSCTL).stdout)
    res: dict = {"limit": limit, "per_netns": writable and limit != host_max,
                 "attempts": attempts}
    if limit <= 0 or limit > FILL_LIMIT:
        res["skipped"] = f"nf_conntrack_max {limit}: too many entries to fill"
        return res
    h.nodewall_must(ns, state, "apply", "--backend", "iptables", str(TRACKED))
    h.in_ns(ns, "conntrack", "-F", check=False)
    t0 = time.monotonic()
    start = 0
    for _ in range(3):  # top up once or twice if entries went away meanwhile
        missing = limit - tools.conntrack_count(ns)
        if missing <= 0:
            break
        _fill(ns, missing, start)
        start += missing
    res["fill_s"] = time.monotonic() - t0
    res["filled"] = tools.conntrack_count(ns)
    log(f"    pressure: server table {res['filled']:,} / {limit:,} "
        f"({'per-namespace limit' if res['per_netns'] else 'global limit, read-only here'})"
        f", filled in {res['fill_s']:.1f} s")
    for name, prof in (("tracked", TRACKED), ("untracked", UNTRACKED)):
        h.nodewall_must(ns, state, "apply", "--backend", "iptables", str(prof))
        d0 = tools.conntrack_stat(ns, "drop")
        ok, secs = h.run_in(lab.client_ns, _probe, c.SERVER, 6379, attempts, 0.25)
        res[name] = {"answered": ok, "seconds": secs,
                     "drops": tools.conntrack_stat(ns, "drop") - d0,
                     "entries": tools.conntrack_count(ns)}
        log(f"    pressure {name:9}: {ok}/{attempts} new-connection PINGs answered in "
            f"{secs:.1f} s; conntrack drops +{res[name]['drops']}")
    r = tools.redis_benchmark(lab.client_ns, requests=5_000, clients=20, keepalive=False,
                        timeout=120)
    res["untracked_rps"] = r["rps"]
    res["untracked_entries_after"] = tools.conntrack_count(ns)
    log(f"    pressure untracked redis-benchmark -k 0: {r['rps']:,.0f} req/s, entries "
        f"{res['untracked_entries_after']:,}")
    h.in_ns(ns, "conntrack", "-F", check=False)
    return res


# -- the section -------------------------------------------------------------------------------
def _spread(xs: list[float]) -> str:
    return f"{min(xs):,.0f}–{max(xs):,.0f}"


def run(quick: bool, log=print) -> list[Row]:
    requests, rounds, attempts = (5_000, 2, 20) if quick else (30_000, 7, 40)
    clients = 50
    runs: dict[str, list[dict]] = {"tracked": [], "untracked": []}
    ratios: list[float] = []
    cpus = tools.placement()
    with h.lab() as lab:
        for key, val in (("net.ipv4.tcp_tw_reuse", "1"),
                         ("net.ipv4.ip_local_port_range", "1024 65535")):
            h.in_ns(lab.client_ns, "sysctl", "-q", "-w", f"{key}={val}")
        if cpus:
            tools.pin(lab, *cpus)
            log(f"    redis-server on CPU {cpus[1]}, redis-benchmark on CPU {cpus[0]}, "
                "RPS on each side's own CPU")
        state = c.workdir() / f"state-{h.unique_prefix()}"
        try:
            for i in range(rounds):
                order = (("tracked", TRACKED), ("untracked", UNTRACKED))
                pair = {}
                for name, prof in order if i % 2 == 0 else order[::-1]:
                    r = one_run(lab, state, prof, requests=requests, clients=clients,
                                cpus=cpus, tag=f"{name}-{i}")
                    runs[name].append(r)
                    pair[name] = r["rps"]
                    perf_txt = (f", perf: server {r['perf_server_us']:.1f} µs/req, "
                                f"conntrack {r['perf_ct_us']:.1f} µs/req, foreign "
                                f"{100 * r['perf_foreign_share']:.0f} %"
                                if "perf_server_us" in r else "")
                    log(f"    {name:9}: {r['rps']:,.0f} req/s, entries {r['ct']:,}, "
                        f"redis {r['redis_us']:.1f} µs/req{perf_txt}")
                ratios.append(pair["untracked"] / pair["tracked"])
            nft = nft_rounds(lab, state, rounds=max(1, rounds // 2), requests=requests,
                             clients=clients, cpus=cpus, log=log)
            press = pressure(lab, state, attempts=attempts, log=log)
        finally:
            h.nodewall_cli(lab.server_ns, state, "flush")
    return rows(runs, ratios, press, requests=requests, clients=clients, rounds=rounds,
                cpus=cpus) + nft_rows(nft, runs["untracked"])


def nft_rounds(lab, state: Path, *, rounds: int, requests: int, clients: int, cpus,
               log=print) -> dict[str, list[dict]]:
    """The same two profiles on the nftables packet filter (`--backend nftables`),
    ABBA rounds like the iptables ones."""
    out: dict[str, list[dict]] = {"tracked": [], "untracked": []}
    order = (("tracked", TRACKED), ("untracked", UNTRACKED))
    for i in range(rounds):
        for name, prof in order if i % 2 == 0 else order[::-1]:
            r = one_run(lab, state, prof, requests=requests, clients=clients, cpus=cpus,
                        tag=f"nft-{name}-{i}", backend="nftables")
            out[name].append(r)
            log(f"    nftables {name:9}: {r['rps']:,.0f} req/s, entries {r['ct']:,}")
    return out


def nft_rows(nft: dict[str, list[dict]], ipt_untracked: list[dict]) -> list[Row]:
    t, u = nft["tracked"], nft["untracked"]
    if not t or not u:
        return []
    t_rps, u_rps, i_rps = _med(t, "rps"), _med(u, "rps"), _med(ipt_untracked, "rps")
    note = (f"medians of {len(t)} rounds per profile (ABBA), same lab, pinning and "
            f"requests as the iptables rows; spread tracked {_spread([r['rps'] for r in t])}, "
            f"untracked {_spread([r['rps'] for r in u])} req/s")
    return [
        Row(SECTION, "requests/s, new connection per request, nftables packet filter",
            "tracked profile on nftables (conntrack)", t_rps, u_rps, "req/s", goal=1.0,
            higher_is_better=True, note=f"goal: never below tracked; {note}", n=len(u),
            why=nft_rps_why(t, u), extra={"tracked_runs": t, "untracked_runs": u}),
        Row(SECTION, "requests/s untracked: nftables vs iptables",
            "untracked profile on iptables", i_rps, u_rps, "req/s", note=note),
        Row(SECTION, "conntrack entries after an untracked run on nftables",
            "tracked profile on nftables", float(max(r["ct"] for r in t)),
            float(max(r["ct"] for r in u)), "entries", goal=0.0),
        *nft_netfilter_row(t, u),
    ]


def nft_rps_why(t: list[dict], u: list[dict]) -> str:
    """Why untracked req/s on nftables may come out below tracked: the measured
    netfilter difference against a request's cost, and the noise of few rounds."""
    t_nf, u_nf, t_srv = _med(t, "perf_nf_us"), _med(u, "perf_nf_us"), _med(t, "perf_server_us")
    foreign = [r["perf_foreign_share"] for r in t + u if "perf_foreign_share" in r]
    why = (f"{len(u)} rounds per profile whose spreads overlap (tracked "
           f"{_spread([r['rps'] for r in t])}, untracked {_spread([r['rps'] for r in u])} "
           "req/s)")
    if foreign:
        why += (f" while other jobs took {100 * min(foreign):.0f}–{100 * max(foreign):.0f} % "
                "of the server CPU")
    if t_nf and u_nf is not None and t_srv:
        why += (f"; the profiles differ by {t_nf - u_nf:+.1f} µs of netfilter CPU per "
                f"request (tracked {t_nf:.1f}, untracked {u_nf:.1f}; perf), "
                f"{100 * (t_nf - u_nf) / t_srv:.0f} % of the {t_srv:.0f} µs a request costs "
                "the server, so req/s of a few rounds mostly follow the other jobs")
    return why


def nft_netfilter_row(t: list[dict], u: list[dict]) -> list[Row]:
    t_nf, u_nf = _med(t, "perf_nf_us"), _med(u, "perf_nf_us")
    if not t_nf or u_nf is None:
        return []
    t_ct, u_walk = _med(t, "perf_ct_us") or 0.0, _med(u, "perf_nft_us") or 0.0
    t_walk = _med(t, "perf_nft_us") or 0.0
    return [Row(SECTION, "netfilter CPU per request, nftables packet filter (perf)",
                "tracked profile on nftables", t_nf, u_nf, "µs", goal=NF_GOAL, n=len(u),
                note=(f"goal ≤ {NF_GOAL}× tracked; medians of {len(u)} rounds, spread tracked "
                      f"{_spread_f(t, 'perf_nf_us')}, untracked {_spread_f(u, 'perf_nf_us')} "
                      f"µs; tracked: conntrack {t_ct:.1f} + nft chain walks {t_walk:.1f} µs; "
                      f"untracked: nft chain walks {u_walk:.1f} µs + other hooks "
                      f"{u_nf - u_walk:.1f} µs"),
                why=(f"the untracked path's own work is the nft chain walk ({u_walk:.1f} µs/req:"
                     " raw-priority chain with failsafe, the blocklist interval-set lookup, "
                     "`notrack` + `accept`, then filter's `ct state untracked accept`); "
                     f"tracked pays conntrack {t_ct:.1f} µs and a walk of {t_walk:.1f} µs; "
                     "few rounds on a shared machine make this row the noisiest"))]


NF_GOAL = 0.6  # untracked netfilter CPU per request, at most this share of tracked's


def netfilter_row(t: list[dict], u: list[dict], rounds: int) -> list[Row]:
    """All netfilter hooks' CPU per request (perf), untracked against tracked: the cost
    the untracked fast path is about (conntrack's work against raw's rule walk)."""
    t_nf, u_nf = _med(t, "perf_nf_us"), _med(u, "perf_nf_us")
    if not t_nf or u_nf is None:
        return []
    paired = [b["perf_nf_us"] / a["perf_nf_us"] for a, b in zip(t, u)
              if a.get("perf_nf_us") and "perf_nf_us" in b]
    t_ct, t_ipt = _med(t, "perf_ct_us") or 0.0, _med(t, "perf_ipt_us") or 0.0
    u_ipt, u_set = _med(u, "perf_ipt_us") or 0.0, _med(u, "perf_ipset_us") or 0.0
    spread = (f"; per-round paired ratio median {c.median(paired):.2f}× "
              f"({min(paired):.2f}–{max(paired):.2f}), tracked {_spread_f(t, 'perf_nf_us')}"
              f", untracked {_spread_f(u, 'perf_nf_us')} µs") if paired else ""
    note = (f"goal ≤ {NF_GOAL}× tracked; perf cpu-clock on the server CPU, samples inside "
            f"nf_hook_slow, medians over {rounds} rounds (ABBA){spread}; tracked: conntrack "
            f"{t_ct:.1f} + iptables walk {t_ipt:.1f} µs; untracked: iptables walks "
            f"{u_ipt:.1f} µs (ipset lookup inside them {u_set:.1f}) + other hooks "
            f"{u_nf - u_ipt:.1f} µs")
    why = (f"what is left is the rule walk Calico's order requires of every untracked "
           f"packet, {u_ipt:.1f} µs/req for ~10 packets a request (6 in, 4 out): raw — the "
           f"hook, the endpoint goto, the failsafe rules (they must come before untracked "
           f"policy), the drop-blocklist set lookup on every ingress packet ("
           f"{u_set:.1f} µs: an untracked deny is stateless, so no packet skips it), the "
           f"allow rule, NOTRACK, ACCEPT — and filter's hook + the UNTRACKED accept; the "
           f"tracked profile walks only filter (established ACCEPT behind one goto) and "
           f"pays conntrack {t_ct:.1f} µs; the other hooks (defrag, conntrack's untracked "
           f"skip) are {u_nf - u_ipt:.1f} µs")
    return [Row(SECTION, "netfilter CPU per request (perf: all hooks)", "tracked profile",
                t_nf, u_nf, "µs", goal=NF_GOAL, note=note, why=why, n=len(u))]


def _spread_f(runs: list[dict], key: str) -> str:
    xs = [r[key] for r in runs if key in r]
    return f"{min(xs):.1f}–{max(xs):.1f}" if xs else "n/a"


def _med(runs: list[dict], key: str) -> float | None:
    xs = [r[key] for r in runs if key in r]
    return c.median(xs) if xs else None


def rows(runs: dict[str, list[dict]], ratios: list[float], press: dict, *, requests: int,
         clients: int, rounds: int, cpus) -> list[Row]:
    t, u = runs["tracked"], runs["untracked"]
    # the headline: runs during which other jobs took at most QUIET of the server CPU
    # (perf's split), when each profile has two or more of those; else every run
    qt, qu = ([r for r in xs if r.get("perf_foreign_share", 1.0) <= QUIET] for xs in (t, u))
    quiet = len(qt) >= 2 and len(qu) >= 2
    t_rps, u_rps = (_med(qt, "rps"), _med(qu, "rps")) if quiet else (_med(t, "rps"),
                                                                     _med(u, "rps"))
    which = (f"medians of the {len(qt)} tracked and {len(qu)} untracked runs with ≤ "
             f"{100 * QUIET:.0f} % other work on the server CPU (all runs: "
             f"{_med(t, 'rps'):,.0f} vs {_med(u, 'rps'):,.0f} req/s)" if quiet else
             "medians of all runs (too few quiet runs to pick from)")
    where = (f"redis-server on CPU {cpus[1]}, redis-benchmark on CPU {cpus[0]}, RPS per side"
             if cpus else "unpinned (one CPU)")
    cfg = (f"{which}; {requests:,} requests x {rounds} rounds per profile (ABBA), "
           f"{clients} clients, -k 0, PING_INLINE, {where}; spread tracked {_spread([r['rps'] for r in t])}, "
           f"untracked {_spread([r['rps'] for r in u])} req/s; per-round paired ratio "
           f"median {c.median(ratios):.2f}× ({min(ratios):.2f}–{max(ratios):.2f})")
    t_srv, u_srv = _med(t, "perf_server_us"), _med(u, "perf_server_us")
    t_ct, u_ct = _med(t, "perf_ct_us"), _med(u, "perf_ct_us")
    t_nf, u_nf = _med(t, "perf_nf_us"), _med(u, "perf_nf_us")
    t_ipt, u_ipt = _med(t, "perf_ipt_us"), _med(u, "perf_ipt_us")
    foreign = [r["perf_foreign_share"] for r in t + u if "perf_foreign_share" in r]
    if foreign:
        cfg += (f"; other jobs took {100 * min(foreign):.0f}–{100 * max(foreign):.0f} % of "
                "the server CPU during the runs")
    if t_srv and u_srv and t_ct is not None and t_nf is not None and u_nf is not None:
        ceiling = t_srv / max(t_srv - t_ct, 1e-9)
        why = (f"conntrack itself costs {t_ct:.1f} µs of the {t_srv:.0f} µs of server CPU "
               f"per request (perf, {100 * t_ct / t_srv:.0f} %): removing it entirely caps the "
               f"gain at {ceiling:.2f}× (removing every netfilter hook: "
               f"{t_srv / max(t_srv - t_nf, 1e-9):.2f}×); and the untracked "
               f"profile's raw-table rule walk (failsafe rules, blocklist set, NOTRACK + "
               f"ACCEPT, both directions, every packet) costs "
               f"{u_ipt - t_ipt:+.1f} µs/req more iptables time, so all netfilter work is "
               f"{t_nf:.1f} µs/req tracked vs {u_nf:.1f} untracked: server CPU per request "
               f"{t_srv:.0f} vs {u_srv:.0f} µs. The rest of a request — the TCP handshake "
               "and teardown in both stacks, Redis accepting, serving and freeing a client "
               "— is the same with either profile; req/s differences beyond that are "
               "other jobs sharing the two cores")
    else:
        why = ("each request is a TCP connect + close in two stacks plus Redis's own "
               "per-client work; conntrack's per-connection insert/confirm/destroy is a "
               "small share of that (perf was not available to say how small)")
    out = [
        Row(SECTION, "requests/s, new connection per request", "tracked profile (conntrack)",
            t_rps, u_rps, "req/s", goal=1.0, higher_is_better=True,
            note=f"goal: never below tracked; {cfg}", why=why,
            n=requests, extra={"tracked_runs": t, "untracked_runs": u, "ratios": ratios,
                               "cpus": cpus}),
    ]
    out += netfilter_row(t, u, rounds)
    if t_srv and u_srv:
        out.append(Row(
            SECTION, "server CPU per request (perf: redis-server + network softirq)",
            "tracked profile", t_srv, u_srv, "µs", note=(
                f"medians over {rounds} rounds, other processes' samples left out; inside "
                f"that: conntrack {t_ct:.1f} vs {u_ct:.1f} µs, iptables rule walks "
                f"{t_ipt:.1f} vs {u_ipt:.1f} µs, all netfilter hooks {t_nf:.1f} vs "
                f"{u_nf:.1f} µs (tracked vs untracked); one server core's capacity "
                f"{1e6 / t_srv:,.0f} vs {1e6 / u_srv:,.0f} req/s")))
    t_r, u_r = _med(t, "redis_us"), _med(u, "redis_us")
    t_si, u_si = _med(t, "softirq_us"), _med(u, "softirq_us")
    t_sh, u_sh = _med(t, "softirq_share"), _med(u, "softirq_share")
    note = "redis-server utime+stime (/proc/<pid>/stat; includes softirq run in its context)"
    if t_si is not None and u_si is not None:
        note += (f"; server CPU softirq ticks (/proc/stat) {t_si:.1f} vs {u_si:.1f} µs/req, "
                 f"{100 * t_sh:.0f} % vs {100 * u_sh:.0f} % of its busy time")
    out.append(Row(SECTION, "redis-server process CPU per request", "tracked profile",
                   t_r, u_r, "µs", note=note))
    out.append(Row(SECTION, "conntrack entries after a run (server namespace)",
                   "tracked profile", float(max(r["ct"] for r in t)),
                   float(max(r["ct"] for r in u)), "entries", goal=0.0,
                   note="goal: 0 entries with the untracked profile; fewer entries than "
                        "connections because reused client ports reopen TIME_WAIT entries"))
    if "tracked" in press:
        how = (f"nf_conntrack_max set to {press['limit']:,} inside the server namespace"
               if press["per_netns"] else
               f"nf_conntrack_max is read-only in a child namespace on this kernel (global "
               f"{press['limit']:,}), so the server namespace's table was filled to it")
        pt, pu = press["tracked"], press["untracked"]
        out.append(Row(
            SECTION, "new-connection PINGs answered with the conntrack table full",
            "tracked profile", float(pt["answered"]), float(pu["answered"]),
            f"of {press['attempts']}", note=(
                f"{how} with {press['filled']:,} assured ESTABLISHED entries "
                f"(conntrack -R, {press['fill_s']:.1f} s); 0.25 s connect timeout; tracked: "
                f"{pt['drops']} SYNs dropped by conntrack (`conntrack -S` drop, 'table "
                f"full'); untracked: {pu['drops']} drops, redis-benchmark -k 0 still "
                f"{press['untracked_rps']:,.0f} req/s and the table stays at "
                f"{press['untracked_entries_after']:,}")))
    elif press.get("skipped"):
        out.append(Row(SECTION, "new-connection PINGs answered with the conntrack table "
                       "full", "tracked profile", None, None, "", note=press["skipped"]))
    return out
