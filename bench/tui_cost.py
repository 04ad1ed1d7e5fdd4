"""Section 7 — TUI cost with a 1M-entry set and 100 rules applied in the lab server:
time to first frame (a fresh interpreter in the namespace runs the app headless with
App.run_test; first frame = the first status report rendered), CPU per refresh tick
(process CPU time over 10 ticks at 0.5 s, then with the CPU of the tools the ticks ran
added, against the 10 ms budget), RSS (VmRSS/VmHWM from /proc).
The raw tool: one refresh done by hand (iptables-legacy -nvxL of raw/mangle/filter,
`ipset list -t`, the conntrack count): its wall time, its CPU (children's rusage), and
the peak RSS of `nodewall status --output json` as the headless view of the same data."""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

from bench import common as c
from bench import harness as h
from bench.common import Row

SECTION = "tui"
RULES = 100
_BASE_RULES = 4  # deny, redis ingress, redis egress, icmp in c.deny_profile
TICK_BUDGET_S = 0.010  # the goal: CPU per tick, the tools a tick runs included

_SCRIPT = r"""
import asyncio, json, os, resource, sys, time
T0 = float(sys.argv[1]); ns, state, profile = sys.argv[2:5]
TICKS, INTERVAL = int(sys.argv[5]), float(sys.argv[6])
from pathlib import Path
from nodewall.engine.system import netns
netns.enter(ns)  # setns like `--netns` (`ip netns exec` would hide the bpffs pins)
from nodewall.engine.service import Service
from nodewall.tui.app import make_app
from nodewall.tui.client import CHECKS_EVERY_S

def children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime

def status_kb(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1])

async def main():
    t_import = time.time() - T0
    app = make_app(lambda: Service(netns=ns, state_dir=Path(state)), [Path(profile)],
                   interval=INTERVAL, readonly=True)
    async with app.run_test(size=(120, 40)) as pilot:
        t_mount = time.time() - T0
        deadline = time.monotonic() + 60
        while app.state.ticks < 1 and time.monotonic() < deadline:
            await pilot.pause(0.005)
        await pilot.pause()  # let the frame with that report render
        t_first = time.time() - T0
        rows = len(app.state.report.rules) if app.state.report else 0
        await pilot.pause(INTERVAL)
        k0, cpu0, w0 = app.state.ticks, time.process_time(), time.monotonic()
        kids0 = children_cpu()
        while app.state.ticks < k0 + TICKS and time.monotonic() < w0 + 60:
            await asyncio.sleep(INTERVAL / 2)  # a pilot.pause() would redraw the screen
        ticks = app.state.ticks - k0
        cpu = time.process_time() - cpu0
        kids = children_cpu() - kids0
        wall = time.monotonic() - w0
        print(json.dumps({"import_s": t_import, "mount_s": t_mount, "first_s": t_first,
                          "ticks": ticks, "cpu_s": cpu, "children_cpu_s": kids, "wall_s": wall, "checks_every_s": CHECKS_EVERY_S, "rules": rows,
                          "rss_kb": status_kb("VmRSS:"), "hwm_kb": status_kb("VmHWM:")}))

asyncio.run(main())
"""


