"""XDP backend over a veth pair in throwaway namespaces, with real packets.

A TCP connect to a port nothing listens on answers "refused" when the SYN reached
the server's stack and "timeout" when something dropped it on the way."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from nodewall.engine.dataplane.xdp import maps as xdp_maps
from nodewall.engine.dataplane.xdp.backend import XdpBackend
from nodewall.engine.errors import Loc, OwnershipError
from nodewall.engine.plan.desired import XdpInterface, XdpRule, XdpSetSource, XdpState
from nodewall.engine.profile.model import Failsafe, PortRange
from nodewall.engine.system import netns

from tests.conftest import in_ns

pytestmark = pytest.mark.kernel

DENIED4, DENIED6 = "10.77.0.99", "fd77::99"

PROBE = r"""
import socket, sys
src, dst, port, kind = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM)
s.settimeout(1.5)
s.bind((src, 0))
try:
    s.connect((dst, port))
    if kind == "udp":
        s.send(b"x")
        s.recv(10)
    print("connected")
except ConnectionRefusedError:
    print("refused")
except (socket.timeout, TimeoutError):
    print("timeout")
"""


def probe(pair, src: str, dst: str, port: int, kind: str = "tcp") -> str:
    return in_ns(pair.client, "python3", "-c", PROBE, src, dst, str(port), kind,
                 timeout=20).stdout.strip()


def fs(spec: str) -> Failsafe:
    proto, _, rest = spec.partition(":")
    port, _, net = rest.partition("@")
    return Failsafe(proto, int(port), net or None, Loc("test"))  # type: ignore[arg-type]


def state(mode: str = "auto", deny: tuple[str, ...] = (f"{DENIED4}/32", f"{DENIED6}/128"),
          files: tuple[Path, ...] = (), bit: int = 0, origin: str = "blocklist") -> XdpState:
    n4 = sum(1 for c in deny if ":" not in c)
    sets = (XdpSetSource(bit=bit, origin=origin, inline=deny, files=files,
                         count_v4=n4 + 1000 * len(files), count_v6=len(deny) - n4),)
    rules = (
        XdpRule("r-deny", "deny", 6, (), 1 << bit),
        XdpRule("r-allow-udp", "allow", 17, (PortRange(5000, 5001),), 0),
    )
    iface = XdpInterface("srv0", rules, (fs("tcp:22"), fs("udp:68")))
    return XdpState(mode=mode, interfaces=(iface,), sets=sets)  # type: ignore[arg-type]


def _apply(xdp: XdpState):
    b = XdpBackend()
    res = b.apply(xdp)
    return res.modes, {k: (a.mode, a.owned) for k, a in b.attached().items()}


def _counters():
    b = XdpBackend()
    return b.counters(), b.action_counters()


def _gen():
    return XdpBackend().observe().meta["gen"]


def _trie_id(fam: int) -> int:
    from nodewall.engine.dataplane.xdp import bpf_syscall as bpf
    with xdp_maps.Pinned.open(XdpBackend().dir) as p:  # type: ignore[union-attr]
        fd = p.inner_fd(fam, p.active_gen())
        assert fd is not None
        try:
            return bpf.map_info(fd).id
        finally:
            os.close(fd)


def _flush():
    b = XdpBackend()
    detached = b.flush()
    return detached, b.attached(), b.dir.exists()


@pytest.fixture
def pair(netns_pair):
    netns_pair.add_client_address(f"{DENIED4}/24")
    netns_pair.add_client_address(f"{DENIED6}/64")
    try:
        yield netns_pair
    finally:  # never leave pins behind, even when a test fails
        netns.run_in_netns(netns_pair.server, _flush)
        leftover = xdp_maps.PIN_ROOT / netns_pair.server
        assert not leftover.exists(), f"pins left in {leftover}"


@pytest.mark.parametrize("mode", ["native", "generic"])
def test_denied_source_dropped_by_xdp_before_raw(pair, mode):
    modes, attached = netns.run_in_netns(pair.server, _apply, state(mode))
    assert modes == {"srv0": mode}
    assert attached["srv0"] == (mode, True)
    # the same flow denied in raw too: XDP must drop it before raw sees it
    in_ns(pair.server, "iptables-legacy", "-t", "raw", "-A", "PREROUTING", "-s", DENIED4,
          "-p", "tcp", "--dport", "80", "-j", "DROP")

    assert probe(pair, DENIED4, pair.server_ip, 80) == "timeout"
    assert probe(pair, pair.client_ip, pair.server_ip, 80) == "refused"  # not in the set

    counters, actions = netns.run_in_netns(pair.server, _counters)
    assert counters["r-deny"][0] >= 1
    assert actions["deny"][0] >= 1
    raw = in_ns(pair.server, "iptables-legacy", "-t", "raw", "-L", "PREROUTING", "-v", "-x",
                "-n").stdout.splitlines()[2].split()
    assert raw[0] == "0", f"raw DROP saw packets XDP should have dropped: {raw}"


@pytest.mark.parametrize("mode", ["native", "generic"])
def test_failsafe_allowed_and_ipv6(pair, mode):
    netns.run_in_netns(pair.server, _apply, state(mode))
    # failsafe tcp:22 passes although the source is in the deny set
    assert probe(pair, DENIED4, pair.server_ip, 22) == "refused"
    assert probe(pair, DENIED6, pair.server_ip6, 22) == "refused"
    # IPv6 deny and pass
    assert probe(pair, DENIED6, pair.server_ip6, 80) == "timeout"
    assert probe(pair, pair.client_ip6, pair.server_ip6, 80) == "refused"
    # allowed untracked UDP passes (port unreachable comes back)
    assert probe(pair, pair.client_ip, pair.server_ip, 5000, "udp") == "refused"
    counters, actions = netns.run_in_netns(pair.server, _counters)
    assert actions["failsafe"][0] >= 2
    assert counters["r-allow-udp"][0] >= 1
    assert counters["r-deny"][0] >= 1


def test_delta_and_full_reload_keep_counters(pair, tmp_path):
    netns.run_in_netns(pair.server, _apply, state(deny=(f"{DENIED6}/128",)))
    assert probe(pair, DENIED4, pair.server_ip, 80) == "refused"  # not denied yet
    assert probe(pair, DENIED6, pair.server_ip6, 80) == "timeout"
    before = netns.run_in_netns(pair.server, _counters)[0]["r-deny"][0]
    # small change: delta in place (adds before deletes)
    netns.run_in_netns(pair.server, _apply, state(deny=(f"{DENIED4}/32",)))
    assert probe(pair, DENIED4, pair.server_ip, 80) == "timeout"
    assert probe(pair, DENIED6, pair.server_ip6, 80) == "refused"  # deleted
    assert netns.run_in_netns(pair.server, _counters)[0]["r-deny"][0] > before
    # bit 0 now means another set: full reload into fresh tries, one flip
    f = tmp_path / "block.txt"
    f.write_text("# blocklist\n10.77.0.0/28\n192.0.2.0/24\n\n")
    gen = netns.run_in_netns(pair.server, _gen)
    netns.run_in_netns(pair.server, _apply, state(deny=(), files=(f,), bit=0, origin="file"))
    assert netns.run_in_netns(pair.server, _gen) == 1 - gen
    assert probe(pair, pair.client_ip, pair.server_ip, 80) == "timeout"  # 10.77.0.2 in /28
    assert probe(pair, DENIED4, pair.server_ip, 80) == "refused"  # .99 is outside /28
    # and a new bit for it: compatible, the file is small -> delta in place (the same
    # trie), while the changed rule table goes to the other generation and flips
    trie4 = netns.run_in_netns(pair.server, _trie_id, 4)
    netns.run_in_netns(pair.server, _apply, state(deny=(), files=(f,), bit=5, origin="file"))
    assert netns.run_in_netns(pair.server, _gen) == gen
    assert netns.run_in_netns(pair.server, _trie_id, 4) == trie4
    assert probe(pair, pair.client_ip, pair.server_ip, 80) == "timeout"


FOREIGN = """
#include <uapi/linux/bpf.h>
int fw_other(struct xdp_md *ctx) { return XDP_PASS; }
"""


def _foreign_then_apply():
    import socket

    from bcc import BPF
    from nodewall.engine.dataplane.xdp import bpf_syscall as bpf
    b = BPF(text=FOREIGN)
    fn = b.load_func("fw_other", BPF.XDP)
    idx = socket.if_nametoindex("srv0")
    bpf.xdp_attach(idx, fn.fd, bpf.XDP_FLAGS_SKB_MODE)
    be = XdpBackend()
    before = be.attached()["srv0"]
    try:
        be.apply(state())
        raised = None
    except OwnershipError as e:
        raised = e.render()
    after = be.attached()["srv0"]
    flushed = be.flush()
    still = be.attached().get("srv0")
    bpf.xdp_detach(idx, bpf.XDP_FLAGS_SKB_MODE)
    return before, raised, after, flushed, still, os.path.exists(be.dir)


def test_foreign_program_left_alone(pair):
    before, raised, after, flushed, still, pins = netns.run_in_netns(
        pair.server, _foreign_then_apply)
    assert raised is not None and "fw_other" in raised and "hint:" in raised
    assert not before.owned and before.prog_name == "fw_other"
    assert after.prog_id == before.prog_id  # not replaced
    assert flushed == [] and still is not None and still.prog_id == before.prog_id
    assert not pins


def test_flush_detaches_and_unpins(pair):
    netns.run_in_netns(pair.server, _apply, state())
    assert (xdp_maps.PIN_ROOT / pair.server / "prog").exists()
    detached, attached, exists = netns.run_in_netns(pair.server, _flush)
    assert detached == ["srv0"] and attached == {} and not exists
    assert probe(pair, DENIED4, pair.server_ip, 80) == "refused"


# ---- failsafe return traffic, failsafe counters, VLAN-tagged frames ----

SEND = r"""
import socket, sys
dst = sys.argv[1]
for spec in sys.argv[2:]:
    src, port = spec.rsplit(",", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((src, int(port)))
    s.sendto(b"reply", (dst, 9999))
    s.close()
"""


def _udp_received(client: str, dst: str, sends: list[tuple[str, int]]) -> set[tuple[str, int]]:
    """In the server namespace: listen on udp 9999, let the client send one datagram
    from each (source address, source port), return the (address, port)s received."""
    import socket
    import subprocess
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((dst, 9999))
    s.settimeout(1.5)
    subprocess.run(["ip", "netns", "exec", client, "python3", "-c", SEND, dst,
                    *(f"{a},{p}" for a, p in sends)], check=True, timeout=20)
    got: set[tuple[str, int]] = set()
    for _ in range(len(sends) + 10):  # bounded: stops at the first quiet 1.5 s
        try:
            _, peer = s.recvfrom(100)
        except TimeoutError:
            break
        got.add(peer)
    s.close()
    return got


def _ids_counters():
    b = XdpBackend()
    return b.counters(), b.action_counters(), b.observe().meta


def test_failsafe_return_matches_source_port_before_deny_all(pair):
    from nodewall.engine.dataplane.xdp.rule_rows import failsafe_id
    inbound = (fs("udp:68"),)
    ret = (fs("udp:53"), fs(f"udp:67@{DENIED4}/32"))
    iface = XdpInterface("srv0", (XdpRule("r-deny-all", "deny", None, (), 0),), inbound,
                         failsafe_return=ret)
    netns.run_in_netns(pair.server, _apply, XdpState(mode="native", interfaces=(iface,)))
    c = pair.client_ip
    sends = [(c, 53), (c, 54), (DENIED4, 67), (c, 67), (c, 68)]
    got = netns.run_in_netns(pair.server, _udp_received, pair.client, pair.server_ip, sends)
    # DNS-style replies (source port 53) pass; 54 does not; the CIDR is the remote's
    # address, i.e. the packet's source; an inbound entry never matches a source port
    assert got == {(c, 53), (DENIED4, 67)}
    counters, actions, meta = netns.run_in_netns(pair.server, _ids_counters)
    assert actions["failsafe"][0] == 2
    assert actions["deny"][0] >= 3
    # hits under the ids of the raw chain's failsafe rules
    assert counters[failsafe_id(ret[0], True)][0] == 1
    assert counters[failsafe_id(ret[1], True)][0] == 1
    assert counters[failsafe_id(inbound[0], False)][0] == 0
    assert counters["r-deny-all"][0] >= 3
    assert meta["actions"][failsafe_id(ret[0], True)] == "failsafe"


def _inject(iface: str, frames: list[bytes]) -> None:
    import socket
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    for f in frames:
        s.send(f)
    s.close()


def _test_run(frames: list[bytes]) -> list[int]:
    import ctypes
    import socket

    from nodewall.engine.dataplane.xdp import bpf_syscall as bpf
    idx = socket.if_nametoindex("srv0")
    with xdp_maps.Pinned.open(XdpBackend().dir) as p:  # type: ignore[union-attr]
        out = []
        for f in frames:
            ctx = bpf.XdpMd(0, len(f), 0, idx, 0, 0)
            out.append(bpf.prog_test_run(p.prog_fd, f, ctx=ctx)[0])
            assert ctypes.sizeof(ctx) == 24
        return out


def test_vlan_tagged_frames_pass_untouched(pair):
    from bench import frames as xdp_frames
    sets = (XdpSetSource(0, "blocklist", (f"{DENIED4}/32",), (), 1, 0),)
    iface = XdpInterface("srv0", (XdpRule("r-deny", "deny", None, (), 1),), ())
    netns.run_in_netns(pair.server, _apply, XdpState("native", (iface,), sets))
    srv_mac = in_ns(pair.server, "cat", "/sys/class/net/srv0/address").stdout.strip()
    cli_mac = in_ns(pair.client, "cat", "/sys/class/net/cli0/address").stdout.strip()
    eth = {"src_mac": xdp_frames.mac(cli_mac), "dst_mac": xdp_frames.mac(srv_mac)}
    frame = xdp_frames.udp(DENIED4, pair.server_ip, 4000, 9999, **eth)
    tagged = xdp_frames.udp(DENIED4, pair.server_ip, 4000, 9999, vlan=100, **eth)
    before = netns.run_in_netns(pair.server, _counters)[1]
    netns.run_in_netns(pair.client, _inject, "cli0", [tagged, tagged, frame])
    after = netns.run_in_netns(pair.server, _counters)[1]
    assert after["vlan"][0] - before["vlan"][0] == 2
    assert after["deny"][0] - before["deny"][0] == 1  # the untagged copy is judged
    # the same through BPF_PROG_TEST_RUN: XDP_PASS (2) tagged, XDP_DROP (1) untagged
    assert netns.run_in_netns(pair.server, _test_run, [tagged, frame]) == [2, 1]


# ---- rule tables: array slots for small ifindexes, hash for large ones ----

BIG_IFINDEX = 300  # >= NW_IFARR_SLOTS: its rule table lives in the hash nw_ifcfg


def _two_ifaces(allow_udp: bool) -> XdpState:
    sets = (XdpSetSource(0, "blocklist", (f"{DENIED4}/32",), (), 1, 0),)
    rules = (XdpRule("r-allow-udp", "allow", 17, (), 0),) if allow_udp else ()
    rules += (XdpRule("r-deny", "deny", None, (), 1),)
    ifaces = tuple(XdpInterface(n, rules, ()) for n in ("srv0", "big0"))
    return XdpState("generic", ifaces, sets)  # type: ignore[arg-type]


def _verdicts(frames: list[tuple[str, bytes]]) -> list[int]:
    import socket

    from nodewall.engine.dataplane.xdp import bpf_syscall as bpf
    with xdp_maps.Pinned.open(XdpBackend().dir) as p:  # type: ignore[union-attr]
        out = []
        for name, f in frames:
            ctx = bpf.XdpMd(0, len(f), 0, socket.if_nametoindex(name), 0, 0)
            out.append(bpf.prog_test_run(p.prog_fd, f, ctx=ctx)[0])
        return out


def _tables():
    with xdp_maps.Pinned.open(XdpBackend().dir) as p:  # type: ignore[union-attr]
        return p.active_gen(), sorted(p.iface_keys())


def test_rule_tables_array_and_hash_fallback_across_flips(pair):
    from nodewall.engine.dataplane.xdp.layout import NW_IFARR_SLOTS

    from bench import frames as xdp_frames
    in_ns(pair.server, "ip", "link", "add", "big0", "index", str(BIG_IFINDEX), "type", "veth",
          "peer", "name", "big1")
    for i in ("big0", "big1"):
        in_ns(pair.server, "ip", "link", "set", i, "up")
    small = int(in_ns(pair.server, "cat", "/sys/class/net/srv0/ifindex").stdout)
    assert small < NW_IFARR_SLOTS <= BIG_IFINDEX
    denied = xdp_frames.udp(DENIED4, pair.server_ip, 4000, 9999)
    other = xdp_frames.udp(pair.client_ip, pair.server_ip, 4000, 9999)
    frames = [("srv0", denied), ("big0", denied), ("srv0", other), ("big0", other),
              ("lo", denied)]  # lo: no rule table -> passed
    netns.run_in_netns(pair.server, _apply, _two_ifaces(False))
    assert netns.run_in_netns(pair.server, _verdicts, frames) == [1, 1, 2, 2, 2]
    gen0, keys = netns.run_in_netns(pair.server, _tables)
    assert (small, gen0) in keys and (BIG_IFINDEX, gen0) in keys
    # a changed rule table goes to the other generation (array slot and hash entry)
    for flip in range(1, 4):
        netns.run_in_netns(pair.server, _apply, _two_ifaces(flip % 2 == 1))
        gen, keys = netns.run_in_netns(pair.server, _tables)
        assert gen == gen0 ^ (flip & 1)
        assert (small, gen) in keys and (BIG_IFINDEX, gen) in keys
        assert (BIG_IFINDEX, 1 - gen) not in keys  # the old hash entry is gone
        want = [2, 2] if flip % 2 == 1 else [1, 1]  # udp allowed first, or denied
        assert netns.run_in_netns(pair.server, _verdicts, frames) == [*want, 2, 2, 2]
    # unchanged: nothing is rewritten, no flip
    netns.run_in_netns(pair.server, _apply, _two_ifaces(True))
    assert netns.run_in_netns(pair.server, _tables)[0] == gen


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
        return netns.run_in_netns(pair.server, _verdicts, fr)

    drop, ok = 1, 2
    # A covers B's hosts: a host entry must answer for A too (bits A|B)
    netns.run_in_netns(pair.server, _apply, _covering(("10.77.0.0/24", "fd77::/64"),
                                                      (f"{host4}/32", f"{host6}/128")))
    assert netns.run_in_netns(pair.server, _source_maps) == {
        (4, False): True, (4, True): True, (6, False): True, (6, True): True}
    assert verdicts() == [drop, drop, drop, drop, drop, ok]
    # delta: A loses its covering prefixes -> the host entries lose bit A
    netns.run_in_netns(pair.server, _apply, _covering(("192.0.2.0/24", "2001:db8::/32"),
                                                      (f"{host4}/32", f"{host6}/128")))
    assert verdicts() == [ok, drop, ok, drop, ok, ok]
    # delta: a covering prefix comes back in B only, a host moves to A
    netns.run_in_netns(pair.server, _apply, _covering((f"{host4}/32", "2001:db8::/32"),
                                                      ("10.77.0.0/16", f"{host6}/128")))
    assert verdicts() == [drop, drop, ok, drop, ok, drop]
    # only prefixes (no host hash), then only hosts (no trie): each a reload
    netns.run_in_netns(pair.server, _apply, _covering(("10.77.0.96/30",), ("fd77::/64",), "x"))
    assert netns.run_in_netns(pair.server, _source_maps) == {
        (4, False): True, (4, True): False, (6, False): True, (6, True): False}
    assert verdicts() == [drop, ok, ok, drop, drop, ok]
    netns.run_in_netns(pair.server, _apply, _covering((f"{other4}/32",), (f"{host6}/128",), "y"))
    assert netns.run_in_netns(pair.server, _source_maps) == {
        (4, False): False, (4, True): True, (6, False): False, (6, True): True}
    assert verdicts() == [ok, ok, ok, drop, drop, ok]
    # a delta that needs a map the generation lacks (a prefix, no trie): a reload
    netns.run_in_netns(pair.server, _apply, _covering((f"{other4}/32", "10.77.0.0/24"),
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
        return netns.run_in_netns(pair.server, _verdicts, frames)

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
    gen = netns.run_in_netns(pair.server, _gen)
    lines[10] = bulk[10]
    netns.run_in_netns(pair.server, _apply_with, _filed(f, lines, allow_udp=True), bases, f)
    assert netns.run_in_netns(pair.server, _gen) == 1 - gen
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
