"""Section 1 — set-up time vs N, from the start of the load until a packet from a listed
source is verifiably dropped (a UDP probe from 203.0.113.7, the last line of every
set, and the DROP rule's / XDP deny counter seen to move).

Per N, in one lab (server + client namespaces), each case from an empty kernel:
  raw ipset      `ipset restore` (create line inside the file, nodewall's sizing) +
                 one `iptables -t raw -I PREROUTING -m set … -j DROP`, then probe
  linear         one `-s CIDR -j DROP` rule per line via iptables-legacy-restore
                 (N <= 100k: beyond that the legacy ruleset blob is unreasonable)
  nodewall CLI   `nodewall --netns … apply` (backend iptables, then xdp), then probe
  in-process     Service.apply() in a child inside the namespace, then probe
  raw batch      BPF_MAP_UPDATE_BATCH of pre-packed keys into a fresh LPM trie
                 (bench/xdp_load._raw) beside nodewall's trie load of the same file
                 (bench/xdp_load._nodewall_trie, which includes parsing the file)
The CLI runs also record the nodewall process's peak RSS (section 6 uses the 10M ones).
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench import common as c
from bench.common import Row

SECTION = "setup"
NS_FULL = (1_000, 10_000, 100_000, 1_000_000, 10_000_000)
NS_QUICK = (1_000, 10_000)
LINEAR_MAX = 1_000_000
RAW_SET = "bench-raw"
LIN_CHAIN = "BENCH-LIN"

# measurements by N, reused by big_sets (section 6) in the same process
MEASURED: dict[int, dict] = {}


def _restore_file(src: Path, n: int) -> Path:
    from nodewall.engine.dataplane.ipsets.load import sizing
    hashsize, maxelem = sizing(n)
    out = src.with_suffix(".restore")
    if not out.exists():
        with open(src) as fh, open(out, "w") as dst:
            dst.write(f"create {RAW_SET} hash:net family inet hashsize {hashsize} "
                      f"maxelem {maxelem}\n")
            dst.writelines(f"add {RAW_SET} {line}" for line in fh)
    return out


def _linear_file(src: Path) -> Path:
    out = src.with_suffix(".linear")
    if not out.exists():
        with open(src) as fh, open(out, "w") as dst:
            dst.write(f"*raw\n:{LIN_CHAIN} - [0:0]\n")
            dst.writelines(f"-A {LIN_CHAIN} -s {line.strip()} -j DROP\n" for line in fh)
            dst.write(f"-A PREROUTING -j {LIN_CHAIN}\nCOMMIT\n")
    return out


def raw_ipset(lab, path: Path, n: int) -> tuple[float, float]:
    """(restore seconds, restore + rule + verified drop seconds)"""
    restore = _restore_file(path, n)
    srv = lab.server_ns
    try:
        t0 = time.perf_counter()
        with open(restore) as fh:
            c.in_ns(srv, "ipset", "-exist", "restore", stdin=fh, timeout=900)
        t_restore = time.perf_counter() - t0
        c.in_ns(srv, "iptables-legacy", "-w", "5", "-t", "raw", "-I", "PREROUTING", "-m", "set",
                "--match-set", RAW_SET, "src", "-j", "DROP")
        t1 = c.until_dropped(lab.client_ns, lambda: c.raw_drop_packets(srv), 0)
        return t_restore, t1 - t0
    finally:
        c.in_ns(srv, "iptables-legacy", "-w", "5", "-t", "raw", "-D", "PREROUTING", "-m", "set",
                "--match-set", RAW_SET, "src", "-j", "DROP", check=False)
        c.in_ns(srv, "ipset", "destroy", RAW_SET, check=False, timeout=300)


def linear(lab, path: Path, n: int) -> float:
    rules = _linear_file(path)
    srv = lab.server_ns
    try:
        t0 = time.perf_counter()
        with open(rules) as fh:
            c.in_ns(srv, "iptables-legacy-restore", "-w", "5", "--noflush", stdin=fh,
                    timeout=900)
        t1 = c.until_dropped(lab.client_ns,
                             lambda: c.raw_drop_packets(srv, LIN_CHAIN, n + 1), 0)
        return t1 - t0
    finally:
        ipt = ("iptables-legacy", "-w", "5", "-t", "raw")
        c.in_ns(srv, *ipt, "-D", "PREROUTING", "-j", LIN_CHAIN, check=False)
        c.in_ns(srv, *ipt, "-F", LIN_CHAIN, check=False, timeout=600)
        c.in_ns(srv, *ipt, "-X", LIN_CHAIN, check=False)


def _counter(lab, backend: str):
    if backend == "xdp":
        return lambda: c.xdp_drop_packets(lab.server_ns)
    return lambda: c.raw_drop_packets(lab.server_ns)


def nodewall_cli(lab, profile: Path, backend: str) -> tuple[float, c.CliRun]:
    state = c.workdir() / f"state-{c.unique_prefix()}"
    try:
        t0 = time.perf_counter()
        run = c.nodewall_must(lab.server_ns, state, "apply", str(profile))
        t1 = c.until_dropped(lab.client_ns, _counter(lab, backend), 0)
        return t1 - t0, run
    finally:
        c.nodewall_cli(lab.server_ns, state, "flush")
        shutil.rmtree(state, ignore_errors=True)


_INPROC = """
import sys, time
from pathlib import Path
from nodewall.engine.system import netns
from nodewall.engine.service import Service
ns, state, profile, what = sys.argv[1:5]
netns.enter(ns)  # setns like --netns (not `ip netns exec`: its private /sys hides bpffs)
svc = Service(netns=ns, state_dir=Path(state))
t0 = time.perf_counter()
svc.apply([Path(profile)]) if what == "apply" else svc.tx.flush()
print(time.perf_counter() - t0)
"""


def _inproc(netns: str, state: str, profile: str, what: str = "apply") -> float:
    """Service.apply() (or flush) timed inside a fresh interpreter that enters the
    namespace with setns as `--netns` does (`ip netns exec` would give it a private /sys
    without the bpffs, so XDP pins would vanish with it): the
    engine's own time, without start-up and imports (and without inheriting this
    process's modules)."""
    res = subprocess.run([sys.executable, "-c", _INPROC, netns, state, profile, what],
                         check=False, capture_output=True, text=True, timeout=1800)
    if res.returncode != 0:
        raise RuntimeError(f"in-process {what} failed: {res.stderr.strip()[-600:]}")
    return float(res.stdout.strip().splitlines()[-1])


