"""Shared data helpers for the benchmark suite (bench/run.py and its sections).

- Row: one line of a results table (raw-tool figure, nodewall figure, ratio, goal).
- CIDR files with the Kinvolk mix (~89 % /32, 10 % /24, 1 % /16), streamed to disk,
  cached per (n, seed) for one run, and the deny profile that loads one.
- The machine's description, number formatting, and `python -m bench.<section>`.

Running things in the lab (namespaces, the CLI, probes) is bench/harness.py.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROBE_SRC = "203.0.113.7"  # the lab client's blocklisted address; every set lists it
SERVER = "10.0.0.1"
CLIENT = "10.0.0.2"


# -- results ------------------------------------------------------------------------------
@dataclass
class Row:
    """One measured case.  `raw` is the raw tool's figure in the same run, `value`
    nodewall's; ratio = value / raw.  `goal` is the ceiling (or floor when
    higher_is_better) on the ratio; met is None when there is no goal."""
    section: str
    case: str
    raw_tool: str
    raw: float | None
    value: float | None
    unit: str
    goal: float | None = None
    higher_is_better: bool = False
    note: str = ""
    n: int | None = None
    extra: dict = field(default_factory=dict)
    why: str = ""  # when the goal is missed: by how much is in the table, this says why

    @property
    def ratio(self) -> float | None:
        if self.raw in (None, 0) or self.value is None:
            return None
        return self.value / self.raw

    @property
    def met(self) -> bool | None:
        r = self.ratio
        if self.goal is None or r is None:
            return None
        return r >= self.goal if self.higher_is_better else r <= self.goal

    def to_json(self) -> dict:
        return {"section": self.section, "case": self.case, "raw_tool": self.raw_tool,
                "raw": self.raw, "value": self.value, "unit": self.unit, "ratio": self.ratio,
                "goal": self.goal, "higher_is_better": self.higher_is_better,
                "met": self.met, "note": self.note, "why": self.why, "n": self.n,
                "extra": self.extra}


def row_from_json(d: dict | Row) -> Row:
    """A Row back from Row.to_json() (the XDP bench modules return dicts)."""
    if isinstance(d, Row):
        return d
    keys = ("section", "case", "raw_tool", "raw", "value", "unit", "goal",
            "higher_is_better", "note", "n", "extra", "why")
    return Row(**{k: d[k] for k in keys if k in d})


# -- CIDR generator -----------------------------------------------------------------------
# first octets that never cover the lab (10/8), loopback, the probe sources (203.0.113/24,
# 198.18/15) or multicast and above
_FIRST = [a for a in range(1, 224) if a not in (10, 127, 198, 203)]


def cidr_lines(n: int, seed: int = 7) -> Iterator[str]:
    """N CIDR lines, the Kinvolk mix: ~89 % /32 (written bare), 10 % /24, 1 % /16.
    Deterministic for a seed; never covers 10/8, 127/8, 198/8 or 203/8."""
    rng = random.Random(seed)
    first = _FIRST
    nf = len(first)
    rand, bits = rng.random, rng.getrandbits
    for _ in range(n):
        r = rand()
        v = bits(24)
        a = first[v % nf]
        b, c, d = (v >> 16) & 0xFF, (v >> 8) & 0xFF, bits(8)
        if r < 0.89:
            yield f"{a}.{b}.{c}.{d}"
        elif r < 0.99:
            yield f"{a}.{b}.{c}.0/24"
        else:
            yield f"{a}.{b}.0.0/16"


def mix_of(lines: Sequence[str]) -> dict[int, float]:
    """Share of each prefix length among LINES (bare addresses count as /32)."""
    counts: dict[int, int] = {}
    for ln in lines:
        plen = int(ln.split("/")[1]) if "/" in ln else 32
        counts[plen] = counts.get(plen, 0) + 1
    total = max(1, len(lines))
    return {k: v / total for k, v in sorted(counts.items())}


def write_cidr_file(path: Path, n: int, seed: int = 7, extra: Sequence[str] = ()) -> Path:
    """Stream N generated lines (then EXTRA) to PATH, 64k lines per write."""
    buf: list[str] = []
    with open(path, "w") as fh:
        for line in cidr_lines(n, seed):
            buf.append(line)
            if len(buf) >= 65536:
                fh.write("\n".join(buf) + "\n")
                buf.clear()
        buf.extend(extra)
        if buf:
            fh.write("\n".join(buf) + "\n")
    return path


_WORK: Path | None = None


def workdir() -> Path:
    """One scratch directory for the whole run (generated files are shared)."""
    global _WORK
    if _WORK is None:
        _WORK = Path(tempfile.mkdtemp(prefix="nw-bench-"))
    return _WORK


def cleanup_workdir() -> None:
    global _WORK
    if _WORK is not None:
        shutil.rmtree(_WORK, ignore_errors=True)
        _WORK = None


def cidr_file(n: int, seed: int = 7) -> Path:
    """The cached N-line file (+ the probe source as the last line): N + 1 entries."""
    path = workdir() / f"cidrs-{n}-{seed}.txt"
    if not path.exists():
        tmp = path.with_suffix(".part")
        write_cidr_file(tmp, n, seed, extra=(PROBE_SRC,))
        tmp.rename(path)
    return path


# -- profiles -----------------------------------------------------------------------------
def deny_profile(path: Path, nets_file: Path | None, *, backend: str = "iptables",
                 extra_rules: int = 0) -> Path:
    """A lab-server profile: host endpoint eth0, an untracked deny of a network set read
    from NETS_FILE (inline 192.0.2.1 only when None), untracked Redis, tracked ICMP;
    EXTRA_RULES more tracked allow rules (distinct ports) for the TUI case."""
    nets = f'nets_file = "{nets_file}"\n' if nets_file else 'nets = ["192.0.2.1/32"]\n'
    more = "".join(
        f'\n  [[policies.ingress]]\n  action = "allow"\n  protocol = "tcp"\n'
        f'  destination = {{ ports = [{20000 + i}] }}\n' for i in range(extra_rules))
    path.write_text(f"""[settings]
