"""XDP backend over a veth pair: source lookup (host hash first, its values carrying
the covering prefixes' bits, then the trie) through deltas and reloads, and nets_file
edits applied in place from the previous generation's baselines."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from nodewall.engine.dataplane.xdp import maps as xdp_maps
from nodewall.engine.dataplane.xdp.backend import XdpBackend
from nodewall.engine.plan.desired import XdpInterface, XdpRule, XdpSetSource, XdpState
from nodewall.engine.profile.model import PortRange
from nodewall.engine.system import netns

from tests.helpers.xdp_kit import (
    DENIED4,
    DENIED6,
    apply_xdp,
    run_verdicts,
    xdp_generation,
)

pytestmark = pytest.mark.kernel

# ---- source lookup: host hash first (values carry covering bits), then the trie ----

def _covering(a_nets: tuple[str, ...], b_nets: tuple[str, ...], tag: str = "") -> XdpState:
    """Rule 1 denies set A (bit 0) on UDP 9999, rule 2 denies set B (bit 1) on 9998.
    Another tag = other sets behind the same bits: a full reload."""
    def src(bit: int, nets: tuple[str, ...]) -> XdpSetSource:
        n4 = sum(":" not in c for c in nets)
        return XdpSetSource(bit, f"set{bit}{tag}", nets, (), n4, len(nets) - n4)
    rules = (XdpRule("r-a", "deny", 17, (PortRange(9999, 9999),), 1),
             XdpRule("r-b", "deny", 17, (PortRange(9998, 9998),), 2))
    return XdpState("generic", (XdpInterface("srv0", rules, ()),),
                    (src(0, a_nets), src(1, b_nets)))  # type: ignore[arg-type]


def _source_maps():
    with xdp_maps.Pinned.open(XdpBackend().dir) as p:  # type: ignore[union-attr]
        out = {}
        for fam in (4, 6):
            for host in (False, True):
                fd = p.inner_fd(fam, p.active_gen(), host)
                out[(fam, host)] = fd is not None
                if fd is not None:
                    os.close(fd)
        return out


def test_host_hash_values_carry_covering_prefix_bits_through_deltas(pair):
    from bench import frames as xdp_frames
    host4, host6, other4 = DENIED4, DENIED6, "10.77.0.98"

    def frames(src: str, dst: str) -> list[tuple[str, bytes]]:
        return [("srv0", xdp_frames.udp(src, dst, 4000, port)) for port in (9999, 9998)]

    def verdicts() -> list[int]:
        fr = (frames(host4, pair.server_ip) + frames(host6, pair.server_ip6)
              + frames(other4, pair.server_ip))
        return netns.run_in_netns(pair.server, run_verdicts, fr)

    drop, ok = 1, 2
    # A covers B's hosts: a host entry must answer for A too (bits A|B)
    netns.run_in_netns(pair.server, apply_xdp, _covering(("10.77.0.0/24", "fd77::/64"),
                                                      (f"{host4}/32", f"{host6}/128")))
    assert netns.run_in_netns(pair.server, _source_maps) == {
        (4, False): True, (4, True): True, (6, False): True, (6, True): True}
    assert verdicts() == [drop, drop, drop, drop, drop, ok]
    # delta: A loses its covering prefixes -> the host entries lose bit A
    netns.run_in_netns(pair.server, apply_xdp, _covering(("192.0.2.0/24", "2001:db8::/32"),
                                                      (f"{host4}/32", f"{host6}/128")))
    assert verdicts() == [ok, drop, ok, drop, ok, ok]
    # delta: a covering prefix comes back in B only, a host moves to A
    netns.run_in_netns(pair.server, apply_xdp, _covering((f"{host4}/32", "2001:db8::/32"),
                                                      ("10.77.0.0/16", f"{host6}/128")))
    assert verdicts() == [drop, drop, ok, drop, ok, drop]
    # only prefixes (no host hash), then only hosts (no trie): each a reload
    netns.run_in_netns(pair.server, apply_xdp, _covering(("10.77.0.96/30",), ("fd77::/64",), "x"))
    assert netns.run_in_netns(pair.server, _source_maps) == {
        (4, False): True, (4, True): False, (6, False): True, (6, True): False}
    assert verdicts() == [drop, ok, ok, drop, drop, ok]
    netns.run_in_netns(pair.server, apply_xdp, _covering((f"{other4}/32",), (f"{host6}/128",), "y"))
    assert netns.run_in_netns(pair.server, _source_maps) == {
        (4, False): False, (4, True): True, (6, False): False, (6, True): True}
    assert verdicts() == [ok, ok, ok, drop, drop, ok]
    # a delta that needs a map the generation lacks (a prefix, no trie): a reload
    netns.run_in_netns(pair.server, apply_xdp, _covering((f"{other4}/32", "10.77.0.0/24"),
                                                      (f"{host6}/128",), "y"))
    assert netns.run_in_netns(pair.server, _source_maps)[(4, False)]
    assert verdicts() == [drop, ok, ok, drop, drop, ok]


# ---- nets_file edits applied in place (baselines of the previous generation) ----

def _filed(path: Path, lines: list[str], extra_inline: tuple[str, ...] = (),
           allow_udp: bool = False) -> XdpState:
    """Set A (bit 0): the nets_file (+ inline); set B (bit 1): 10.78.0.0/16 inline.
    UDP 9999 denies A, UDP 9998 denies B (optionally after an allow of UDP 7)."""
    path.write_text("".join(f"{x}\n" for x in lines))
    n4 = sum(":" not in x for x in lines)
    a = XdpSetSource(0, "set-a", extra_inline, (path,), n4 + len(extra_inline), len(lines) - n4)
    b = XdpSetSource(1, "set-b", ("10.78.0.0/16",), (), 1, 0)
    rules = (XdpRule("r-7", "allow", 17, (PortRange(7, 7),), 0),) if allow_udp else ()
    rules += (XdpRule("r-a", "deny", 17, (PortRange(9999, 9999),), 1),
              XdpRule("r-b", "deny", 17, (PortRange(9998, 9998),), 2))
    return XdpState("generic", (XdpInterface("srv0", rules, ()),), (a, b))  # type: ignore[arg-type]


def _apply_with(xdp: XdpState, base_dir: Path, record: Path):
    """Apply with the baselines of the previous apply, then record the file as applied
    (what the transaction layer does per generation)."""
    from nodewall.engine.nets.baseline import BaselineStore
    store = BaselineStore(base_dir)
    XdpBackend().apply(xdp, baselines=store)
    s = xdp.sets[0]
    store.put(record, (s.count_v4, s.count_v6))
    meta = XdpBackend().observe().meta
    return {fam: meta["tries"][str(fam)]["digest"] for fam in (4, 6)}


def _map_ids() -> dict[str, int | None]:
    from nodewall.engine.dataplane.xdp import bpf_syscall as bpf
    out: dict[str, int | None] = {}
    with xdp_maps.Pinned.open(XdpBackend().dir) as p:  # type: ignore[union-attr]
        for host in (False, True):
            fd = p.inner_fd(4, p.active_gen(), host)
            out["hosts" if host else "trie"] = bpf.map_info(fd).id if fd is not None else None
            if fd is not None:
                os.close(fd)
    return out


def test_nets_file_one_line_edit_changes_host_entries_in_place(pair, tmp_path):
    import random

    from nodewall.engine.dataplane.xdp.sources import source_digest

    from bench import frames as xdp_frames
    rng = random.Random(5)
    bulk = [f"198.18.{rng.randrange(256)}.{rng.randrange(256)}" for _ in range(3000)]
    lines = [*bulk[:1500], "10.77.0.99", "192.0.2.0/24", "fd77::99", *bulk[1500:]]
    f, bases = tmp_path / "deny.txt", tmp_path / "bases"
    drop, ok = 1, 2

    def verdicts(srcs: list[str], port: int = 9999) -> list[int]:
        frames = [("srv0", xdp_frames.udp(s, pair.server_ip6 if ":" in s else pair.server_ip,
                                          4000, port)) for s in srcs]
        return netns.run_in_netns(pair.server, run_verdicts, frames)

    netns.run_in_netns(pair.server, _apply_with, _filed(f, lines), bases, f)
    assert verdicts(["10.77.0.99", "10.77.0.77", bulk[7], "192.0.2.5", "fd77::99"]) == [
        drop, ok, drop, drop, drop]
    ids = netns.run_in_netns(pair.server, _map_ids)
    # one line: the denied member 10.77.0.99 becomes 10.77.0.77
    lines[1500] = "10.77.0.77"
    xdp = _filed(f, lines)
    digests = netns.run_in_netns(pair.server, _apply_with, xdp, bases, f)
    assert netns.run_in_netns(pair.server, _map_ids) == ids  # in place, no reload
    assert digests[4] == source_digest(xdp.sets, 4)  # the next apply sees the new state
    assert verdicts(["10.77.0.77", "10.77.0.99", bulk[7], bulk[2999], "192.0.2.5",
                     "fd77::99"]) == [drop, ok, drop, drop, drop, drop]
    assert "trie" not in " ".join(op.kind for op in netns.run_in_netns(
        pair.server, lambda: XdpBackend().plan(xdp, XdpBackend().observe())))
    # a host under set B's prefix: its entry carries B's covering bit beside A's
    lines[10] = "10.78.0.5"
    netns.run_in_netns(pair.server, _apply_with, _filed(f, lines), bases, f)
    assert verdicts(["10.78.0.5", bulk[10]]) == [drop, ok]
    assert verdicts(["10.78.0.5", "10.78.0.6"], 9998) == [drop, drop]
    # and back out of A, with a rule table change in the same apply (flip): the entry
    # goes, B's prefix still answers through the trie
    gen = netns.run_in_netns(pair.server, xdp_generation)
    lines[10] = bulk[10]
    netns.run_in_netns(pair.server, _apply_with, _filed(f, lines, allow_udp=True), bases, f)
    assert netns.run_in_netns(pair.server, xdp_generation) == 1 - gen
    assert netns.run_in_netns(pair.server, _map_ids) == ids
    assert verdicts(["10.78.0.5", bulk[10], "10.77.0.77"]) == [ok, drop, drop]
    assert verdicts(["10.78.0.5"], 9998) == [drop]
    # an inline host of the same set, then a prefix line (covering bits change under
    # it: not a host-entry delta; this small set takes the full-content delta instead)
    netns.run_in_netns(pair.server, _apply_with, _filed(f, lines, ("10.77.0.66",), True),
                       bases, f)
    assert verdicts(["10.77.0.66", "10.77.0.77"]) == [drop, drop]
    assert netns.run_in_netns(pair.server, _map_ids) == ids
    lines[20] = "10.77.0.128/25"
    netns.run_in_netns(pair.server, _apply_with, _filed(f, lines, ("10.77.0.66",), True),
                       bases, f)
    assert verdicts(["10.77.0.200", "10.77.0.66", "10.77.0.99", bulk[20]]) == [
        drop, drop, ok, ok]


def test_nets_file_gaining_a_prefix_changes_the_trie_in_place(pair, tmp_path):
    """A host line becomes a /24 (or a /24 under set B's /16): the new prefix and
    every entry inside it gain the set's bit in the live maps (no reload); losing the
    prefix again reloads the family and gives the earlier answers back.  The set is
    larger than DELTA_MAX, so no full-content delta can stand in for the file delta."""
    import random

    from nodewall.engine.dataplane.xdp.family_plan import DELTA_MAX
    from nodewall.engine.dataplane.xdp.sources import source_digest

    from bench import frames as xdp_frames
    rng = random.Random(6)
    bulk = [f"198.{18 + (a >> 16)}.{a >> 8 & 255}.{a & 255}"  # distinct hosts
            for a in rng.sample(range(1 << 17), DELTA_MAX + 5000)]
    lines = [*bulk[:1500], "10.77.0.99", "10.77.0.200/29", "10.78.1.9", *bulk[1500:]]
    f, bases = tmp_path / "deny.txt", tmp_path / "bases"
    drop, ok = 1, 2

    def verdicts(srcs: list[str], port: int = 9999) -> list[int]:
        frames = [("srv0", xdp_frames.udp(s, pair.server_ip, 4000, port)) for s in srcs]
        return netns.run_in_netns(pair.server, run_verdicts, frames)

    netns.run_in_netns(pair.server, _apply_with, _filed(f, lines), bases, f)
    assert verdicts(["10.77.0.5", "10.77.0.99", "10.77.0.201", bulk[5]]) == [
        ok, drop, drop, drop]
    ids = netns.run_in_netns(pair.server, _map_ids)
    # a host line becomes 10.77.0.0/24, which covers a host and a /29 of the file
    lines[5] = "10.77.0.0/24"
    xdp = _filed(f, lines)
    digests = netns.run_in_netns(pair.server, _apply_with, xdp, bases, f)
    assert netns.run_in_netns(pair.server, _map_ids) == ids  # in place, no reload
    assert digests[4] == source_digest(xdp.sets, 4)
    assert verdicts(["10.77.0.5", "10.77.0.99", "10.77.0.201", bulk[5], "10.77.1.5"]) == [
        drop, drop, drop, ok, ok]
    assert verdicts(["10.77.0.5", "10.77.0.99"], 9998) == [ok, ok]
    # a /24 under set B's 10.78.0.0/16: its entries carry both bits, the rest of the
    # /16 keeps B's only
    lines[6] = "10.78.1.0/24"
    netns.run_in_netns(pair.server, _apply_with, _filed(f, lines), bases, f)
    assert netns.run_in_netns(pair.server, _map_ids) == ids
    assert verdicts(["10.78.1.7", "10.78.1.9", "10.78.2.7", bulk[6]]) == [
        drop, drop, ok, ok]
    assert verdicts(["10.78.1.7", "10.78.1.9", "10.78.2.7"], 9998) == [drop, drop, drop]
    # the /24 goes again: a lost prefix reloads, the earlier answers come back
    lines[6] = bulk[6]
    netns.run_in_netns(pair.server, _apply_with, _filed(f, lines), bases, f)
    assert netns.run_in_netns(pair.server, _map_ids) != ids
    assert verdicts(["10.78.1.7", "10.78.1.9", "10.78.2.7", bulk[6]]) == [
        ok, drop, ok, drop]
    assert verdicts(["10.78.1.7", "10.78.1.9"], 9998) == [drop, drop]
