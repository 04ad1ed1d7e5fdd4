"""XDP backend over a veth pair, frames judged by the program: failsafe return traffic
and its counters, VLAN-tagged frames, per-interface rule tables (array slots for small
ifindexes, a hash for large ones)."""
from __future__ import annotations

import pytest
from nodewall.engine.dataplane.xdp import maps as xdp_maps
from nodewall.engine.dataplane.xdp.backend import XdpBackend
from nodewall.engine.plan.desired import XdpInterface, XdpRule, XdpSetSource, XdpState
from nodewall.engine.system import netns

from tests.conftest import in_ns
from tests.helpers.xdp_kit import (
    DENIED4,
    apply_xdp,
    fs,
    run_verdicts,
    xdp_counters,
)

pytestmark = pytest.mark.kernel

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
    netns.run_in_netns(pair.server, apply_xdp, XdpState(mode="native", interfaces=(iface,)))
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
    netns.run_in_netns(pair.server, apply_xdp, XdpState("native", (iface,), sets))
    srv_mac = in_ns(pair.server, "cat", "/sys/class/net/srv0/address").stdout.strip()
    cli_mac = in_ns(pair.client, "cat", "/sys/class/net/cli0/address").stdout.strip()
    eth = {"src_mac": xdp_frames.mac(cli_mac), "dst_mac": xdp_frames.mac(srv_mac)}
    frame = xdp_frames.udp(DENIED4, pair.server_ip, 4000, 9999, **eth)
    tagged = xdp_frames.udp(DENIED4, pair.server_ip, 4000, 9999, vlan=100, **eth)
    before = netns.run_in_netns(pair.server, xdp_counters)[1]
    netns.run_in_netns(pair.client, _inject, "cli0", [tagged, tagged, frame])
    after = netns.run_in_netns(pair.server, xdp_counters)[1]
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
    netns.run_in_netns(pair.server, apply_xdp, _two_ifaces(False))
    assert netns.run_in_netns(pair.server, run_verdicts, frames) == [1, 1, 2, 2, 2]
    gen0, keys = netns.run_in_netns(pair.server, _tables)
    assert (small, gen0) in keys and (BIG_IFINDEX, gen0) in keys
    # a changed rule table goes to the other generation (array slot and hash entry)
    for flip in range(1, 4):
        netns.run_in_netns(pair.server, apply_xdp, _two_ifaces(flip % 2 == 1))
        gen, keys = netns.run_in_netns(pair.server, _tables)
        assert gen == gen0 ^ (flip & 1)
        assert (small, gen) in keys and (BIG_IFINDEX, gen) in keys
        assert (BIG_IFINDEX, 1 - gen) not in keys  # the old hash entry is gone
        want = [2, 2] if flip % 2 == 1 else [1, 1]  # udp allowed first, or denied
        assert netns.run_in_netns(pair.server, run_verdicts, frames) == [*want, 2, 2, 2]
    # unchanged: nothing is rewritten, no flip
    netns.run_in_netns(pair.server, apply_xdp, _two_ifaces(True))
    assert netns.run_in_netns(pair.server, _tables)[0] == gen
