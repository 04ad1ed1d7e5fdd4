"""`make bench`: the whole benchmark suite, in throwaway namespaces, written to
bench/results.md (+ results.json, PNG plots) and quoted in the README.

    .venv/bin/python -m bench.run [--quick] [--only SECTION[,SECTION…]] [--no-readme]

Sections (each its own module with run(quick) -> list[Row]):
  setup        1. set-up time vs N (bench/setup/time_vs_n.py)
  incremental  2. one CIDR changed in a 1M set vs the full load (bench/setup/incremental.py)
  droprate     3. per-core drop rate vs N (the XDP engineer's bench/xdp_* modules)
  xdp_pkt      3b. XDP per-packet cost vs a floor program (the XDP engineer's bench/xdp_pkt)
  untracked    4. untracked fast path, redis-benchmark -k 0 (bench/redis/untracked.py)
  latency      5. Redis PING p50/p99 with 0 and 1M entries (bench/redis/latency.py)
  big_sets     6. 10M CIDRs per backend, peak RSS (bench/big_sets.py)
  tui          7. TUI time to first frame, CPU per tick, RSS (bench/tui_cost.py)
  metrics      8. Prometheus exporter: one scrape's time, CPU, RSS (bench/metrics_scrape.py)
  nft_load     9. 1M CIDRs into an nft set: nodewall vs ipset restore vs nft -f (bench/nft_load.py)
  small_apply  10. the worked example: CLI apply vs the raw restores (bench/small_apply.py)
Every figure is a ratio against the raw tool measured in the same run.  A full run
(no --quick, no --only) also rewrites the README's benchmark table (between the
`<!-- bench:begin -->` / `<!-- bench:end -->` markers) so the two always match.
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench import common as c
from bench.common import Row

HERE = Path(__file__).resolve().parent
README = c.REPO / "README.md"
PROFILES_MD = HERE / "profiles.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"

TITLES = {
    "setup": "1. Set-up time vs N (start of the load until a listed source is seen dropped)",
    "incremental": "2. Incremental update: one CIDR changed in a 1M set",
    "droprate": "3. Per-core drop rate vs N (BPF_PROG_TEST_RUN live frames into a veth)",
    "xdp_pkt": "3b. XDP per-packet cost vs a floor program (BPF_PROG_TEST_RUN)",
    "untracked": "4. Untracked fast path: `redis-benchmark -k 0`",
    "latency": "5. Latency vs N: Redis PING p50/p99",
    "big_sets": "6. 10M CIDRs per backend, peak RSS",
    "tui": "7. TUI cost (1M-entry set, 100 rules)",
    "metrics": "8. Metrics exporter: one scrape (1M-entry set, 100 rules)",
    "nft_load": "9. nftables: 1M CIDRs into an nft set, time and peak RSS",
    "small_apply": "10. Small profiles: the worked example from the CLI",
}


SECTION_NOTES = {
    "setup": "Each case starts from an empty kernel; the probe is a UDP datagram from "
             "203.0.113.7 (the last line of every set), and the time stops when the DROP "
             "rule's (or XDP's deny) counter is seen to move. The CLI rows are `nodewall "
             "--netns … apply` as a subprocess; the in-process rows time Service.apply() "
             "inside a fresh interpreter (no start-up, no imports). The XDP map rows are "
             "bench/xdp_load's raw BPF_MAP_UPDATE_BATCH of pre-packed keys beside nodewall's "
             "trie load of the same file.",
    "incremental": "The operator edits one line of the 1M-line nets_file (a /32 no other "
                   "line covers becomes 198.18.77.0/24) and applies again; the time stops "
                   "when a probe from 198.18.77.5 is seen dropped.",
    "latency": "redis-benchmark reports its percentiles in 8 µs steps at these values: "
               "equal figures mean \"within one step\", and p99 moves by one step between "
               "runs on this shared machine.",
    "big_sets": "From section 1's 10M runs: peak RSS is VmHWM of the `nodewall apply` "
                "process, polled from /proc until it exits.",
    "metrics": "`nodewall --netns … metrics` serves the lab server's namespace; a client "
               "inside it GETs /metrics 20 times (5 with --quick). A scrape reads every "
               "dataplane once (set headers only, never the members) and the state dir; "
               "CPU is the exporter's utime+stime over the scrapes divided by their number.",
    "nft_load": "One file, three loaders, each in a fresh namespace-bound process: wall time "
                "from spawn to exit and peak RSS (wait4 ru_maxrss). nodewall's loader is "
                "engine.dataplane.nftables.sets (plan + sync: ranges merged in Python, one "
                "hand-written netlink batch). The sets are compared element by element at "
                "the end. Standalone: `python -m bench.nft_load --lines 1000000`.",
    "small_apply": "profiles/redis-host.toml (backend iptables) applied by `nodewall "
                   "--netns … apply` on an empty kernel (fresh state dir each run), "
                   "against `ipset restore`, `iptables-legacy-restore` and "
                   "`ip6tables-legacy-restore` of what that apply put in the kernel "
                   "(saved right after it), timed inside the namespace.",
    "tui": "A fresh interpreter enters the namespace and runs the app headless "
           "(App.run_test, 120x40); first frame = the first status report rendered. "
           "CPU per tick is the process's CPU time over 10 ticks divided by 10; the "
           "goal row adds the CPU of the tools those ticks ran (ipset, "
           "iptables-legacy-save: the drift and foreign checks, every 5 s) and compares "
           "the sum with the 10 ms budget.",
}


# Where the time went, from profiles (py-spy, python -X importtime, cProfile) taken
# while working on the section; printed under its table.  Figures are from the lab
# with a 1M-entry set and 100 rules (tui) and profiles/redis-host.toml (small_apply).
SECTION_PROFILES = {
    "tui": [
        ("**Profile (py-spy of the TUI over 40 ticks; cProfile and rusage of "
        "Service.status in the namespace).** Before: every tick ran the full status, "
        "37–41 ms CPU a call: `ipset list -t` walking the 1M set 17–18 ms and "
        "`iptables-legacy-save` ×2 for foreign `--match-set nw-` rules 6.3 ms (both in "
        "child processes), the libiptc read of six tables 3.1 ms, links 1.8–2.2 ms, "
        "foreign/drift parsing 2.5–2.9 ms; status was 33 % of the TUI's samples, "
        "Textual's compositor and DataTables 15–17 %, and the bench's own "
        "`pilot.pause(0.05)` polling cost 16 ms per 0.5 s with the app paused (now "
        "`asyncio.sleep`, not counted as the TUI's)."),
        ("After: a tick reads the counting dataplanes only (7 ms: libiptc 3.1 ms, links "
        "1.8 ms, nftables+XDP 0.5 ms, state dir 0.4 ms, rule rows 0.5 ms); drift and "
        "foreign (41 ms, 27 ms of it in the tools) run once per 5 s "
        "(tui.client.CHECKS_EVERY_S) and on a new generation; the dashboard redraws only "
        "the widgets whose content changed. Measured per tick at 0.5 s: status 10–12 ms "
        "thread CPU (the 5-s checks amortised), Textual 11–13 ms, tools 2–3 ms."),
    ],
    "small_apply": [
        ("**Profile (python -X importtime, py-spy, cProfile of the CLI apply).** Before: "
        "`import iptc` 555 ms under importtime — its `distutils` import resolved to "
        "setuptools' copy (setuptools, pkg_resources: 370 ms; the shim is installed at "
        "start-up, so the SETUPTOOLS_USE_DISTUTILS set at import time did nothing), "
        "`ctypes.util.find_library` ran `ldconfig -p`, gcc and ld per name tried "
        "(~150 ms) and `ldconfig -N -v` scanned every library directory; "
        "`nodewall.engine.cli.commands` 421 ms cumulative; shtab and importlib.metadata "
        "(17 ms) for completion only; with PYTHONDONTWRITEBYTECODE=1 (this machine's "
        "environment) every module was compiled on each run (`compile` 129 ms of 400 ms "
        "of imports); in the transaction tomlkit's import and two parses of the "
        "profile (~35 ms)."),
        ("After: `import iptc` 8.5 ms (libraries looked up in the library directories, "
        "its wrapper next to the package, the extensions directory given, the "
        "standard library's distutils); profiles parsed with tomllib, the recorded "
        "copy's nets_file lines rewritten in place; shtab, explain, history, scrape, "
        "agent and XDP planning imported only by the commands that use them. What is "
        "left (with bytecode): interpreter start-up ~25 ms, imports 110–126 ms "
        "(`cli.commands` 81 ms; ~100 nodewall modules, dataclass creation ~20 % and "
        "regex compilation ~10 % of py-spy's samples), the transaction 44–75 ms "
        "(libiptc rules for 79 specs, 10 `ipset` runs, 6 fsyncs of the generation "
        "record)."),
    ],
}

def _foreign(module: str, quick: bool) -> list[Row]:
    """Rows of one of the XDP engineer's sections (run(quick) -> their JSON dicts)."""
    return [c.row_from_json(r) for r in importlib.import_module(module).run(quick)]


