"""Benchmark: per-packet cost of nodewall's XDP program (bpf/nw_xdp.c) beside two
floors, all run with BPF_PROG_TEST_RUN, with 1, 10k and 1M set entries (Kinvolk mix
~89 % /32, 10 % /24, 1 % /16, bench.common.cidr_file):

  floor_lpm   (bench/floor_lpm.c) parse Ethernet + IP and one LPM lookup of the source
              in ONE trie holding every entry of the file (loaded here, beside
              nodewall's maps) -- the floor as the issue defines it.  Goal: nodewall /
              floor_lpm <= 1.3x.
  floor_hash  (bench/floor_hash.c) parse + one exact-match hash lookup of the source in
              nodewall's own host hash (the /32 entries).  nodewall looks sources up
              in that hash first (the trie of shorter prefixes only on a miss), so this
              is the honest floor of its design; reported, no goal.  With random
              sources inside /24 and /16 entries (11 %) this floor misses and passes
              the frame where nodewall goes on to the trie.

nodewall runs as an operator would configure it: loaded by XdpBackend.apply from a
nets_file, one untracked deny rule on the set, and Felix's default failsafe lists
(9 inbound entries + 9 outbound entries whose return traffic is accepted first), so
every test frame (UDP 4000 -> 9999, source in the set, dropped) walks all 18
failsafe entries before the rule.

Two source patterns:
  hot     one frame, the same source every time, repeat = 1M (quick: 200k);
          duration = the kernel's average per run.
  random  K distinct frames (K = 4096, quick 1024) whose sources are random addresses
          inside randomly chosen set entries, each run once (repeat = 1), averaged:
          every lookup walks a different trie path, so the cache misses of a large
          trie show.  Each pass (program x round) uses frames no other pass used, so
          no program runs on trie paths the previous one warmed up.
The test-run harness itself costs something per run (loop, timer; with repeat = 1
two clock reads), measured with an empty XDP program in the same pattern and
subtracted from both ("net" ns/packet; the ratio is taken on net figures, which is
the stricter one).  Rounds interleave floor and nodewall; the minimum is kept.
The process is pinned to one CPU.

Run as root:  .venv/bin/python -m bench.xdp_pkt [--quick] [--out FILE.json]
Everything happens in a namespace `nwt-xpkt-<hex>` with a veth pair, deleted at the
end together with nodewall's pins in it.
"""
from __future__ import annotations

import ctypes
import ipaddress
import os
import random
import shutil
import socket
import subprocess
import uuid
from pathlib import Path

from nodewall.engine.dataplane.xdp import bpf_syscall as bpf
from nodewall.engine.dataplane.xdp.backend import XdpBackend
from nodewall.engine.dataplane.xdp.cidr_keys import VALUE
from nodewall.engine.dataplane.xdp.layout import (
    MAP_HOST4,
    MAP_HOST6,
    MAP_SRC4,
    MAP_SRC6,
    BuildConfig,
)
from nodewall.engine.dataplane.xdp.map_io import update_batch
from nodewall.engine.dataplane.xdp.maps import PIN_ROOT, Pinned, create_trie
from nodewall.engine.dataplane.xdp.program import compile_program, with_header
from nodewall.engine.dataplane.xdp.sources import source_chunks
from nodewall.engine.errors import Loc
from nodewall.engine.plan.desired import XdpInterface, XdpRule, XdpSetSource, XdpState
from nodewall.engine.profile.model import (
    DEFAULT_FAILSAFE_INBOUND,
    DEFAULT_FAILSAFE_OUTBOUND,
    Failsafe,
)
from nodewall.engine.system.netns import run_in_netns

from bench.common import Row, cidr_file, section_main
from bench.frames import udp
from bench.xdp_keys import pack_chunk

IFACE, PEER = "xp0", "xp1"
DST = "10.0.0.1"
EMPTY = """
#include <uapi/linux/bpf.h>
int nw_empty(struct xdp_md *ctx) { return XDP_PASS; }
"""
XDP_DROP = 1
# the floor programs (bench/floor_*.c, compiled with nodewall's header and BuildConfig)
FLOOR_LPM = (Path(__file__).with_name("floor_lpm.c"), "nw_floor", (MAP_SRC4, MAP_SRC6))
FLOOR_HASH = (Path(__file__).with_name("floor_hash.c"), "nw_floor_hash", (MAP_HOST4, MAP_HOST6))