backend = "{backend}"
xdp_mode = "auto"
failsafe_inbound = ["tcp:22"]
failsafe_outbound = []

[[host_endpoints]]
name = "uplink"
interface = "eth0"
expected_ips = ["10.0.0.1"]
labels = {{ hep = "bench" }}

[[network_sets]]
name = "deny"
labels = {{ list = "drop" }}
{nets}
[[policies]]
name = "drop-listed"
order = 10
selector = "all()"
do_not_track = true
apply_on_forward = true
types = ["ingress"]

  [[policies.ingress]]
  action = "deny"
  source = {{ selector = 'list == "drop"' }}

[[policies]]
name = "redis-untracked"
order = 20
selector = 'hep == "bench"'
do_not_track = true
apply_on_forward = true

  [[policies.ingress]]
  action = "allow"
  protocol = "tcp"
  source = {{ nets = ["10.0.0.0/8"] }}
  destination = {{ ports = [6379] }}

  [[policies.egress]]
  action = "allow"
  protocol = "tcp"
  source = {{ ports = [6379] }}

[[policies]]
name = "tracked"
order = 100
selector = "all()"

  [[policies.ingress]]
  action = "allow"
  protocol = "icmp"
{more}""")
    return path


# -- machine --------------------------------------------------------------------------------
def machine() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    osname = ""
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                osname = line.split("=", 1)[1].strip('"')

    def ver(*argv: str) -> str:
        try:
            return subprocess.run(argv, check=False, capture_output=True, text=True,
                                  timeout=10).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return "n/a"

    return {"cpu": cpu, "cores": str(os.cpu_count()), "kernel": os.uname().release,
            "memory": f"{mem_kb / 1024 / 1024:.1f} GiB", "os": osname,
            "iptables": ver("iptables-legacy", "--version"), "ipset": ver("ipset", "version"),
            "python": sys.version.split()[0]}


def fmt(v: float | None, unit: str = "") -> str:
    if v is None:
        return "—"
    if unit == "s":
        return f"{v * 1000:.1f} ms" if v < 1 else f"{v:.2f} s"
    if unit in ("MB", "ms"):
        return f"{v:.1f} {unit}" if v >= 10 else f"{v:.3f} {unit}"
    if abs(v) >= 1000:
        return f"{v:,.0f} {unit}".strip()
    return f"{v:.3g} {unit}".strip()


def median(xs: Sequence[float]) -> float:
    s = sorted(xs)
    return s[len(s) // 2] if len(s) % 2 else (s[len(s) // 2 - 1] + s[len(s) // 2]) / 2


warnings.filterwarnings("ignore", message="Module nodewall was already imported")


def section_main(run: Callable[[bool], list[dict]],
                 table: Callable[[list[dict]], str]) -> None:
    """`python -m bench.<section> [--quick] [--out FILE]`: run one section on its own,
    print its table and optionally keep the rows as JSON."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    try:
        rows = run(args.quick)
    finally:
        cleanup_workdir()
    print(table(rows))
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2) + "\n")