def _droprate(quick: bool, log) -> list[Row]:
    rows = _foreign("bench.xdp_drop", quick)
    for r in rows:
        r.section = "droprate"
    receiver = {r.n: r for r in rows if r.case.endswith("receiver's cost only")}
    sources = next((r.extra["sources"] for r in rows if "sources" in r.extra), None)
    for r in rows:
        if r.met is False and not r.why:
            r.why = _droprate_why(r, receiver, sources)
    return rows


def _ns(rate: float | None) -> str:
    return f"{1e9 / rate:,.0f} ns" if rate else "?"


def _droprate_why(r: Row, receiver: dict[int | None, Row], sources: int | None) -> str:
    """Why a drop-rate row misses 3x, from the receiver's-cost rows of the same run: the
    injector's share when XDP's own cost is small, else how XDP's cost grew with N."""
    mine = receiver.get(r.n)
    if mine is not None and mine.met is False:
        spread = f"{sources:,}" if sources else "many"
        steps = ", ".join(f"{_ns(x.value)} at {x.n:,}" for x in
                          sorted(receiver.values(), key=lambda x: x.n or 0))
        return (f"XDP's own per-packet cost grows with the set ({steps} entries; raw+ipset "
                f"{_ns(mine.raw)} here): the frames cycle through {spread} sources "
                "spread over the set, so each lookup misses the CPU caches. Section 3b measures the "
                "lookup alone with random sources (random-source rows: nodewall's trie "
                "costs about what one hash per prefix length costs, the plain LPM floor "
                "more), and hash:net pays the same misses, so at this size the skb and "
                "stack work XDP saves is a smaller share of a packet")
    ceil = r.extra.get("ceiling_pps")
    return ("the per-core figure includes the injector's own cost on the same core"
            + (f" (it alone tops out at {ceil:,.0f}/s)" if ceil else "")
            + ", which weighs more on the faster path; the receiver's-cost row "
            "subtracts it; see bench/xdp_drop.py")


