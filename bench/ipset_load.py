"""Benchmark: loading a 1M-CIDR nets_file into an ipset, inside a throwaway namespace.

  (a) plain:    `ipset create` + `ipset -exist restore` of a pre-made restore file
                (what an operator would script; default hashsize, maxelem raised)
  (a') plain-sized: the same with nodewall's hashsize/maxelem (for reference)
  (a'') plain-one-restore: the create line inside the same restore file, sized like
                nodewall (ipset is ~2.5x faster when the set is created in the same
                restore session; nodewall's stream does this)
  (b) nodewall: ipset_sync.sync() of the nets_file (stream, temp set, rename)
  (c) nodewall incremental: one line of the file changed, sync() again with the
      previous file as baseline -> 1 add + 1 del

Run as root:  .venv/bin/python -m bench.ipset_load [--lines N] [--out FILE.json]
Nothing outside the namespace `nwt-bench-<random>` is touched; it is always deleted.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from nodewall.engine.dataplane.ipsets import sync as ipset_sync
from nodewall.engine.dataplane.ipsets.load import sizing
from nodewall.engine.errors import Loc
from nodewall.engine.nets.baseline import BaselineStore
from nodewall.engine.nets.scan import scan_nets_file
from nodewall.engine.plan.desired import IpSetSpec
from nodewall.engine.plan.naming import netset_set
from nodewall.engine.system.netns import run_in_netns


def make_file(path: Path, n: int, seed: int = 7) -> None:
    """~89% /32, 10% /24, 1% /16, random public-looking v4 space."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        r = rng.random()
        a, b, c, d = rng.randrange(1, 224), rng.randrange(256), rng.randrange(256), \
            rng.randrange(256)
        if r < 0.89:
            out.append(f"{a}.{b}.{c}.{d}")
        elif r < 0.99:
            out.append(f"{a}.{b}.{c}.0/24")
        else:
            out.append(f"{a}.{b}.0.0/16")
    path.write_text("\n".join(out) + "\n")


def _timed_shell(cmds: list[tuple[list[str], Path | None]]) -> float:
    t0 = time.perf_counter()
    for argv, stdin in cmds:
        with open(stdin, "rb") if stdin else open(os.devnull, "rb") as fh:
            subprocess.run(argv, stdin=fh, check=True, capture_output=True)
    return time.perf_counter() - t0


def plain_load(restore_file: Path, name: str, hashsize: int | None, maxelem: int) -> float:
    create = ["ipset", "create", name, "hash:net", "maxelem", str(maxelem)]
    if hashsize:
        create += ["hashsize", str(hashsize)]
    t = _timed_shell([(create, None), (["ipset", "-exist", "restore"], restore_file)])
    subprocess.run(["ipset", "destroy", name], check=True)
    return t


def plain_one_restore(restore_file: Path, work: Path, name: str, hashsize: int,
                      maxelem: int) -> float:
    with_create = work / "plain-create.restore"
    with open(with_create, "wb") as dst, open(restore_file, "rb") as src:
        dst.write(f"create {name} hash:net hashsize {hashsize} maxelem {maxelem}\n".encode())
        dst.write(src.read())
    t = _timed_shell([(["ipset", "-exist", "restore"], with_create)])
    subprocess.run(["ipset", "destroy", name], check=True)
    with_create.unlink()
    return t


def nodewall_sync(spec: IpSetSpec, store: BaselineStore | None, manifests: Path):
    t0 = time.perf_counter()
    report = ipset_sync.sync([spec], store, manifests)
    return time.perf_counter() - t0, report


def ipset_test(name: str, value: str) -> bool:
    return subprocess.run(["ipset", "test", name, value], check=False,
                          capture_output=True).returncode == 0


def entries(name: str) -> int:
    text = subprocess.run(["ipset", "list", "-t", name], capture_output=True, text=True,
                          check=True).stdout
    return int(text.split("Number of entries:")[1].split()[0])