def _compile_floor(floor: tuple[Path, str, tuple[str, ...]]):
    path, func, maps = floor
    return compile_program(BuildConfig(), with_header(path.read_text()), func, maps)


def _failsafe(spec: str) -> Failsafe:
    proto, _, port = spec.partition(":")
    return Failsafe(proto, int(port), None, Loc("bench"))  # type: ignore[arg-type]


def state(path: Path, n: int) -> XdpState:
    src = XdpSetSource(0, "network set bench", (), (path,), n, 0)
    iface = XdpInterface(
        IFACE, (XdpRule("bench-deny", "deny", None, (), 1),),
        tuple(_failsafe(s) for s in DEFAULT_FAILSAFE_INBOUND),
        failsafe_return=tuple(_failsafe(s) for s in DEFAULT_FAILSAFE_OUTBOUND))
    return XdpState(mode="generic", interfaces=(iface,), sets=(src,))


def sample_sources(path: Path, k: int, seed: int = 11) -> list[str]:
    """K random addresses, each inside a random line of the file (reservoir sample,
    streamed: the file is never held in memory)."""
    rng = random.Random(seed)
    pick: list[str] = []
    with open(path) as fh:
        for i, line in enumerate(fh):
            line = line.strip()
            if not line:
                continue
            if len(pick) < k:
                pick.append(line)
            else:
                j = rng.randrange(i + 1)
                if j < k:
                    pick[j] = line
    while len(pick) < k:  # tiny files: reuse lines (random hosts inside them still differ)
        pick.append(rng.choice(pick))
    out = []
    for cidr in pick:
        net = ipaddress.ip_network(cidr, strict=False)
        out.append(str(net.network_address + rng.randrange(net.num_addresses)))
    return out


def _frames(sources: list[str]) -> list[bytes]:
    return [udp(s, DST, 4000, 9999, payload=b"\0" * 18) for s in sources]  # 64-byte frames


def _run(fd: int, frames: list[bytes], repeat: int, ifindex: int) -> tuple[float, set[int]]:
    """Mean kernel-measured ns per run over the frames, and the verdicts seen."""
    total, verdicts = 0, set()
    for f in frames:
        ctx = bpf.XdpMd(0, len(f), 0, ifindex, 0, 0)
        ret, dur = bpf.prog_test_run(fd, f, repeat=repeat, ctx=ctx)
        total += dur
        verdicts.add(ret)
    return total / len(frames), verdicts