def _xdp_pkt(quick: bool, log) -> list[Row]:
    rows = _foreign("bench.xdp_pkt", quick)
    for r in rows:
        r.section = "xdp_pkt"
        if r.met is False and not r.why and r.value is not None and r.raw is not None:
            r.why = (f"nodewall's fixed work per packet ({r.value - r.raw:.0f} ns more than "
                     "the floor: the Felix-default failsafe entries it walks before the rule, "
                     "the rule's verdict and counter) is measured against a floor whose one "
                     "lookup costs almost nothing at this size; gross (harness included) "
                     f"{r.extra.get('gross_ratio') or 0:.2f}×")
    return rows


def _module(name: str) -> Callable[[bool, Callable], list[Row]]:
    def run(quick: bool, log) -> list[Row]:
        return importlib.import_module(f"bench.{name}").run(quick, log=log)
    return run


SECTIONS: dict[str, Callable[[bool, Callable], list[Row]]] = {
    "setup": _module("setup.time_vs_n"), "incremental": _module("setup.incremental"),
    "droprate": _droprate,
    "xdp_pkt": _xdp_pkt,
    "untracked": _module("redis.untracked"), "latency": _module("redis.latency"),
    "big_sets": _module("big_sets"), "tui": _module("tui_cost"),
    "metrics": _module("metrics_scrape"),
    "nft_load": _module("nft_load"),
    "small_apply": _module("small_apply"),
}


# -- rendering -------------------------------------------------------------------------------
def _ratio(r: Row) -> str:
    x = r.ratio
    if x is None:
        return "—"
    if r.section == "incremental":
        return f"{100 * x:.2f} %"
    return f"{x:.3g}×" if x < 100 else f"{x:,.0f}×"


def _goal(r: Row) -> str:
    if r.goal is None:
        return ""
    if r.section == "incremental":
        return f"≤ {100 * r.goal:g} %"
    if r.goal == 0:
        return "0"
    return f"{'≥' if r.higher_is_better else '≤'} {r.goal:g}×"


def _met(r: Row) -> str:
    if r.goal is None:
        return ""
    if r.raw is None or r.value is None:
        return "not measured"
    if r.met:
        return "met"
    return "**missed**"


