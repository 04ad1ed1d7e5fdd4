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


def elements(ns: str, table: str, name: str) -> list:
    proc = subprocess.run(["ip", "netns", "exec", ns, "nft", "-j", "list", "set", "inet",
                           table, name], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)["nftables"][1]["set"].get("elem", [])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1_000_000)
    args = ap.parse_args()
    ns = c.unique_prefix()
    work = Path(tempfile.mkdtemp(prefix="nw-nftbench-"))
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        src = c.write_cidr_file(work / "cidrs.txt", args.lines)
        ipset_in, nft_in = write_inputs(src, work)
        rows = []
        s, rss, _ = timed(ns, ["ipset", "-exist", "restore"], ipset_in)
        rows.append(("ipset -exist restore", s, rss, ""))
        s, rss, _ = timed(ns, ["nft", "-f", str(nft_in)])
        rows.append(("nft -f (auto-merge)", s, rss, ""))
        s, rss, out = timed(ns, [sys.executable, "-c", CHILD, str(src), str(work / "man")])
        inner = json.loads(out)
        note = (f"imports {inner['imports_s']:.2f} s, parse+merge "
                f"{inner['parse_merge_s']:.2f} s, netlink {inner['kernel_s']:.2f} s, "
                f"{inner['ranges']} ranges")
        rows.append(("nodewall nft loader", s, rss, note))
        same = elements(ns, "nwbench", "s") == elements(ns, "nodewall", "nwbench")
        base = rows[0][1]
        print(f"{args.lines} CIDRs ({c.machine().get('kernel', os.uname().release)})")
        print(f"{'loader':<24}{'time':>9}{'vs ipset':>10}{'peak RSS':>11}  notes")
        for name, secs, mb, note in rows:
            print(f"{name:<24}{secs:>8.2f}s{secs / base:>9.2f}x{mb:>8.0f} MB  {note}")
        print(f"nodewall's set == nft's auto-merged set: {same}")
        return 0 if same else 1
    finally:
        subprocess.run(["ip", "netns", "delete", ns], check=False)
        subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    sys.exit(main())
