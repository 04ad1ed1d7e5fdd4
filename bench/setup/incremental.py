"""Section 2 — incremental update: the operator edits one line of a 1M-line nets_file
(a /32 no other line covers becomes 198.18.77.0/24) and applies again; the time stops
when a probe from 198.18.77.5 is seen dropped.  Compared with the same tool's full
load: nodewall (iptables+ipset, XDP and nftables, CLI and in-process), the raw tools
(`ipset add` + `ipset del`), and the ipset layer alone (bench/ipset_load).
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

from bench import common as c
from bench import harness as h
from bench.common import Row
from bench.setup import cases

SECTION = "incremental"
NFT_WHY = ("and on nftables the set's ranges are derived again from the whole file (parse "
           "and merge of every CIDR in Python, the loader's parse+merge figure in section "
           "8) to be compared with the recorded ranges; the kernel change itself is one "
           "netlink transaction of a few elements")
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
    tag = f"{backend}-{mode}-{h.unique_prefix()}"
    a, b, old = _changed_copy(c.cidr_file(n), tag)
    live = c.workdir() / f"inc-{tag}.txt"
    shutil.copyfile(a, live)
    prof = c.deny_profile(c.workdir() / f"inc-{tag}.toml", live, backend=backend)
    state = c.workdir() / f"state-{tag}"
    counter = cases.drop_counter(lab, backend)

    def apply() -> tuple[float, float]:
        """(seconds counted, perf_counter at its end): the CLI from spawn to exit; the
        engine in-process without the fork around it."""
        if mode == "cli":
            r = h.nodewall_must(lab.server_ns, state, "apply", str(prof)).seconds
        else:
            r = cases.inproc_apply(lab.server_ns, str(state), str(prof))
        return r, time.perf_counter()

    try:
        h.send_probe(lab.client_ns, c.CLIENT)  # warm the neighbour caches
        apply_s, t0 = apply()
        full = apply_s + h.until_dropped(lab.client_ns, counter, 0) - t0
        shutil.copyfile(b, live)  # the operator edits one line of the nets_file
        before = counter()
        apply_s, t0 = apply()
        inc = apply_s + h.until_dropped(lab.client_ns, counter, before, src=NEW_PROBE) - t0
        return full, inc, {"changed": f"{old} -> {NEW_NET}", "apply_s": apply_s}
    finally:
        h.nodewall_cli(lab.server_ns, state, "flush")
        shutil.rmtree(state, ignore_errors=True)
        for p in (a, b, live):
            p.unlink(missing_ok=True)


def _inc_raw(lab, n: int) -> tuple[float, float, str]:
    """ipset restore (full, to drop) vs `ipset add NEW; ipset del OLD` (to drop)."""
    path = c.cidr_file(n)
    restore = cases.restore_file(path, n + 1)
    _, _, old = _changed_copy(path, "raw")
    srv = lab.server_ns
    counter = cases.drop_counter(lab, "iptables")
    try:
        h.send_probe(lab.client_ns, c.CLIENT)
        t0 = time.perf_counter()
        with open(restore) as fh:
            h.in_ns(srv, "ipset", "-exist", "restore", stdin=fh, timeout=900)
        h.in_ns(srv, "iptables-legacy", "-w", "5", "-t", "raw", "-I", "PREROUTING", "-m", "set",
                "--match-set", cases.RAW_SET, "src", "-j", "DROP")
        full = h.until_dropped(lab.client_ns, counter, 0) - t0
        before = counter()
        t0 = time.perf_counter()
        h.in_ns(srv, "ipset", "add", cases.RAW_SET, NEW_NET)
        h.in_ns(srv, "ipset", "del", cases.RAW_SET, old)
        inc = h.until_dropped(lab.client_ns, counter, before, src=NEW_PROBE) - t0
        return full, inc, f"{old} -> {NEW_NET}"
    finally:
        h.in_ns(srv, "iptables-legacy", "-w", "5", "-t", "raw", "-D", "PREROUTING", "-m", "set",
                "--match-set", cases.RAW_SET, "src", "-j", "DROP", check=False)
        h.in_ns(srv, "ipset", "destroy", cases.RAW_SET, check=False, timeout=300)


def _inc_ipset_layer(lab, n: int) -> dict:
    """bench/ipset_load's measurement (the ipset layer alone, in-process): nodewall's
    ipset_sync full load vs the one-line delta, on a fresh copy of the file."""

    from bench import ipset_load
    work = c.workdir() / f"ipset-layer-{h.unique_prefix()}"
    work.mkdir()
    try:
        nets = work / "big.txt"
        shutil.copyfile(c.cidr_file(n), nets)
        spec, restore, hashsize, maxelem = ipset_load.prepare(nets, work)
        return h.run_in(lab.server_ns, ipset_load._run, spec, nets, restore, work, hashsize,
                        maxelem)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(quick: bool, log=print) -> list[Row]:
    n = 10_000 if quick else 1_000_000
    rows: list[Row] = []
    with h.lab() as lab:
        try:
            r = _inc_ipset_layer(lab, n)
            log(f"    ipset layer: full {r['nodewall_full_s']:.3f} s, one line "
                f"{r['nodewall_incremental_s']:.4f} s")
            rows.append(Row(SECTION, f"ipset layer alone (ipset_sync, as bench/ipset_load):"
                            f" one CIDR changed in {n:,}", "full load (same layer)",
                            r["nodewall_full_s"], r["nodewall_incremental_s"], "s", goal=0.01,
                            n=n, note=f"kernel check: {r['verified']}; ipset restore of the "
                                      f"same file {r['plain_one_restore_s']:.2f} s",
                            why="the delta still reads both versions of the file to find "
                                "the changed line"))
        except Exception as exc:  # noqa: BLE001 - reported in the table
            rows.append(Row(SECTION, "ipset layer alone", "full load", None, None, "s",
                            goal=0.01, n=n, note=f"failed: {type(exc).__name__}: {exc}"))
        h.in_ns(lab.client_ns, "ip", "addr", "add", f"{NEW_PROBE}/32", "dev", "eth0")
        full, inc, change = _inc_raw(lab, n)
        log(f"    raw ipset: full {full:.3f} s, add+del {inc:.4f} s")
        rows.append(Row(SECTION, f"raw tools: `ipset add` + `ipset del` vs full restore "
                        f"(N={n:,})", "same tool's full load → drop", full, inc, "s", n=n,
                        note=f"reference; changed {change}"))
        for backend, mode, label in (("iptables", "cli", "iptables+ipset, `nodewall apply`"),
                                     ("iptables", "inproc", "iptables+ipset, engine in-process"),
                                     ("xdp", "cli", "XDP backend, `nodewall apply`"),
                                     ("xdp", "inproc", "XDP backend, engine in-process"),
                                     ("nftables", "cli", "nftables, `nodewall apply`"),
                                     ("nftables", "inproc", "nftables, engine in-process")):
            try:
                full, inc, info = _inc_nodewall(lab, n, backend, mode)
            except Exception as exc:  # noqa: BLE001 - reported in the table
                rows.append(Row(SECTION, f"{label}: one CIDR changed in {n:,}",
                                "full load → drop", None, None, "s", goal=0.01, n=n,
                                note=f"failed: {type(exc).__name__}: {str(exc)[:200]}"))
                log(f"    {label}: failed: {exc}")
                continue
            log(f"    {label}: full {full:.3f} s, one line changed {inc:.4f} s "
                f"({100 * inc / full:.2f} %)")
            rows.append(Row(SECTION, f"{label}: one CIDR changed in {n:,}",
                            "full load → drop (same backend)", full, inc, "s", goal=0.01,
                            n=n, note=f"apply alone {info['apply_s']:.3f} s; {info['changed']}",
                            why="an apply has fixed costs the one-line delta does not: "
                                + ("CLI start-up and imports, " if mode == "cli" else "")
                                + "loading the profile (a scan of the nets_file) and diffing "
                                "it against the previous generation's copy, planning and "
                                + ("verifying the nft table" if backend == "nftables" else
                                   "verifying iptables")
                                + (" and XDP" if backend == "xdp" else "")
                                + ", recording the generation (a copy of the file); "
                                + (NFT_WHY if backend == "nftables" else
                                   "the kernel change itself is the ipset-layer row")))
    return rows