def prepare(nets: Path, work: Path) -> tuple[IpSetSpec, Path, int, int]:
    """The set spec nodewall loads, the plain `ipset restore` file of the same CIDRs,
    and the sizing both use."""
    counts = scan_nets_file(nets, Loc(str(nets)), 16 << 20)
    restore = work / "plain.restore"
    with open(nets, "rb") as src, open(restore, "wb") as dst:
        data = src.read()
        dst.write(b"add bench-plain " + data[:-1].replace(b"\n", b"\nadd bench-plain ")
                  + b"\n")
    hashsize, maxelem = sizing(counts.count_v4)
    spec = IpSetSpec(netset_set("bench", 4), 4, "hash:net", files=(nets,),
                     expected_count=counts.count_v4, origin="bench")
    return spec, restore, hashsize, maxelem


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/ipset_load: needs root (creates a network namespace)", file=sys.stderr)
        return 1
    ns = f"nwt-bench-{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory(prefix="nw-bench-") as tmp:
        work = Path(tmp)
        nets = work / "big.txt"
        make_file(nets, args.lines)
        spec, restore, hashsize, maxelem = prepare(nets, work)
        subprocess.run(["ip", "netns", "add", ns], check=True)
        try:
            r = run_in_netns(ns, _run, spec, nets, restore, work, hashsize, maxelem)
        finally:
            subprocess.run(["ip", "netns", "del", ns], check=False)
    r.update({"lines": args.lines, "members_v4": spec.expected_count, "cpus": os.cpu_count()})
    print(f"members: {spec.expected_count} v4 lines ({args.lines} lines, {r['cpus']} cpus)")
    print(f"(a)  plain create+restore (default hashsize): {r['plain_s']:.3f} s")
    print(f"(a') plain create+restore (nodewall sizing):  {r['plain_sized_s']:.3f} s")
    print(f"(a'') plain, create inside one restore:        {r['plain_one_restore_s']:.3f} s")
    print(f"(b)  nodewall sync, full load:                {r['nodewall_full_s']:.3f} s")
    print(f"     ratio b/a = {r['ratio_full_vs_plain']:.3f}   b/a' = "
          f"{r['ratio_full_vs_plain_sized']:.3f}   b/a'' = "
          f"{r['ratio_full_vs_plain_one_restore']:.3f}   (goal <= 1.0)")
    print(f"(c)  nodewall sync, one line changed:         {r['nodewall_incremental_s']:.4f} s"
          f"  = {100 * r['ratio_incremental_vs_full']:.2f} % of (b)  (goal <= 1 %)")
    print(f"     change: {r['change']}  -> {r['verified']}")
    if args.out:
        args.out.write_text(json.dumps(r, indent=2) + "\n")
    return 0 if r["verified_ok"] else 1


def _lonely_host_line(data: bytes) -> tuple[int, int]:
    """A /32 line from the middle of the file that appears once and that no /24 or /16
    of the file covers, so the kernel's answer for it changes with that line only."""
    pos = data.index(b"\n", len(data) // 2) + 1
    while True:
        end = data.index(b"\n", pos)
        line = data[pos:end]
        if b"/" not in line:
            a, b, c, _ = line.split(b".")
            if (data.count(b"\n" + line + b"\n") == 1
                    and b"\n" + a + b"." + b + b"." + c + b".0/24\n" not in data
                    and b"\n" + a + b"." + b + b".0.0/16\n" not in data):
                return pos, end
        pos = end + 1


def _run(spec: IpSetSpec, nets: Path, restore: Path, work: Path, hashsize: int,
         maxelem: int) -> dict:
    plain = plain_load(restore, "bench-plain", None, maxelem)
    plain_sized = plain_load(restore, "bench-plain", hashsize, maxelem)
    plain_one = plain_one_restore(restore, work, "bench-plain", hashsize, maxelem)
    full_s, full = nodewall_sync(spec, None, work / "manifests")
    assert full.plan.changes[0].action == "create"
    before = entries(spec.name)

    store = BaselineStore(work / "gen1")  # what the transaction records after an apply
    store.put(nets, (spec.expected_count, 0))
    data = nets.read_bytes()
    mid, end = _lonely_host_line(data)
    old_line = data[mid:end].decode()
    new_line = "198.18.77.0/24"  # benchmarking range: not in the random data
    nets.write_bytes(data[:mid] + new_line.encode() + data[end:])
    inc_s, inc = nodewall_sync(spec, store, work / "manifests")
    ch = inc.plan.changes[0]
    old_net = old_line if "/" in old_line else old_line + "/32"
    ok = (ch.action == "delta" and ch.added == (new_line,) and ch.removed == (old_net,)
          and ipset_test(spec.name, "198.18.77.5") and not ipset_test(spec.name, old_line)
          and entries(spec.name) == before)
    return {
        "plain_s": plain, "plain_sized_s": plain_sized, "plain_one_restore_s": plain_one,
        "nodewall_full_s": full_s, "ratio_full_vs_plain_one_restore": full_s / plain_one,
        "ratio_full_vs_plain": full_s / plain, "ratio_full_vs_plain_sized": full_s / plain_sized,
        "nodewall_incremental_s": inc_s, "ratio_incremental_vs_full": inc_s / full_s,
        "change": f"{old_line} -> {new_line} ({ch.action}: +{list(ch.added)} "
                  f"-{list(ch.removed)})",
        "verified": ("kernel: new member present, old absent, entry count unchanged "
                     f"({before})") if ok else "MISMATCH",
        "verified_ok": ok,
    }


if __name__ == "__main__":
    sys.exit(main())