def _cell(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def table(rows: list[Row]) -> list[str]:
    out = ["| case | raw tool (same run) | raw | nodewall | ratio | goal | met | notes |",
           "|---|---|---:|---:|---:|---|---|---|"]
    for r in rows:
        note = r.note
        if r.met is False and r.why:
            note = f"{note}; **why:** {r.why}" if note else f"**why:** {r.why}"
        out.append(f"| {_cell(r.case)} | {_cell(r.raw_tool)} | {c.fmt(r.raw, r.unit)} | "
                   f"{c.fmt(r.value, r.unit)} | {_ratio(r)} | {_goal(r)} | {_met(r)} | "
                   f"{_cell(note)} |")
    return out


def _nft_figure(r: Row) -> bool:
    """Rows without a goal the nftables issue asks to see in the README: the load
    against `ipset restore` and `nft -f`, the 1M drop rate against raw+ipset and XDP,
    and untracked Redis on nftables against iptables."""
    if r.section == "nft_load" or (r.section == "untracked" and "nftables vs" in r.case):
        return True
    return r.section == "droprate" and "nftables" in r.case and r.n == 1_000_000


def goal_rows(rows: list[Row]) -> list[Row]:
    """The rows the issue's goals are judged on, for the summary (and the README)."""
    keep = []
    for r in rows:
        if r.goal is None and not _nft_figure(r):
            continue
        if r.section == "setup" and r.n not in (None, 1_000_000, 10_000_000):
            continue
        if r.section == "big_sets" and r.unit == "s":
            continue
        if r.section == "droprate" and r.n not in (None, 1_000_000):
            continue
        keep.append(r)
    return keep


def summary_md(rows: list[Row], meta: dict) -> list[str]:
    m = meta["machine"]
    out = [(f"Measured {meta['date']} on {m['cpu']} ({m['cores']} cores), {m['memory']} RAM, "
           f"Linux {m['kernel']}, {m['os']}; `{meta['command']}` took "
           f"{meta['minutes']:.1f} min. Full tables, notes and plots: "
           "[bench/results.md](bench/results.md)."), ""]
    out += table(goal_rows(rows))
    return out


def write_results(rows: list[Row], meta: dict, plots: list[str], path: Path) -> None:
    m = meta["machine"]
    lines = [
        "# nodewall benchmark results",
        "",
        (f"Generated by `{meta['command']}` on {meta['date']} in {meta['minutes']:.1f} min"
        f"{' (quick smoke run: small N)' if meta['quick'] else ''}."),
        "",
        "| machine | |", "|---|---|",
        *(f"| {k} | {_cell(str(v))} |" for k, v in m.items()),
        "",
        ("Reproduce: `make bench` as root on Debian 12 (installs what it needs, then runs "
        "`.venv/bin/python -m bench.run`); `--quick` for a smoke run with small N, "
        "`--only SECTION` for one section. Everything runs in network namespaces the "
        "suite creates (prefix `nwb…`) and deletes; the host's firewall is never touched."),
        "",
        ("Every figure is a ratio against the raw tool measured in the same run: "
        "ratio = nodewall ÷ raw (for requests/s and drop rates higher is better)."),
        "",
        "## Goals",
        "",
        *table(goal_rows(rows)),
        "",
    ]
    for sec, title in TITLES.items():
        srows = [r for r in rows if r.section == sec]
        if not srows and sec not in meta["sections"]:
            continue
        lines += [f"## {title}", ""]
        if sec in SECTION_NOTES:
            lines += [SECTION_NOTES[sec], ""]
        if sec in meta.get("errors", {}):
            lines += [f"Section failed: `{_cell(meta['errors'][sec])}`", ""]
        if srows:
            lines += table(srows) + [""]
        for paragraph in SECTION_PROFILES.get(sec, []):
            lines += [paragraph, ""]
        for p in plots:
            if p.startswith(sec):
                lines += [f"![{sec}]({p})", ""]
    if PROFILES_MD.is_file():  # profile summaries taken by hand, kept across runs
        lines += [PROFILES_MD.read_text().rstrip(), ""]
    path.write_text("\n".join(lines))


def update_readme(rows: list[Row], meta: dict) -> bool:
    text = README.read_text()
    if BEGIN not in text or END not in text:
        return False
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    README.write_text(head + BEGIN + "\n" + "\n".join(summary_md(rows, meta)) + "\n" + END
                      + tail)
    return True


def droprate_plot(rows: list[Row], out: Path) -> bool:
    pts = [r for r in rows if r.section == "droprate" and r.n and r.value is not None]
    if not pts:
        return False
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    series: dict[str, set[tuple[int, float]]] = {}
    for r in pts:
        if "nftables vs" in r.case:  # nft's own rate; its raw is the ipset row's
            series.setdefault("nftables raw + interval set", set()).add((r.n, r.value))
            continue
        if "vs nftables" in r.case or "receiver's cost" in r.case:
            continue
        series.setdefault("XDP (nodewall)", set()).add((r.n, r.value))
        if r.raw is not None:
            label = "linear iptables" if "linear" in r.case else "iptables raw + ipset"
            series.setdefault(label, set()).add((r.n, r.raw))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, xs in series.items():
        xy = sorted(xs)
        ax.plot([x for x, _ in xy], [y for _, y in xy], marker="o", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("entries in the deny set")
    ax.set_ylabel(pts[0].unit)
    ax.set_title("Per-core drop rate vs N")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return True


def render(rows: list[Row], meta: dict, out: Path, *, readme: bool, log=print) -> None:
    plots = []
    from bench.setup import time_vs_n
    if time_vs_n.plot(rows, out.parent / "setup_time.png"):
        plots.append("setup_time.png")
    if droprate_plot(rows, out.parent / "droprate.png"):
        plots.append("droprate.png")
    write_results(rows, meta, plots, out)
    if readme and update_readme(rows, meta):
        log("README.md benchmark table updated")
    log(f"wrote {out} ({meta['minutes']:.1f} min)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small N: a smoke run")
    ap.add_argument("--only", help="comma-separated sections: " + ",".join(SECTIONS))
    ap.add_argument("--out", type=Path, default=HERE / "results.md")
    ap.add_argument("--json", type=Path, help="also write every row as JSON here")
    ap.add_argument("--no-readme", action="store_true", help="do not rewrite the README table")
    ap.add_argument("--from-json", type=Path,
                    help="re-render results.md, plots and the README table from a --json "
                         "file of an earlier run (no measuring)")
    args = ap.parse_args(argv)
    if args.from_json:
        data = json.loads(args.from_json.read_text())
        meta = data["meta"]
        render([c.row_from_json(r) for r in data["rows"]], meta, args.out,
               readme=not (meta["quick"] or args.no_readme or meta["command"] != "make bench"))
        return 0
    if os.geteuid() != 0:
        print("bench: needs root (it creates network namespaces)", file=sys.stderr)
        return 1
    chosen = list(SECTIONS) if not args.only else [s.strip() for s in args.only.split(",")]
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        print(f"bench: unknown section(s) {unknown}; choose from {list(SECTIONS)}",
              file=sys.stderr)
        return 2
    t_start = time.monotonic()
    rows: list[Row] = []
    errors: dict[str, str] = {}
    timings: dict[str, float] = {}

    def log(msg: str) -> None:
        print(msg, flush=True)

    try:
        for sec in chosen:
            log(f"== {sec}: {TITLES[sec]}")
            t0 = time.monotonic()
            try:
                rows += SECTIONS[sec](args.quick, log)
            except Exception as exc:  # noqa: BLE001 - a failed section is reported
                errors[sec] = f"{type(exc).__name__}: {exc}"
                traceback.print_exc()
            timings[sec] = time.monotonic() - t0
            log(f"   ({timings[sec]:.0f} s)")
    finally:
        c.cleanup_workdir()
    cmd = "make bench" if not (args.quick or args.only) else \
        "python -m bench.run " + " ".join(argv if argv is not None else sys.argv[1:])
    meta = {"date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
            "command": cmd, "quick": args.quick, "sections": chosen,
            "minutes": (time.monotonic() - t_start) / 60, "machine": c.machine(),
            "errors": errors, "section_seconds": timings}
    # the rows are kept before rendering, so a failed render is redone with --from-json
    rows_json = args.json or Path(tempfile.gettempdir()) / "nodewall-bench-rows.json"
    rows_json.write_text(json.dumps(
        {"meta": meta, "rows": [r.to_json() for r in rows]}, indent=1, default=str) + "\n")
    log(f"rows kept in {rows_json} (python -m bench.run --from-json {rows_json})")
    render(rows, meta, args.out, readme=not (args.quick or args.only or args.no_readme),
           log=log)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
