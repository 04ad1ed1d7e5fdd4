"""Benchmark: one 1M-CIDR set loaded three ways, in a throwaway namespace.

  ipset      `ipset -exist restore` of `create` + one `add` line per CIDR (hash:net,
             sized like nodewall's ipsets)
  nft -f     `nft -f` of an interval set with `auto-merge` (the only plain nft way that
             accepts overlapping CIDRs), elements in `add element` commands of 10k
  nodewall   engine.dataplane.nftables.sets: plan + sync of one IpSetSpec over the file
             (merge in Python, one hand-written netlink batch), in a fresh interpreter

Each row: wall time of the process (spawn to exit) and its peak RSS (wait4 ru_maxrss);
the nodewall row also has the loader's own time (imports excluded).  The nft sets are
compared range by range at the end (nodewall's and nft's auto-merge must agree).

Run as root:  .venv/bin/python -m bench.nft_load [--lines N]
Nothing outside the namespace `nwb<random>` is touched; it is always deleted.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import common as c
from bench import harness as h
from bench.common import Row

SECTION = "nft_load"

CHILD = r"""
import json, sys, time
from pathlib import Path
t0 = time.perf_counter()
from nodewall.engine.dataplane.nftables import observe, sets
from nodewall.engine.plan.desired import IpSetSpec
spec = IpSetSpec(name="nwbench", family=4, kind="hash:net", files=(Path(sys.argv[1]),))
t1 = time.perf_counter()
made = sets.plan([spec], observe.observe(), manifests=Path(sys.argv[2]))
t2 = time.perf_counter()
sets.sync(made.changes, observe.observe(), manifests=Path(sys.argv[2]))
t3 = time.perf_counter()
print(json.dumps({"imports_s": t1 - t0, "parse_merge_s": t2 - t1, "kernel_s": t3 - t2,
                  "ranges": made.changes[0].total}))
