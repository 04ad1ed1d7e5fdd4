"""The timed ways to load a set of N CIDRs in the lab until a probe is seen dropped
(bench.setup.time_vs_n and bench.setup.incremental use them):

  raw ipset      `ipset restore` (create line inside the file, nodewall's sizing) +
                 one `iptables -t raw -I PREROUTING -m set … -j DROP`, then probe
  linear         one `-s CIDR -j DROP` rule per line via iptables-legacy-restore
  nodewall CLI   `nodewall --netns … apply`, then probe
  in-process     Service.apply() in a fresh interpreter inside the namespace, then probe
  raw batch      BPF_MAP_UPDATE_BATCH of pre-packed keys into a fresh LPM trie
                 (bench/xdp_load._raw) beside nodewall's trie load of the same file
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench import common as c
from bench import harness as h

RAW_SET = "bench-raw"
LIN_CHAIN = "BENCH-LIN"


def restore_file(src: Path, n: int) -> Path:
    from nodewall.engine.dataplane.ipsets.load import sizing
    hashsize, maxelem = sizing(n)
    out = src.with_suffix(".restore")
    if not out.exists():
        with open(src) as fh, open(out, "w") as dst:
            dst.write(f"create {RAW_SET} hash:net family inet hashsize {hashsize} "
                      f"maxelem {maxelem}\n")
            dst.writelines(f"add {RAW_SET} {line}" for line in fh)
    return out


def linear_file(src: Path) -> Path:
    out = src.with_suffix(".linear")
    if not out.exists():
        with open(src) as fh, open(out, "w") as dst:
            dst.write(f"*raw\n:{LIN_CHAIN} - [0:0]\n")
            dst.writelines(f"-A {LIN_CHAIN} -s {line.strip()} -j DROP\n" for line in fh)
            dst.write(f"-A PREROUTING -j {LIN_CHAIN}\nCOMMIT\n")
    return out


def raw_ipset(lab, path: Path, n: int) -> tuple[float, float]:
    """(restore seconds, restore + rule + verified drop seconds)"""
    restore = restore_file(path, n)
    srv = lab.server_ns
    try:
        t0 = time.perf_counter()
        with open(restore) as fh:
            h.in_ns(srv, "ipset", "-exist", "restore", stdin=fh, timeout=900)
        t_restore = time.perf_counter() - t0
        h.in_ns(srv, "iptables-legacy", "-w", "5", "-t", "raw", "-I", "PREROUTING", "-m", "set",
                "--match-set", RAW_SET, "src", "-j", "DROP")
        t1 = h.until_dropped(lab.client_ns, lambda: h.raw_drop_packets(srv), 0)
        return t_restore, t1 - t0
    finally:
        h.in_ns(srv, "iptables-legacy", "-w", "5", "-t", "raw", "-D", "PREROUTING", "-m", "set",
                "--match-set", RAW_SET, "src", "-j", "DROP", check=False)
        h.in_ns(srv, "ipset", "destroy", RAW_SET, check=False, timeout=300)


def linear(lab, path: Path, n: int) -> float:
    rules = linear_file(path)
    srv = lab.server_ns
    try:
        t0 = time.perf_counter()
        with open(rules) as fh:
            h.in_ns(srv, "iptables-legacy-restore", "-w", "5", "--noflush", stdin=fh,
                    timeout=900)
        t1 = h.until_dropped(lab.client_ns,
                             lambda: h.raw_drop_packets(srv, LIN_CHAIN, n + 1), 0)
        return t1 - t0
    finally:
        ipt = ("iptables-legacy", "-w", "5", "-t", "raw")
        h.in_ns(srv, *ipt, "-D", "PREROUTING", "-j", LIN_CHAIN, check=False)
        h.in_ns(srv, *ipt, "-F", LIN_CHAIN, check=False, timeout=600)
        h.in_ns(srv, *ipt, "-X", LIN_CHAIN, check=False)


def drop_counter(lab, backend: str):
    if backend == "xdp":
        return lambda: h.xdp_drop_packets(lab.server_ns)
    if backend == "nftables":
        return lambda: h.nft_drop_packets(lab.server_ns)
    return lambda: h.raw_drop_packets(lab.server_ns)


def nodewall_cli(lab, profile: Path, backend: str) -> tuple[float, h.CliRun]:
    state = c.workdir() / f"state-{h.unique_prefix()}"
    try:
        t0 = time.perf_counter()
        run = h.nodewall_must(lab.server_ns, state, "apply", str(profile))
        t1 = h.until_dropped(lab.client_ns, drop_counter(lab, backend), 0)
        return t1 - t0, run
    finally:
        h.nodewall_cli(lab.server_ns, state, "flush")
        shutil.rmtree(state, ignore_errors=True)


_INPROC = """
import sys, time
from pathlib import Path
from nodewall.engine.system import netns
from nodewall.engine.service import Service
ns, state, profile, what = sys.argv[1:5]
netns.enter(ns)  # setns like --netns (not `ip netns exec`: its private /sys hides bpffs)
svc = Service(netns=ns, state_dir=Path(state))
t0 = time.perf_counter()
svc.apply([Path(profile)]) if what == "apply" else svc.tx.flush()
print(time.perf_counter() - t0)
"""


def _inproc(netns: str, state: str, profile: str, what: str = "apply") -> float:
    """Service.apply() (or flush) timed inside a fresh interpreter that enters the
    namespace with setns as `--netns` does (`ip netns exec` would give it a private /sys
    without the bpffs, so XDP pins would vanish with it): the
    engine's own time, without start-up and imports (and without inheriting this
    process's modules)."""
    res = subprocess.run([sys.executable, "-c", _INPROC, netns, state, profile, what],
                         check=False, capture_output=True, text=True, timeout=1800)
    if res.returncode != 0:
        raise RuntimeError(f"in-process {what} failed: {res.stderr.strip()[-600:]}")
    return float(res.stdout.strip().splitlines()[-1])


def inproc_apply(netns: str, state: str, profile: str) -> float:
    return _inproc(netns, state, profile)


def inproc_flush(netns: str, state: str) -> None:
    _inproc(netns, state, "-", "flush")


def nodewall_inproc(lab, profile: Path, backend: str) -> tuple[float, float]:
    """(engine apply seconds, apply + verified drop seconds)"""
    state = c.workdir() / f"state-{h.unique_prefix()}"
    try:
        engine_s = inproc_apply(lab.server_ns, str(state), str(profile))
        t0 = time.perf_counter()  # start-up around the call is not the engine's time
        t1 = h.until_dropped(lab.client_ns, drop_counter(lab, backend), 0)
        return engine_s, engine_s + t1 - t0
    finally:
        inproc_flush(lab.server_ns, str(state))
        shutil.rmtree(state, ignore_errors=True)


def xdp_maps(lab, path: Path, n: int) -> tuple[float, float]:
    """(raw BPF_MAP_UPDATE_BATCH seconds, nodewall trie load seconds), from the XDP
    engineer's bench/xdp_load."""
    from bench import xdp_load
    raw = h.run_in(lab.server_ns, xdp_load._raw, path, n)
    ours = h.run_in(lab.server_ns, xdp_load._nodewall_trie, path, n)
    return raw, ours
