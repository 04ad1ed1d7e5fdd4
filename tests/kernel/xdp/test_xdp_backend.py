"""XDP backend over a veth pair in throwaway namespaces, with real packets.

A TCP connect to a port nothing listens on answers "refused" when the SYN reached
the server's stack and "timeout" when something dropped it on the way."""
from __future__ import annotations

import os

import pytest
from nodewall.engine.dataplane.xdp import maps as xdp_maps
from nodewall.engine.dataplane.xdp.backend import XdpBackend
from nodewall.engine.errors import OwnershipError
from nodewall.engine.system import netns

from tests.conftest import in_ns
from tests.helpers.xdp_kit import (
    DENIED4,
    DENIED6,
    apply_xdp,
    flush_xdp,
    probe,
    state,
    xdp_counters,
    xdp_generation,
)

pytestmark = pytest.mark.kernel

def _trie_id(fam: int) -> int:
    from nodewall.engine.dataplane.xdp import bpf_syscall as bpf
    with xdp_maps.Pinned.open(XdpBackend().dir) as p:  # type: ignore[union-attr]
        fd = p.inner_fd(fam, p.active_gen())
        assert fd is not None
        try:
            return bpf.map_info(fd).id
        finally:
            os.close(fd)


@pytest.mark.parametrize("mode", ["native", "generic"])
def test_denied_source_dropped_by_xdp_before_raw(pair, mode):
    modes, attached = netns.run_in_netns(pair.server, apply_xdp, state(mode))
    assert modes == {"srv0": mode}
    assert attached["srv0"] == (mode, True)
    # the same flow denied in raw too: XDP must drop it before raw sees it
    in_ns(pair.server, "iptables-legacy", "-t", "raw", "-A", "PREROUTING", "-s", DENIED4,
          "-p", "tcp", "--dport", "80", "-j", "DROP")

    assert probe(pair, DENIED4, pair.server_ip, 80) == "timeout"
    assert probe(pair, pair.client_ip, pair.server_ip, 80) == "refused"  # not in the set

    counters, actions = netns.run_in_netns(pair.server, xdp_counters)
    assert counters["r-deny"][0] >= 1
    assert actions["deny"][0] >= 1
    raw = in_ns(pair.server, "iptables-legacy", "-t", "raw", "-L", "PREROUTING", "-v", "-x",
                "-n").stdout.splitlines()[2].split()
    assert raw[0] == "0", f"raw DROP saw packets XDP should have dropped: {raw}"


@pytest.mark.parametrize("mode", ["native", "generic"])
def test_failsafe_allowed_and_ipv6(pair, mode):
    netns.run_in_netns(pair.server, apply_xdp, state(mode))
    # failsafe tcp:22 passes although the source is in the deny set
    assert probe(pair, DENIED4, pair.server_ip, 22) == "refused"
    assert probe(pair, DENIED6, pair.server_ip6, 22) == "refused"
    # IPv6 deny and pass
    assert probe(pair, DENIED6, pair.server_ip6, 80) == "timeout"
    assert probe(pair, pair.client_ip6, pair.server_ip6, 80) == "refused"
    # allowed untracked UDP passes (port unreachable comes back)
    assert probe(pair, pair.client_ip, pair.server_ip, 5000, "udp") == "refused"
    counters, actions = netns.run_in_netns(pair.server, xdp_counters)
    assert actions["failsafe"][0] >= 2
    assert counters["r-allow-udp"][0] >= 1
    assert counters["r-deny"][0] >= 1


def test_delta_and_full_reload_keep_counters(pair, tmp_path):
    netns.run_in_netns(pair.server, apply_xdp, state(deny=(f"{DENIED6}/128",)))
    assert probe(pair, DENIED4, pair.server_ip, 80) == "refused"  # not denied yet
    assert probe(pair, DENIED6, pair.server_ip6, 80) == "timeout"
    before = netns.run_in_netns(pair.server, xdp_counters)[0]["r-deny"][0]
    # small change: delta in place (adds before deletes)
    netns.run_in_netns(pair.server, apply_xdp, state(deny=(f"{DENIED4}/32",)))
    assert probe(pair, DENIED4, pair.server_ip, 80) == "timeout"
    assert probe(pair, DENIED6, pair.server_ip6, 80) == "refused"  # deleted
    assert netns.run_in_netns(pair.server, xdp_counters)[0]["r-deny"][0] > before
    # bit 0 now means another set: full reload into fresh tries, one flip
    f = tmp_path / "block.txt"
    f.write_text("# blocklist\n10.77.0.0/28\n192.0.2.0/24\n\n")
    gen = netns.run_in_netns(pair.server, xdp_generation)
    netns.run_in_netns(pair.server, apply_xdp, state(deny=(), files=(f,), bit=0, origin="file"))
    assert netns.run_in_netns(pair.server, xdp_generation) == 1 - gen
    assert probe(pair, pair.client_ip, pair.server_ip, 80) == "timeout"  # 10.77.0.2 in /28
    assert probe(pair, DENIED4, pair.server_ip, 80) == "refused"  # .99 is outside /28
    # and a new bit for it: compatible, the file is small -> delta in place (the same
    # trie), while the changed rule table goes to the other generation and flips
    trie4 = netns.run_in_netns(pair.server, _trie_id, 4)
    netns.run_in_netns(pair.server, apply_xdp, state(deny=(), files=(f,), bit=5, origin="file"))
    assert netns.run_in_netns(pair.server, xdp_generation) == gen
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
    netns.run_in_netns(pair.server, apply_xdp, state())
    assert (xdp_maps.PIN_ROOT / pair.server / "prog").exists()
    detached, attached, exists = netns.run_in_netns(pair.server, flush_xdp)
    assert detached == ["srv0"] and attached == {} and not exists
    assert probe(pair, DENIED4, pair.server_ip, 80) == "refused"
