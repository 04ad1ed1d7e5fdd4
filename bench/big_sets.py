"""Section 6 — 10M CIDRs: the set applies with each backend, and the nodewall
process's peak RSS stays small (goal <= 200 MB: nets_files are streamed, never held
as Python objects per CIDR).

The figures come from section 1's 10M runs when they ran in this process (`nodewall
apply` through the CLI, VmHWM of the nodewall process polled from /proc until it
exits); otherwise this section runs that N itself.  RSS is the process's own; the
kernel memory of the set/trie and the `ipset restore` child are not in it (the largest
child is reported in the note)."""
from __future__ import annotations

from bench import harness as h
from bench.common import Row
from bench.setup import time_vs_n

SECTION = "big_sets"
RSS_GOAL_MB = 200.0


def _why_xdp_rss() -> str:
    by_n = {n: m["xdp_cli_rss_mb"] for n, m in sorted(time_vs_n.MEASURED.items())
            if m.get("xdp_cli_rss_mb")}
    ipt = {n: m["ipt_cli_rss_mb"] for n, m in sorted(time_vs_n.MEASURED.items())
           if m.get("ipt_cli_rss_mb")}
    if not by_n:
        return "bcc/LLVM compiles the XDP program inside the nodewall process"
    lo, hi = min(by_n), max(by_n)
    trend = ", ".join(f"{by_n[n]:.0f} MB at {n:,}" for n in by_n)
    why = (f"bcc compiles the XDP program with LLVM inside the nodewall process: "
           f"{by_n[lo]:.0f} MB already at {lo:,} CIDRs (iptables backend: "
           f"{ipt.get(lo, 0):.0f} MB)")
    if hi != lo and by_n[hi] - by_n[lo] > 50:
        per = (by_n[hi] - by_n[lo]) * 1024 * 1024 / (hi - lo)
        why += (f"; on top of that the XDP apply path grows with N ({trend}: about "
                f"{per:.0f} bytes per CIDR, while the iptables backend stays at "
                f"{ipt.get(hi, 0):.0f} MB), i.e. it holds per-entry data instead of "
                "streaming — reported to the XDP backend's owner")
    return why


def run(quick: bool, log=print) -> list[Row]:
    n = 100_000 if quick else 10_000_000
    m = time_vs_n.MEASURED.get(n)
    if m is None:
        with h.lab() as lab:
            m = time_vs_n.measure(n, lab, linear_max=0, log=log)
        time_vs_n.MEASURED[n] = m
    rows = [
        Row(SECTION, f"iptables+ipset: {n:,} CIDRs applied, `nodewall apply` → drop",
            "ipset restore + rule → drop", m["raw_e2e_s"], m["ipt_cli_s"], "s", goal=1.0, n=n,
            why=time_vs_n.rows_for(m)[0].why),
        Row(SECTION, f"iptables+ipset: peak RSS of the nodewall process ({n:,})",
            "RSS budget", RSS_GOAL_MB, m["ipt_cli_rss_mb"], "MB", goal=1.0, n=n,
            note=f"largest process incl. children (wait4): {m['ipt_cli_tree_rss_mb']:.0f} MB",
            why="peak while streaming the file into `ipset restore` and recording the "
                "generation"),
    ]
    if "xdp_cli_s" in m:
        rows += [
            Row(SECTION, f"XDP: {n:,} CIDRs applied, `nodewall apply` → XDP drop",
                "ipset restore + rule → drop", m["raw_e2e_s"], m["xdp_cli_s"], "s", n=n,
                note="XDP trie + the raw/ipset backstop"),
            Row(SECTION, f"XDP: peak RSS of the nodewall process ({n:,})", "RSS budget",
                RSS_GOAL_MB, m["xdp_cli_rss_mb"], "MB", goal=1.0, n=n,
                note=f"largest process incl. children (wait4): "
                     f"{m['xdp_cli_tree_rss_mb']:.0f} MB; includes bcc/LLVM compiling the "
                     "program in-process",
                why=_why_xdp_rss()),
        ]
    else:
        rows.append(Row(SECTION, f"XDP: {n:,} CIDRs", "ipset restore", None, None, "s", n=n,
                        note=m.get("xdp_error", "not measured")))
    return rows
