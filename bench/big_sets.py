"""Section 6 — 10M CIDRs: the set applies with each backend, and the nodewall
process's peak RSS stays small (goal <= 200 MB: nets_files are streamed, never held
as Python objects per CIDR).

The figures come from section 1's 10M runs when they ran in this process (`nodewall
apply` through the CLI, VmHWM of the nodewall process polled from /proc until it
exits); otherwise this section runs that N itself.  RSS is the process's own; the
kernel memory of the set/trie and the `ipset restore` child are not in it (the largest
child is reported in the note)."""
from __future__ import annotations

from bench import common as c
from bench import setup_time
from bench.common import Row

SECTION = "big_sets"
RSS_GOAL_MB = 200.0


def _why_xdp_rss() -> str:
    small = setup_time.MEASURED.get(min(setup_time.MEASURED, default=0), {})
    base = (f" (already {small['xdp_cli_rss_mb']:.0f} MB with {small['n']:,} CIDRs vs "
            f"{small['ipt_cli_rss_mb']:.0f} MB for the iptables backend)"
            if small.get("xdp_cli_rss_mb") else "")
    return ("bcc compiles the XDP program with LLVM inside the nodewall process; that costs "
            f"a fixed ~140 MB before any CIDR is read{base}; the CIDRs themselves are "
            "streamed")


def run(quick: bool, log=print) -> list[Row]:
    n = 100_000 if quick else 10_000_000
    m = setup_time.MEASURED.get(n)
    if m is None:
        with c.lab() as lab:
            m = setup_time.measure(n, lab, linear_max=0, log=log)
        setup_time.MEASURED[n] = m
    rows = [
        Row(SECTION, f"iptables+ipset: {n:,} CIDRs applied, `nodewall apply` → drop",
            "ipset restore + rule → drop", m["raw_e2e_s"], m["ipt_cli_s"], "s", goal=1.0, n=n,
            why=setup_time.rows_for(m)[0].why),
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