def _inproc_apply(netns: str, state: str, profile: str) -> float:
    return _inproc(netns, state, profile)


def _inproc_flush(netns: str, state: str) -> None:
    _inproc(netns, state, "-", "flush")


def nodewall_inproc(lab, profile: Path, backend: str) -> tuple[float, float]:
    """(engine apply seconds, apply + verified drop seconds)"""
    state = c.workdir() / f"state-{c.unique_prefix()}"
    try:
        engine_s = _inproc_apply(lab.server_ns, str(state), str(profile))
        t0 = time.perf_counter()  # start-up around the call is not the engine's time
        t1 = c.until_dropped(lab.client_ns, _counter(lab, backend), 0)
        return engine_s, engine_s + t1 - t0
    finally:
        _inproc_flush(lab.server_ns, str(state))
        shutil.rmtree(state, ignore_errors=True)


def xdp_maps(lab, path: Path, n: int) -> tuple[float, float] | None:
    """(raw BPF_MAP_UPDATE_BATCH seconds, nodewall trie load seconds), from the XDP
    engineer's bench/xdp_load; None when it is not there."""
    try:
        from bench import xdp_load
    except ImportError:
        return None
    raw = c.run_in(lab.server_ns, xdp_load._raw, path, n)
    ours = c.run_in(lab.server_ns, xdp_load._nodewall_trie, path, n)
    return raw, ours