def _full_trie(path: Path, n: int) -> int:
    """One LPM trie with every line of the file (value 1): floor_lpm's map."""
    fd = create_trie(4, n + n // 4 + 1024)
    src = XdpSetSource(0, "floor", (), (path,), n, 0)
    for text in source_chunks(src, 4):
        keys, count = pack_chunk(text, 4)
        update_batch(fd, keys, VALUE.pack(1) * count, count, 8)
    return fd


def _measure(path: Path, n: int, quick: bool) -> dict:
    """In the namespace: apply nodewall, build the floors, time all three."""
    from bcc import BPF  # type: ignore[import-not-found]
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    hot_repeat = 200_000 if quick else 1_000_000
    k = 1024 if quick else 4096
    rounds = 3
    be = XdpBackend()
    try:
        be.apply(state(path, n))
        ifindex = socket.if_nametoindex(IFACE)
        floor = _compile_floor(FLOOR_LPM)
        floor_h = _compile_floor(FLOOR_HASH)
        empty = BPF(text=EMPTY)
        empty_fd = empty.load_func("nw_empty", BPF.XDP).fd
        with Pinned.open(be.dir) as p:  # type: ignore[union-attr]
            trie_fd = _full_trie(path, n)
            bpf.map_update(floor.map_fds[MAP_SRC4], ctypes.c_uint32(0),
                               ctypes.c_uint32(trie_fd))
            os.close(trie_fd)
            host_fd = p.inner_fd(4, p.active_gen(), True)
            if host_fd is not None:  # nodewall's own host hash
                bpf.map_update(floor_h.map_fds[MAP_HOST4], ctypes.c_uint32(0),
                                   ctypes.c_uint32(host_fd))
                os.close(host_fd)
            hot = _frames(["203.0.113.7"])  # the file's last line: a member (/32)
            progs = list({"empty": empty_fd, "floor": floor.prog_fd,
                          "floor_hash": floor_h.prog_fd, "nodewall": p.prog_fd}.items())
            # every random pass gets frames no earlier pass used, so no program finds
            # trie paths warmed up by the one before it; the order rotates per round
            rnd = _frames(sample_sources(path, k * rounds * len(progs)))
            best: dict[tuple[str, str], float] = {}
            for rnd_i in range(rounds):
                order = progs[rnd_i % len(progs):] + progs[:rnd_i % len(progs)]
                for pattern, rep in (("hot", hot_repeat), ("random", 1)):
                    for j, (name, fd) in enumerate(order):
                        part = (rnd_i * len(progs) + j) * k
                        frames = hot if pattern == "hot" else rnd[part:part + k]
                        ns, verdicts = _run(fd, frames, rep, ifindex)
                        if name == "floor_hash" and pattern == "random":
                            pass  # sources inside /24 and /16 entries miss the hash
                        elif name != "empty" and verdicts != {XDP_DROP}:
                            raise RuntimeError(f"{name} {pattern}: verdicts {verdicts}, "
                                               "expected every frame dropped")
                        key = (pattern, name)
                        best[key] = min(best.get(key, float("inf")), ns)
        floor.close()
        floor_h.close()
        empty.cleanup()
        return {"hot_repeat": hot_repeat, "random_frames": k, "rounds": rounds,
                "ns": {f"{a}/{b}": v for (a, b), v in best.items()}}
    finally:
        be.flush()


def _rows(n: int, m: dict) -> list[dict]:
    out = []
    for pattern in ("hot", "random"):
        ns = m["ns"]
        base = ns[f"{pattern}/empty"]
        ours = ns[f"{pattern}/nodewall"]
        net_o = max(ours - base, 0.1)
        detail = (f"repeat {m['hot_repeat']:,}" if pattern == "hot"
                  else f"{m['random_frames']} frames x repeat 1")
        for floor_name, tool, goal in (
                ("floor", "floor_lpm (parse + 1 LPM lookup, all entries)", 1.3),
                ("floor_hash", "floor_hash (parse + 1 hash lookup, /32 entries)", None)):
            floor = ns[f"{pattern}/{floor_name}"]
            net_f = max(floor - base, 0.1)
            case = f"{n:,} entries, {pattern} source"
            if floor_name == "floor_hash":
                case += " (vs hash floor)"
            out.append(Row(
                section="xdp_pkt", case=case, raw_tool=tool, raw=net_f, value=net_o,
                unit="ns/packet", goal=goal, n=n,
                note=f"net of the test-run harness ({base:.1f} ns, empty program); {detail}",
                extra={"floor": floor_name, "floor_gross_ns": floor, "nodewall_gross_ns": ours,
                       "harness_ns": base, "gross_ratio": ours / floor if floor else None,
                       "config": ("1 deny rule on the set, Felix default failsafe "
                                  "(9 inbound + 9 return entries)")}).to_json())
    return out


def run(quick: bool) -> list[dict]:
    """Rows for bench/run.py (one per entry count and source pattern)."""
    sizes = (1, 10_000, 1_000_000)
    ns = f"nwt-xpkt-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    rows: list[dict] = []
    try:
        subprocess.run(["ip", "-n", ns, "link", "add", IFACE, "type", "veth", "peer", "name",
                        PEER], check=True)
        for i in (IFACE, PEER, "lo"):
            subprocess.run(["ip", "-n", ns, "link", "set", i, "up"], check=True)
        for n in sizes:
            path = cidr_file(n)
            rows += _rows(n, run_in_netns(ns, _measure, path, n + 1, quick))
        return rows
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
        shutil.rmtree(PIN_ROOT / ns, ignore_errors=True)


def table(rows: list[dict]) -> str:
    head = (f"{'case':50} {'floor ns':>9} {'nodewall ns':>12} {'ratio':>6} "
            f"{'gross f/nw':>13}  goal")
    lines = [head]
    for r in rows:
        e = r["extra"]
        goal = f"<= {r['goal']} {'met' if r['met'] else 'NOT met'}" if r["goal"] else "-"
        lines.append(f"{r['case']:50} {r['raw']:9.1f} {r['value']:12.1f} {r['ratio']:6.2f} "
                     f"{e['floor_gross_ns']:6.1f}/{e['nodewall_gross_ns']:<6.1f}  {goal}")
    return "\n".join(lines)


def main() -> None:
    section_main(run, table)


if __name__ == "__main__":
    main()
