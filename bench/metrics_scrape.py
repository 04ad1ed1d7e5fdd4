"""Section 8 — the Prometheus exporter with a 1M-entry set and 100 rules applied in
the lab server: `nodewall --netns … metrics` runs as an operator would start it, and a
client inside the namespace scrapes /metrics K times.  Figures: the wall time of one
scrape as the client sees it (median and max), the exporter's CPU per scrape (its
/proc/<pid>/stat utime+stime over the K scrapes), its RSS after them (and VmHWM).
The raw tool: one by-hand refresh (iptables-legacy -nvxL of raw/mangle/filter x2
families, `ipset list -t`, the conntrack count), as in section 7, and the peak RSS
of `nodewall status --output json`."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from bench import common as c
from bench import harness as h
from bench.common import Row
from bench.tui_cost import _raw_refresh

SECTION = "metrics"
RULES = 100
_BASE_RULES = 4  # deny, redis ingress, redis egress, icmp in c.deny_profile
LISTEN = "127.0.0.1:9617"

_CLIENT = r"""
import json, sys, time, urllib.request
url, n = sys.argv[1], int(sys.argv[2])
times, body = [], b""
for _ in range(n):
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as r:
        body = r.read()
    times.append(time.perf_counter() - t0)
text = body.decode()
print(json.dumps({"times": times, "bytes": len(body),
                  "rule_series": text.count("\nnodewall_rule_packets_total{"),
                  "ok": "\nnodewall_scrape_success 1.0" in text}))
"""


def _proc_kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(key):
                return int(line.split()[1])
    return 0


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _healthy(ns: str, proc: subprocess.Popen) -> bool:
    code = (f"import urllib.request; urllib.request.urlopen('http://{LISTEN}/healthz', "
            "timeout=5).read()")
    for _ in range(300):  # up to ~30 s
        if proc.poll() is not None:
            return False
        if h.in_ns(ns, sys.executable, "-c", code, check=False).returncode == 0:
            return True
        time.sleep(0.1)
    return False


def _scrape_run(ns: str, state, scrapes: int) -> dict:
    proc = subprocess.Popen([*h.nodewall_argv(), "--netns", ns, "--state-dir", str(state),
                             "metrics", "--listen", LISTEN],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        if not _healthy(ns, proc):
            raise RuntimeError("the exporter did not start: " + (proc.stderr.read()
                                                                 if proc.poll() is not None
                                                                 else "no answer"))
        idle_kb = _proc_kb(proc.pid, "VmRSS:")
        cpu0 = _cpu_s(proc.pid)
        out = h.in_ns(ns, sys.executable, "-c", _CLIENT, f"http://{LISTEN}/metrics",
                      str(scrapes), timeout=1800).stdout
        r = json.loads(out.strip().splitlines()[-1])
        r["cpu_per_scrape"] = (_cpu_s(proc.pid) - cpu0) / scrapes
        r["rss_kb"], r["hwm_kb"] = _proc_kb(proc.pid, "VmRSS:"), _proc_kb(proc.pid, "VmHWM:")
        r["idle_kb"] = idle_kb
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    r["exit"] = proc.returncode
    return r


def _set_entries(ns: str) -> int:
    """Members of nodewall's sets, as `ipset list -t` counts them."""
    out = h.in_ns(ns, "ipset", "list", "-t").stdout
    return sum(int(line.split(":")[1]) for line in out.splitlines()
               if line.startswith("Number of entries:"))


def run(quick: bool, log=print) -> list[Row]:
    n = 10_000 if quick else 1_000_000
    scrapes = 5 if quick else 20
    with h.lab() as lab:
        state = c.workdir() / f"state-{h.unique_prefix()}"
        prof = c.deny_profile(c.workdir() / f"metrics-{n}.toml", c.cidr_file(n),
                              backend="iptables", extra_rules=RULES - _BASE_RULES)
        try:
            h.nodewall_must(lab.server_ns, state, "apply", str(prof))
            raws = [_raw_refresh(lab.server_ns) for _ in range(5)]
            status = h.nodewall_must(lab.server_ns, state, "status", "--output", "json")
            entries = _set_entries(lab.server_ns)
            r = _scrape_run(lab.server_ns, state, scrapes)
        finally:
            h.nodewall_cli(lab.server_ns, state, "flush")
    if not r["ok"]:
        raise RuntimeError("a scrape did not read the kernel (nodewall_scrape_success 0)")
    median = c.median(r["times"])
    log(f"    metrics: scrape median {median * 1000:.1f} ms (max {max(r['times']) * 1000:.1f} ms)"
        f", CPU/scrape {r['cpu_per_scrape'] * 1000:.1f} ms, RSS {r['rss_kb'] / 1024:.0f} MB, "
        f"{r['rule_series']} rule series, {r['bytes']} bytes, {entries} set members, "
        f"SIGTERM exit {r['exit']}")
    cfg = (f"{n:,}-entry set ({entries:,} set members loaded), {RULES} rules in the profile "
           f"({r['rule_series']} rule series); {scrapes} scrapes")
    return [
        Row(SECTION, "one scrape of /metrics (client wall time, median)",
            "one by-hand refresh (iptables -nvxL x6, ipset list -t, ct count)",
            c.median([x[0] for x in raws]), median, "s",
            note=f"{cfg}; max {max(r['times']):.3f} s; {r['bytes']:,} bytes"),
        Row(SECTION, "exporter CPU per scrape", "CPU of one by-hand refresh",
            c.median([x[1] for x in raws]), r["cpu_per_scrape"], "s", note=cfg),
        Row(SECTION, "exporter RSS after the scrapes", "`nodewall status` peak RSS",
            status.peak_rss_mb, r["rss_kb"] / 1024, "MB",
            note=f"VmHWM {r['hwm_kb'] / 1024:.0f} MB; {r['idle_kb'] / 1024:.0f} MB before "
                 "the first scrape"),
    ]

