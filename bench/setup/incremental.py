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
NEW_NET, NEW_PROBE = "198.18.77.0/24", "198.18.77.5"  # benchmarking range: not generated
GOALS = {"inproc": 0.01, "cli": 0.05}  # of the same backend's full load
CASES = (("iptables", "inproc", "iptables+ipset, engine in-process"),
         ("iptables", "cli", "iptables+ipset, `nodewall apply`"),
         ("xdp", "inproc", "XDP backend, engine in-process"),
         ("xdp", "cli", "XDP backend, `nodewall apply`"),
         ("nftables", "inproc", "nftables, engine in-process"),
         ("nftables", "cli", "nftables, `nodewall apply`"))
# What a one-line delta still pays, from cProfile of the in-process apply (see the
# profile section of bench/results.md); the kernel change itself is a few ms.
FIXED = ("the delta itself is in place (the changed lines only), what is left are a "
         "transaction's fixed costs, each 10–60 ms (cProfile): reading the kernel back "
         "for the preview and again for the rule-block digests after the write, "
         "loading the profile with the nets_file's diff against the previous "
         "generation's copy, one sha256 of the 14 MB file, and recording the generation "
         "(a copy of the file, fsyncs of the journal, meta and profile copy)")
BACKEND_WHY = {
    "iptables": "; plus loading python-iptables (~25 ms) and `ipset list`/`ipset "
                "restore` subprocesses",
    "xdp": "; plus the iptables/ipset backstop's share and the XDP plan (a gained "
           "prefix: its trie entry and the entries inside it updated in the live maps; "
           "this used to be a reload of the whole family, ~1.2 s)",
    "nftables": "; plus reading and writing the record of the set's 1M ranges (~30 ms "
                "each) and the kernel's commit of the element change into a 1M-element "
                "interval set (~125 ms in the netlink send; before this round the plan "
                "parsed and merged the whole file again, ~2 s)",
}


def _why(backend: str, mode: str, measured: dict[tuple[str, str], dict]) -> str:
    why = FIXED + BACKEND_WHY[backend]
    if mode == "cli":
        inproc = measured.get((backend, "inproc"))
        cli = measured[(backend, "cli")]
        start = (f" ≈ {cli['apply_s'] - inproc['apply_s']:.2f} s (CLI minus in-process "
                 "apply)") if inproc else ""
        why = (f"CLI start-up and imports{start} come on top of the in-process row "
               "(the imports are the small-profile item of the same issue); " + why)
    return why


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
                            why="the kernel change is one `ipset restore` of two lines; "
                                "the rest (cProfile, 1M): `ipset list -t` to observe the "
                                "sets (~25 ms: the kernel walks the 1M-member set to "
                                "report its header), the sha256 of the new file for the "
                                "set's manifest (~10 ms), the memcmp of both versions of "
                                "the file and the search for other spellings of the "
                                "removed member (~10 ms)"))
        except Exception as exc:  # noqa: BLE001 - reported in the table
            rows.append(Row(SECTION, "ipset layer alone", "full load", None, None, "s",
                            goal=0.01, n=n, note=f"failed: {type(exc).__name__}: {exc}"))
        h.in_ns(lab.client_ns, "ip", "addr", "add", f"{NEW_PROBE}/32", "dev", "eth0")
        full, inc, change = _inc_raw(lab, n)
        log(f"    raw ipset: full {full:.3f} s, add+del {inc:.4f} s")
        rows.append(Row(SECTION, f"raw tools: `ipset add` + `ipset del` vs full restore "
                        f"(N={n:,})", "same tool's full load → drop", full, inc, "s", n=n,
                        note=f"reference; changed {change}"))
        measured: dict[tuple[str, str], dict] = {}
        for backend, mode, label in CASES:
            try:
                full, inc, info = _inc_nodewall(lab, n, backend, mode)
            except Exception as exc:  # noqa: BLE001 - reported in the table
                rows.append(Row(SECTION, f"{label}: one CIDR changed in {n:,}",
                                "full load → drop", None, None, "s", goal=GOALS[mode], n=n,
                                note=f"failed: {type(exc).__name__}: {str(exc)[:200]}"))
                log(f"    {label}: failed: {exc}")
                continue
            log(f"    {label}: full {full:.3f} s, one line changed {inc:.4f} s "
                f"({100 * inc / full:.2f} %)")
            measured[(backend, mode)] = info
            rows.append(Row(SECTION, f"{label}: one CIDR changed in {n:,}",
                            "full load → drop (same backend)", full, inc, "s",
                            goal=GOALS[mode], n=n,
                            note=f"apply alone {info['apply_s']:.3f} s; {info['changed']}",
                            why=_why(backend, mode, measured)))
    return rows