"""


def timed(ns: str, argv: list[str], stdin_path: Path | None = None) -> tuple[float, float, str]:
    """(seconds, peak RSS MB, stdout) of `argv` run in `ns`."""
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL  # noqa: SIM115
    with tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdin=stdin, stdout=out,
                                stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read().decode() if proc.stderr else ""
        if stdin_path:
            stdin.close()  # type: ignore[union-attr]
        if proc.returncode != 0:
            raise RuntimeError(f"{argv[0]} exited {proc.returncode}: {err[-500:]}")
        out.seek(0)
        return seconds, usage.ru_maxrss / 1024, out.read().decode()


def write_inputs(src: Path, work: Path) -> tuple[Path, Path]:
    from nodewall.engine.dataplane.ipsets.load import sizing
    lines = src.read_text().split()
    hashsize, maxelem = sizing(len(lines))
    ipset = work / "ipset.restore"
    with open(ipset, "w") as fh:
        fh.write(f"create nwb hash:net family inet hashsize {hashsize} maxelem {maxelem}\n")
        fh.writelines(f"add nwb {x}\n" for x in lines)
    nft = work / "set.nft"
    with open(nft, "w") as fh:
        fh.write("add table inet nwbench\n")
        fh.write("add set inet nwbench s { type ipv4_addr; flags interval; auto-merge; }\n")
        fh.writelines("add element inet nwbench s { " + ", ".join(lines[i:i + 10000]) + " }\n"
                      for i in range(0, len(lines), 10000))
    return ipset, nft


def _ranges(table: str, name: str) -> list[int]:
    from nodewall.engine.dataplane.nftables import intervals, netlink
    return intervals.merge(netlink.ranges_of(netlink.set_elements(table, name)), 4)


def elements(ns: str, table: str, name: str) -> list[int]:
    """The set's ranges as the kernel holds them (one netlink dump: `nft list set`
    takes ~45 s for 1M elements)."""
    from nodewall.engine.system.netns import run_in_netns
    return run_in_netns(ns, _ranges, table, name)


def measure(lines: int) -> dict:
    """One run: the three loaders on the same file, in a namespace of their own."""
    ns = h.unique_prefix()
    work = Path(tempfile.mkdtemp(prefix="nw-nftbench-"))
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        src = c.write_cidr_file(work / "cidrs.txt", lines)
        ipset_in, nft_in = write_inputs(src, work)
        out: dict = {"lines": lines}
        out["ipset_s"], out["ipset_mb"], _ = timed(ns, ["ipset", "-exist", "restore"], ipset_in)
        out["nft_s"], out["nft_mb"], _ = timed(ns, ["nft", "-f", str(nft_in)])
        out["nw_s"], out["nw_mb"], text = timed(
            ns, [sys.executable, "-c", CHILD, str(src), str(work / "man")])
        out.update(json.loads(text))
        out["same"] = elements(ns, "nwbench", "s") == elements(ns, "nodewall", "nwbench")
        return out
    finally:
        subprocess.run(["ip", "netns", "delete", ns], check=False)
        subprocess.run(["rm", "-rf", str(work)], check=False)


RSS_CEILING_MB = 200.0  # the nodewall process's peak RSS goal for 1M CIDRs


def run(quick: bool, log=print) -> list[Row]:
    """Rows for bench/run.py (section nft_load): 1M CIDRs (100k with --quick)."""
    n = 100_000 if quick else 1_000_000
    r = measure(n)
    inner = (f"imports {r['imports_s']:.2f} s, parse+merge {r['parse_merge_s']:.2f} s, "
             f"netlink {r['kernel_s']:.2f} s, {r['ranges']:,} ranges; same set as nft's "
             f"auto-merge: {r['same']}")
    log(f"    ipset restore {r['ipset_s']:.2f} s {r['ipset_mb']:.0f} MB, nft -f "
        f"{r['nft_s']:.2f} s {r['nft_mb']:.0f} MB, nodewall {r['nw_s']:.2f} s "
        f"{r['nw_mb']:.0f} MB ({inner})")
    rss_ok = "met" if r["nw_mb"] < RSS_CEILING_MB else "**missed**"
    return [
        Row(SECTION, f"nodewall's nft loader: {n:,} CIDRs into an interval set",
            "`ipset -exist restore` (hash:net)", r["ipset_s"], r["nw_s"], "s",
            goal=1.5 if n >= 1_000_000 else None, n=n,
            note=f"whole process, spawn to exit; {inner}", extra=r,
            why="Python merges the ranges and encodes the elements before the kernel sees "
                "the first one"),
        Row(SECTION, f"`nft -f` (auto-merge): {n:,} CIDRs", "`ipset -exist restore`",
            r["ipset_s"], r["nft_s"], "s", n=n,
            note="reference: the nft tool itself (interval checks, one expression object "
                 "per element)"),
        Row(SECTION, f"peak RSS, nodewall's nft loader vs `nft -f`: {n:,} CIDRs",
            "`nft -f` (auto-merge)", r["nft_mb"], r["nw_mb"], "MB", n=n,
            note=f"goal: nodewall under {RSS_CEILING_MB:.0f} MB: {rss_ok}; `ipset restore` "
                 f"{r['ipset_mb']:.0f} MB"),
    ]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1_000_000)
    args = ap.parse_args()
    r = measure(args.lines)
    rows = [("ipset -exist restore", r["ipset_s"], r["ipset_mb"], ""),
            ("nft -f (auto-merge)", r["nft_s"], r["nft_mb"], ""),
            ("nodewall nft loader", r["nw_s"], r["nw_mb"],
             (f"imports {r['imports_s']:.2f} s, parse+merge {r['parse_merge_s']:.2f} s, "
              f"netlink {r['kernel_s']:.2f} s, {r['ranges']} ranges"))]
    base = rows[0][1]
    print(f"{args.lines} CIDRs ({c.machine().get('kernel', os.uname().release)})")
    print(f"{'loader':<24}{'time':>9}{'vs ipset':>10}{'peak RSS':>11}  notes")
    for name, secs, mb, note in rows:
        print(f"{name:<24}{secs:>8.2f}s{secs / base:>9.2f}x{mb:>8.0f} MB  {note}")
    print(f"nodewall's set == nft's auto-merged set: {r['same']}")
    return 0 if r["same"] else 1


if __name__ == "__main__":
    sys.exit(main())