def measure(n: int, lab, *, linear_max: int = LINEAR_MAX, log=print) -> dict:
    c.send_probe(lab.client_ns, c.CLIENT)  # warm the neighbour caches
    path = c.cidr_file(n)
    entries = n + 1
    prof_ipt = c.deny_profile(c.workdir() / f"deny-{n}-ipt.toml", path, backend="iptables")
    prof_xdp = c.deny_profile(c.workdir() / f"deny-{n}-xdp.toml", path, backend="xdp")
    m: dict = {"n": n, "entries": entries}
    m["raw_restore_s"], m["raw_e2e_s"] = raw_ipset(lab, path, entries)
    log(f"    N={n:>10,}  ipset restore {m['raw_restore_s']:.3f} s, to drop {m['raw_e2e_s']:.3f} s")
    m["linear_e2e_s"] = linear(lab, path, n) if n <= linear_max else None
    if m["linear_e2e_s"] is not None:
        log(f"    N={n:>10,}  linear iptables to drop {m['linear_e2e_s']:.3f} s")
    m["ipt_cli_s"], run = nodewall_cli(lab, prof_ipt, "iptables")
    m["ipt_cli_rss_mb"], m["ipt_cli_tree_rss_mb"] = run.peak_rss_mb, run.maxrss_tree_mb
    m["ipt_cli_apply_s"] = run.seconds
    log(f"    N={n:>10,}  nodewall iptables CLI to drop {m['ipt_cli_s']:.3f} s, "
        f"peak RSS {run.peak_rss_mb:.0f} MB")
    try:
        m["ipt_engine_s"], m["ipt_inproc_s"] = nodewall_inproc(lab, prof_ipt, "iptables")
        log(f"    N={n:>10,}  nodewall iptables in-process to drop {m['ipt_inproc_s']:.3f} s")
    except Exception as exc:  # noqa: BLE001 - reported in the table
        m["ipt_inproc_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        log(f"    N={n:>10,}  iptables in-process failed: {m['ipt_inproc_error']}")
    try:
        m["xdp_cli_s"], run = nodewall_cli(lab, prof_xdp, "xdp")
        m["xdp_cli_rss_mb"], m["xdp_cli_tree_rss_mb"] = run.peak_rss_mb, run.maxrss_tree_mb
        m["xdp_cli_apply_s"] = run.seconds
        log(f"    N={n:>10,}  nodewall xdp CLI to drop {m['xdp_cli_s']:.3f} s, "
            f"peak RSS {run.peak_rss_mb:.0f} MB")
    except Exception as exc:  # noqa: BLE001 - reported in the table
        m["xdp_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        log(f"    N={n:>10,}  XDP backend (CLI) failed: {m['xdp_error']}")
    try:
        m["xdp_engine_s"], m["xdp_inproc_s"] = nodewall_inproc(lab, prof_xdp, "xdp")
        log(f"    N={n:>10,}  nodewall xdp in-process to drop {m['xdp_inproc_s']:.3f} s")
    except Exception as exc:  # noqa: BLE001 - reported in the table
        m["xdp_inproc_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        log(f"    N={n:>10,}  XDP backend (in-process) failed: {m['xdp_inproc_error']}")
    maps = xdp_maps(lab, path, entries)
    if maps:
        m["bpf_batch_s"], m["nw_trie_s"] = maps
        log(f"    N={n:>10,}  raw BPF batch {maps[0]:.3f} s, nodewall trie load {maps[1]:.3f} s")
    return m


def rows_for(m: dict) -> list[Row]:
    n = m["n"]
    cap = f"{n:,}"
    if "ipt_inproc_s" not in m:  # failed: the row says so, the why has no split
        m = {**m, "ipt_inproc_s": None, "ipt_engine_s": float("nan")}
    startup = max(0.0, m["ipt_cli_s"] - (m["ipt_inproc_s"] or m["ipt_cli_s"]))
    why_ipt = (f"a nodewall apply is more than a set load: CLI start-up and imports "
               f"≈ {startup:.2f} s (CLI minus in-process); the engine ({m['ipt_engine_s']:.2f} s"
               f" vs `ipset restore` {m['raw_restore_s']:.2f} s) also loads and validates the "
               "profile (one scan of the nets_file), plans, commits and verifies iptables, "
               "and records the generation (a copy of the nets_file)")
    why_inproc = (f"the engine ({m['ipt_engine_s']:.2f} s vs `ipset restore` "
                  f"{m['raw_restore_s']:.2f} s) also loads and validates the profile (one scan "
                  "of the nets_file), plans, commits and verifies iptables and records the "
                  "generation (a copy of the nets_file)")
    out = [
        Row(SECTION, f"N={cap} iptables+ipset: `nodewall apply` (CLI) → drop",
            "ipset restore + rule → drop", m["raw_e2e_s"], m["ipt_cli_s"], "s", goal=1.0, n=n,
            extra={"kind": "ipt_cli"}, why=why_ipt),
        Row(SECTION, f"N={cap} iptables+ipset: engine in-process → drop",
            "ipset restore + rule → drop", m["raw_e2e_s"], m["ipt_inproc_s"], "s", goal=1.0,
            n=n, note=(f"engine apply alone {m['ipt_engine_s']:.3f} s"
                       if m["ipt_inproc_s"] is not None
                       else f"failed: {m.get('ipt_inproc_error')}"),
            extra={"kind": "ipt_inproc"}, why=why_inproc),
    ]
    if "xdp_cli_s" in m:
        out.append(Row(SECTION, f"N={cap} XDP backend: `nodewall apply` (CLI) → XDP drop",
                       "ipset restore + rule → drop", m["raw_e2e_s"], m["xdp_cli_s"], "s", n=n,
                       note="includes the raw+ipset backstop, bcc compile and attach",
                       extra={"kind": "xdp_cli"}))
    else:
        out.append(Row(SECTION, f"N={cap} XDP backend: `nodewall apply` (CLI) → XDP drop",
                       "ipset restore + rule → drop", m["raw_e2e_s"], None, "s", n=n,
                       note=f"failed: {m.get('xdp_error', 'not measured')}"))
    if "xdp_inproc_s" in m:
        out.append(Row(SECTION, f"N={cap} XDP backend: engine in-process → XDP drop",
                       "ipset restore + rule → drop", m["raw_e2e_s"], m["xdp_inproc_s"], "s",
                       n=n, note=f"engine apply alone {m['xdp_engine_s']:.3f} s",
                       extra={"kind": "xdp_inproc"}))
    else:
        out.append(Row(SECTION, f"N={cap} XDP backend: engine in-process → XDP drop",
                       "ipset restore + rule → drop", m["raw_e2e_s"], None, "s", n=n,
                       note=f"failed: {m.get('xdp_inproc_error', 'not measured')}"))
    if "bpf_batch_s" in m:
        out.append(Row(SECTION, f"N={cap} XDP map load: nodewall trie (parse + load)",
                       "raw BPF_MAP_UPDATE_BATCH", m["bpf_batch_s"], m["nw_trie_s"], "s",
                       goal=1.2, n=n, note="raw batch excludes reading/packing the file",
                       extra={"kind": "trie"},
                       why="nodewall's time includes reading and parsing the text nets_file "
                           "into packed keys; the raw batch is handed keys packed in "
                           "advance"))
    else:
        out.append(Row(SECTION, f"N={cap} XDP map load", "raw BPF_MAP_UPDATE_BATCH", None,
                       None, "s", n=n, note="not measured yet (bench/xdp_load missing)"))
    if m.get("linear_e2e_s") is not None:
        out.append(Row(SECTION, f"N={cap} iptables+ipset CLI vs linear rules",
                       "linear iptables rules → drop", m["linear_e2e_s"], m["ipt_cli_s"], "s",
                       n=n, extra={"kind": "linear"}))
    else:
        out.append(Row(SECTION, f"N={cap} linear iptables rules", "linear iptables rules",
                       None, None, "s", n=n,
                       note=f"not run above {LINEAR_MAX:,} rules: one legacy ruleset blob "
                            "of that size is not a reasonable baseline"))
    return out


def run(quick: bool, log=print) -> list[Row]:
    rows: list[Row] = []
    with c.lab() as lab:
        for n in (NS_QUICK if quick else NS_FULL):
            try:
                m = measure(n, lab, log=log)
            except Exception as exc:  # noqa: BLE001 - one N failing keeps the others
                log(f"    N={n:>10,}  failed: {type(exc).__name__}: {exc}")
                rows.append(Row(SECTION, f"N={n:,}", "ipset restore", None, None, "s", n=n,
                                goal=1.0, note=f"failed: {type(exc).__name__}: {exc}"))
                continue
            MEASURED[n] = m
            rows += rows_for(m)
    return rows


def plot(rows: list[Row], out: Path) -> bool:
    """Set-up time vs N, one line per tool, from section 1's rows."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    series: dict[str, list[tuple[int, float]]] = {}

    def add(label: str, n: int, v: float | None) -> None:
        if v is not None:
            series.setdefault(label, []).append((n, v))

    for r in rows:
        kind = r.extra.get("kind") if r.section == SECTION else None
        if kind is None or r.n is None:
            continue
        if kind == "ipt_cli":
            add("ipset restore + rule", r.n, r.raw)
            add("nodewall iptables+ipset (CLI)", r.n, r.value)
        elif kind == "xdp_cli":
            add("nodewall XDP (CLI)", r.n, r.value)
        elif kind == "trie":
            add("raw BPF batch (map only)", r.n, r.raw)
            add("nodewall trie load (map only)", r.n, r.value)
        elif kind == "linear":
            add("linear iptables rules", r.n, r.raw)
    if not series:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, pts in series.items():
        pts.sort()
        ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("CIDRs in the set (89 % /32, 10 % /24, 1 % /16)")
    ax.set_ylabel("seconds until a listed source is dropped")
    ax.set_title("Set-up time vs N")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return True


# -- section 2: incremental update ---------------------------------------------------------
INC_SECTION = "incremental"
NEW_NET, NEW_PROBE = "198.18.77.0/24", "198.18.77.5"  # benchmarking range: not generated


def _changed_copy(path: Path, tag: str) -> tuple[Path, Path, str]:
    """Two copies of PATH: as is, and with one lonely /32 line replaced by NEW_NET."""
    from bench.ipset_load import _lonely_host_line
    data = path.read_bytes()
    mid, end = _lonely_host_line(data)
    old = data[mid:end].decode()
    a = c.workdir() / f"inc-{tag}-a.txt"
    b = c.workdir() / f"inc-{tag}-b.txt"
    shutil.copyfile(path, a)
    b.write_bytes(data[:mid] + NEW_NET.encode() + data[end:])
    return a, b, old


def _inc_nodewall(lab, n: int, backend: str, mode: str) -> tuple[float, float, dict]:
    """(full seconds, incremental seconds, info) through the CLI or in-process; both
    until a probe (203.0.113.7, then 198.18.77.5) is seen dropped."""
    tag = f"{backend}-{mode}-{c.unique_prefix()}"
    a, b, old = _changed_copy(c.cidr_file(n), tag)
    live = c.workdir() / f"inc-{tag}.txt"
    shutil.copyfile(a, live)
    prof = c.deny_profile(c.workdir() / f"inc-{tag}.toml", live, backend=backend)
    state = c.workdir() / f"state-{tag}"
    counter = _counter(lab, backend)

    def apply() -> tuple[float, float]:
        """(seconds counted, perf_counter at its end): the CLI from spawn to exit; the
        engine in-process without the fork around it."""
        if mode == "cli":
            r = c.nodewall_must(lab.server_ns, state, "apply", str(prof)).seconds
        else:
            r = _inproc_apply(lab.server_ns, str(state), str(prof))
        return r, time.perf_counter()

    try:
        c.send_probe(lab.client_ns, c.CLIENT)  # warm the neighbour caches
        apply_s, t0 = apply()
        full = apply_s + c.until_dropped(lab.client_ns, counter, 0) - t0
        shutil.copyfile(b, live)  # the operator edits one line of the nets_file
        before = counter()
        apply_s, t0 = apply()
        inc = apply_s + c.until_dropped(lab.client_ns, counter, before, src=NEW_PROBE) - t0
        return full, inc, {"changed": f"{old} -> {NEW_NET}", "apply_s": apply_s}
    finally:
        c.nodewall_cli(lab.server_ns, state, "flush")
        shutil.rmtree(state, ignore_errors=True)
        for p in (a, b, live):
            p.unlink(missing_ok=True)


def _inc_raw(lab, n: int) -> tuple[float, float, str]:
    """ipset restore (full, to drop) vs `ipset add NEW; ipset del OLD` (to drop)."""
    path = c.cidr_file(n)
    restore = _restore_file(path, n + 1)
    _, _, old = _changed_copy(path, "raw")
    srv = lab.server_ns
    counter = _counter(lab, "iptables")
    try:
        c.send_probe(lab.client_ns, c.CLIENT)
        t0 = time.perf_counter()
        with open(restore) as fh:
            c.in_ns(srv, "ipset", "-exist", "restore", stdin=fh, timeout=900)
        c.in_ns(srv, "iptables-legacy", "-w", "5", "-t", "raw", "-I", "PREROUTING", "-m", "set",
                "--match-set", RAW_SET, "src", "-j", "DROP")
        full = c.until_dropped(lab.client_ns, counter, 0) - t0
        before = counter()
        t0 = time.perf_counter()
        c.in_ns(srv, "ipset", "add", RAW_SET, NEW_NET)
        c.in_ns(srv, "ipset", "del", RAW_SET, old)
        inc = c.until_dropped(lab.client_ns, counter, before, src=NEW_PROBE) - t0
        return full, inc, f"{old} -> {NEW_NET}"
    finally:
        c.in_ns(srv, "iptables-legacy", "-w", "5", "-t", "raw", "-D", "PREROUTING", "-m", "set",
                "--match-set", RAW_SET, "src", "-j", "DROP", check=False)
        c.in_ns(srv, "ipset", "destroy", RAW_SET, check=False, timeout=300)


def _inc_ipset_layer(lab, n: int) -> dict:
    """bench/ipset_load's measurement (the ipset layer alone, in-process): nodewall's
    ipset_sync full load vs the one-line delta, on a fresh copy of the file."""

    from bench import ipset_load
    work = c.workdir() / f"ipset-layer-{c.unique_prefix()}"
    work.mkdir()
    try:
        nets = work / "big.txt"
        shutil.copyfile(c.cidr_file(n), nets)
        spec, restore, hashsize, maxelem = ipset_load.prepare(nets, work)
        return c.run_in(lab.server_ns, ipset_load._run, spec, nets, restore, work, hashsize,
                        maxelem)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_incremental(quick: bool, log=print) -> list[Row]:
    n = 10_000 if quick else 1_000_000
    rows: list[Row] = []
    with c.lab() as lab:
        try:
            r = _inc_ipset_layer(lab, n)
            log(f"    ipset layer: full {r['nodewall_full_s']:.3f} s, one line "
                f"{r['nodewall_incremental_s']:.4f} s")
            rows.append(Row(INC_SECTION, f"ipset layer alone (ipset_sync, as bench/ipset_load):"
                            f" one CIDR changed in {n:,}", "full load (same layer)",
                            r["nodewall_full_s"], r["nodewall_incremental_s"], "s", goal=0.01,
                            n=n, note=f"kernel check: {r['verified']}; ipset restore of the "
                                      f"same file {r['plain_one_restore_s']:.2f} s",
                            why="the delta still reads both versions of the file to find "
                                "the changed line"))
        except Exception as exc:  # noqa: BLE001 - reported in the table
            rows.append(Row(INC_SECTION, "ipset layer alone", "full load", None, None, "s",
                            goal=0.01, n=n, note=f"failed: {type(exc).__name__}: {exc}"))
        c.in_ns(lab.client_ns, "ip", "addr", "add", f"{NEW_PROBE}/32", "dev", "eth0")
        full, inc, change = _inc_raw(lab, n)
        log(f"    raw ipset: full {full:.3f} s, add+del {inc:.4f} s")
        rows.append(Row(INC_SECTION, f"raw tools: `ipset add` + `ipset del` vs full restore "
                        f"(N={n:,})", "same tool's full load → drop", full, inc, "s", n=n,
                        note=f"reference; changed {change}"))
        for backend, mode, label in (("iptables", "cli", "iptables+ipset, `nodewall apply`"),
                                     ("iptables", "inproc", "iptables+ipset, engine in-process"),
                                     ("xdp", "cli", "XDP backend, `nodewall apply`"),
                                     ("xdp", "inproc", "XDP backend, engine in-process")):
            try:
                full, inc, info = _inc_nodewall(lab, n, backend, mode)
            except Exception as exc:  # noqa: BLE001 - reported in the table
                rows.append(Row(INC_SECTION, f"{label}: one CIDR changed in {n:,}",
                                "full load → drop", None, None, "s", goal=0.01, n=n,
                                note=f"failed: {type(exc).__name__}: {str(exc)[:200]}"))
                log(f"    {label}: failed: {exc}")
                continue
            log(f"    {label}: full {full:.3f} s, one line changed {inc:.4f} s "
                f"({100 * inc / full:.2f} %)")
            rows.append(Row(INC_SECTION, f"{label}: one CIDR changed in {n:,}",
                            "full load → drop (same backend)", full, inc, "s", goal=0.01,
                            n=n, note=f"apply alone {info['apply_s']:.3f} s; {info['changed']}",
                            why="an apply has fixed costs the one-line delta does not: "
                                + ("CLI start-up and imports, " if mode == "cli" else "")
                                + "loading the profile (a scan of the nets_file) and diffing "
                                "it against the previous generation's copy, planning and "
                                "verifying iptables"
                                + (" and XDP" if backend == "xdp" else "")
                                + ", recording the generation (a copy of the file); the "
                                "kernel change itself is the ipset-layer row"))
    return rows