def _raw_refresh(ns: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the children) of one by-hand refresh."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    for table in ("raw", "mangle", "filter"):
        h.in_ns(ns, "iptables-legacy", "-w", "5", "-t", table, "-nvxL")
        h.in_ns(ns, "ip6tables-legacy", "-w", "5", "-t", table, "-nvxL")
    h.in_ns(ns, "ipset", "list", "-t")
    h.in_ns(ns, "cat", "/proc/sys/net/netfilter/nf_conntrack_count")
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def run(quick: bool, log=print) -> list[Row]:
    n = 10_000 if quick else 1_000_000
    ticks, interval = (4, 0.5) if quick else (10, 0.5)
    with h.lab() as lab:
        state = c.workdir() / f"state-{h.unique_prefix()}"
        prof = c.deny_profile(c.workdir() / f"tui-{n}.toml", c.cidr_file(n),
                              backend="iptables", extra_rules=RULES - _BASE_RULES)
        try:
            h.nodewall_must(lab.server_ns, state, "apply", str(prof))
            raws = [_raw_refresh(lab.server_ns) for _ in range(5)]
            raw_wall = c.median([r[0] for r in raws])
            raw_cpu = c.median([r[1] for r in raws])
            status = h.nodewall_must(lab.server_ns, state, "status", "--output", "json")
            t0 = time.time()
            proc = subprocess.run(
                [sys.executable, "-c", _SCRIPT, repr(t0),
                 lab.server_ns, str(state), str(prof), str(ticks), str(interval)],
                capture_output=True, text=True, timeout=300, check=False,
                env={**os.environ, "NO_COLOR": "1"})
            if proc.returncode != 0:
                raise RuntimeError(f"TUI run failed: {proc.stderr.strip()[-1500:]}")
            r = json.loads(proc.stdout.strip().splitlines()[-1])
        finally:
            h.nodewall_cli(lab.server_ns, state, "flush")
    per_tick = r["cpu_s"] / max(1, r["ticks"])
    kids_tick = r["children_cpu_s"] / max(1, r["ticks"])
    log(f"    TUI: first frame {r['first_s']:.3f} s (imports {r['import_s']:.3f} s), "
        f"CPU/tick {per_tick * 1000:.1f} ms + {kids_tick * 1000:.1f} ms in tools, "
        f"RSS {r['rss_kb'] / 1024:.0f} MB, {r['rules']} rule rows")
    cfg = f"{n:,}-entry set, {RULES} rules in the profile ({r['rules']} rule rows shown)"
    return [
        Row(SECTION, "time to first frame with data (fresh process, headless)",
            "one by-hand refresh (iptables -nvxL x6, ipset list -t, ct count)", raw_wall,
            r["first_s"], "s",
            note=f"{cfg}; imports {r['import_s']:.2f} s, app mounted {r['mount_s']:.2f} s"),
        Row(SECTION, f"CPU per refresh tick ({interval:g} s interval)",
            "CPU of one by-hand refresh", raw_cpu, per_tick, "s",
            note=f"{r['ticks']} ticks in {r['wall_s']:.1f} s: "
                 f"{100 * r['cpu_s'] / max(r['wall_s'], 1e-9):.1f} % of one core"),
        _budget_row(per_tick, kids_tick, r, interval),
        Row(SECTION, "RSS of the TUI process", "`nodewall status` peak RSS",
            status.peak_rss_mb, r["rss_kb"] / 1024, "MB",
            note=f"VmHWM {r['hwm_kb'] / 1024:.0f} MB"),
    ]


def _budget_row(per_tick: float, kids_tick: float, r: dict, interval: float) -> Row:
    """CPU per tick, the process and the tools it ran (ipset, iptables-save), against
    the 10 ms budget: ratio = CPU / budget, met at <= 1."""
    total = per_tick + kids_tick
    row = Row(SECTION, f"CPU per tick ({interval:g} s interval, tools included)",
              "budget: 10 ms CPU per tick", TICK_BUDGET_S, total, "s", goal=1.0,
              note=f"{per_tick * 1000:.1f} ms in the TUI process + {kids_tick * 1000:.1f} ms "
                   f"in the tools it ran; drift/foreign checks every "
                   f"{r['checks_every_s']:g} s, counters every tick")
    if not row.met:
        row.why = (f"the TUI process alone takes {per_tick * 1000:.1f} ms per tick; "
                   "profiled: the counters read ~7 ms (libiptc's six tables 3 ms, links "
                   "2 ms), the 5-s drift/foreign checks ~4 ms amortised at 0.5 s, Textual's "
                   "redraw ~11 ms (see the profile under this table)")
    return row
