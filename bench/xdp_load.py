"""Benchmark: loading N CIDRs (default 1M) into nodewall's XDP source maps (host
hash for the /32 entries + LPM trie for the shorter prefixes), beside a raw
BPF_MAP_UPDATE_BATCH of the same, pre-packed entries into a fresh LPM trie in the
same run (goal: nodewall <= 1.2x raw).  nodewall's time includes reading and
parsing the nets_file; raw's does not.  Also: a 2-set merge (2 x N/2 entries), and a
one-line edit of the N-line file applied as a delta against the previous copy
(goal: <= 1 % of the full apply).

Run as root:  .venv/bin/python -m bench.xdp_load [--lines N] [--out FILE.json]
Everything happens in the namespace `nwt-xbench-<random>`, deleted at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from nodewall.engine.dataplane.xdp.backend import XdpBackend
from nodewall.engine.dataplane.xdp.cidr_keys import VALUE
from nodewall.engine.dataplane.xdp.map_io import load, update_batch
from nodewall.engine.dataplane.xdp.maps import Pinned, create_hosts, create_trie
from nodewall.engine.dataplane.xdp.source_merge import iter_batches
from nodewall.engine.dataplane.xdp.sources import source_digest
from nodewall.engine.nets.scan import iter_member_chunks
from nodewall.engine.plan.desired import XdpInterface, XdpRule, XdpSetSource, XdpState
from nodewall.engine.system.netns import run_in_netns

from bench.common import Row
from bench.ipset_load import make_file
from bench.xdp_keys import pack_chunk


def _raw(path: Path, n: int) -> float:
    keys = b"".join(pack_chunk(c.decode(), 4)[0] for c in iter_member_chunks(path, 4))
    count = len(keys) // 8
    vals = VALUE.pack(1) * count
    fd = create_trie(4, n + n // 4 + 1024)
    try:
        t0 = time.perf_counter()
        update_batch(fd, keys, vals, count, 8)
        return time.perf_counter() - t0
    finally:
        os.close(fd)


def _nodewall_load(sets: list[XdpSetSource], n: int) -> float:
    fds: dict[bool, int] = {}

    def fd_for(host: bool) -> int:
        if host not in fds:
            size = n + n // 4 + 1024
            fds[host] = create_hosts(4, size) if host else create_trie(4, size)
        return fds[host]

    t0 = time.perf_counter()
    try:
        load(fd_for, iter_batches(sets, 4), 4)
        return time.perf_counter() - t0
    finally:
        for fd in fds.values():
            os.close(fd)


def _nodewall_trie(path: Path, n: int) -> float:
    return _nodewall_load([XdpSetSource(0, "bench", (), (path,), n, 0)], n)


def _nodewall_merge(a: Path, b: Path, n: int) -> float:
    """Two sets (two bits) of n // 2 entries each in one family: the merge path."""
    return _nodewall_load([XdpSetSource(0, "a", (), (a,), n // 2, 0),
                           XdpSetSource(1, "b", (), (b,), n // 2, 0)], n)


def _apply(path: Path, n: int) -> tuple[float, float]:
    src = XdpSetSource(0, "bench", (), (path,), n, 0)
    xdp = XdpState(mode="generic", sets=(src,), interfaces=(XdpInterface(
        "xb0", (XdpRule("bench-deny", "deny", None, (), 1),), ()),))
    b = XdpBackend()
    try:
        t0 = time.perf_counter()
        b.apply(xdp)
        full = time.perf_counter() - t0
        t0 = time.perf_counter()
        b.apply(xdp)  # unchanged: digest only
        again = time.perf_counter() - t0
        return full, again
    finally:
        b.flush()


def _incremental(path: Path, n: int, work: Path) -> dict:
    """Full apply of the N-line set, then a one-line edit (a denied host replaced by
    another) applied with the first apply's file as baseline: XdpBackend.apply alone
    (no CLI, no profile loading), the same process, both timed."""
    from nodewall.engine.nets.baseline import BaselineStore
    mine = work / "inc.txt"
    data = path.read_bytes()
    mine.write_bytes(data)
    store = BaselineStore(work / "baselines")
    src = XdpSetSource(0, "bench", (), (mine,), n, 0)
    xdp = XdpState(mode="generic", sets=(src,), interfaces=(XdpInterface(
        "xb0", (XdpRule("bench-deny", "deny", None, (), 1),), ()),))
    b = XdpBackend()
    try:
        t0 = time.perf_counter()
        b.apply(xdp, baselines=store)
        full = time.perf_counter() - t0
        store.put(mine, (n, 0))  # what the transaction records as the generation's copy
        mid = data.index(b"\n", len(data) // 2) + 1
        end = data.index(b"\n", mid)
        old_line = data[mid:end].decode()
        mine.write_bytes(data[:mid] + b"198.18.77.1" + data[end:])
        time.sleep(0.2)  # an edit is not applied in the same millisecond it is saved
        t0 = time.perf_counter()
        b.apply(xdp, baselines=store)
        inc = time.perf_counter() - t0
        with Pinned.open(b.dir) as p:  # type: ignore[union-attr]
            meta = p.read_meta()
        return {"full_s": full, "one_line_s": inc, "ratio": inc / full,
                "edit": f"{old_line} -> 198.18.77.1",
                "digest_current": meta["tries"]["4"]["digest"] == source_digest(
                    xdp.sets, 4)}
    finally:
        b.flush()


def measure(n: int, rounds: int) -> dict:
    ns = f"nwt-xbench-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "add", "xb0", "type", "veth", "peer", "name",
                        "xb1"], check=True)
        subprocess.run(["ip", "-n", ns, "link", "set", "xb0", "up"], check=True)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "blocklist.txt"
            make_file(path, n)
            lines = path.read_text().splitlines(keepends=True)
            half_a, half_b = Path(tmp) / "a.txt", Path(tmp) / "b.txt"
            half_a.write_text("".join(lines[0::2]))
            half_b.write_text("".join(lines[1::2]))
            raw, ours, merged = [], [], []
            for _ in range(rounds):  # interleaved, same run
                raw.append(run_in_netns(ns, _raw, path, n))
                ours.append(run_in_netns(ns, _nodewall_trie, path, n))
                merged.append(run_in_netns(ns, _nodewall_merge, half_a, half_b, n))
            full, again = run_in_netns(ns, _apply, path, n)
            inc = run_in_netns(ns, _incremental, path, n, Path(tmp))
        return {"incremental": inc, "entries": n, "rounds": rounds, "raw_batch_s": min(raw),
                "nodewall_trie_s": min(ours), "ratio": min(ours) / min(raw),
                "merge_2_sets_s": min(merged),
                "apply_full_s_incl_compile_attach": full, "apply_unchanged_s": again,
                "raw_all": raw, "nodewall_all": ours, "merge_all": merged, "goal_ratio": 1.2}
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def run(quick: bool) -> list[dict]:
    """Rows for bench/run.py: nodewall's load vs a raw batch insert, and the merge."""
    n = 100_000 if quick else 1_000_000
    r = measure(n, 1 if quick else 3)
    return [
        Row("xdp_load", f"{n:,} CIDRs into the XDP source maps", "raw BPF_MAP_UPDATE_BATCH",
            r["raw_batch_s"], r["nodewall_trie_s"], "s", goal=1.2, n=n,
            note="nodewall's time includes reading and parsing the file",
            extra=r).to_json(),
        Row("xdp_load", f"2 sets x {n // 2:,} CIDRs merged (one family)",
            "raw BPF_MAP_UPDATE_BATCH (1 set)", r["raw_batch_s"], r["merge_2_sets_s"], "s",
            n=n, note="covering-prefix bits and duplicates merged across the sets").to_json(),
        Row("xdp_load", f"one denied host changed in {n:,} (nets_file delta, XdpBackend.apply)",
            "full load (same backend)", r["incremental"]["full_s"],
            r["incremental"]["one_line_s"], "s", goal=0.01, n=n,
            note=f"{r['incremental']['edit']}; host entries changed in place against the "
                 "previous generation's copy of the file").to_json(),
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    r = measure(args.lines, args.rounds)
    print(json.dumps(r, indent=2))
    if args.out:
        args.out.write_text(json.dumps(r, indent=2) + "\n")


if __name__ == "__main__":
    main()
