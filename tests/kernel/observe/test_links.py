"""engine.links inside throwaway namespaces: names, state, addresses, counters and
XDP attachments of the namespace the reading process is in."""
from __future__ import annotations

import ctypes
import os

import pytest
from nodewall.engine.dataplane.xdp import bpf_syscall as bpf
from nodewall.engine.observe import links
from nodewall.engine.observe.report import InterfaceInfo
from nodewall.engine.system import netns
from pyroute2 import IPRoute

from tests.conftest import in_ns, needs_root, sh

pytestmark = [needs_root, pytest.mark.kernel]

XDP_FLAGS_SKB_MODE = 1 << 1
XDP_FLAGS_DRV_MODE = 1 << 2


def _load_xdp_pass(name: str) -> int:
    """Load `r0 = XDP_PASS; exit` as an XDP program called NAME with bpf(BPF_PROG_LOAD);
    returns its fd (no compiler needed)."""
    if bpf.SYS_BPF is None:
        pytest.skip("no bpf syscall number for this architecture")
    insns = ctypes.create_string_buffer(bytes.fromhex("b700000002000000" "9500000000000000"), 16)
    lic = ctypes.create_string_buffer(b"GPL")
    attr = (ctypes.c_uint8 * 128)()
    ctypes.c_uint32.from_buffer(attr, 0).value = 6  # BPF_PROG_TYPE_XDP
    ctypes.c_uint32.from_buffer(attr, 4).value = 2  # instruction count
    ctypes.c_uint64.from_buffer(attr, 8).value = ctypes.addressof(insns)
    ctypes.c_uint64.from_buffer(attr, 16).value = ctypes.addressof(lic)
    ctypes.memmove(ctypes.addressof(attr) + 48, name.encode(), len(name))
    return bpf.syscall(bpf.PROG_LOAD, attr)


def _attach(ifname: str, attachments: tuple[tuple[str, int], ...]) -> list[InterfaceInfo]:
    """In the current namespace, attach one program per (name, flags) to IFNAME, then
    read the interfaces back.  The link keeps the programs alive; deleting the
    namespace (the fixture) frees them."""
    with IPRoute() as ipr:
        index = ipr.link_lookup(ifname=ifname)[0]
        for name, flags in attachments:
            fd = _load_xdp_pass(name)
            try:
                ipr.link("set", index=index, xdp={"attrs": [("IFLA_XDP_FD", fd),
                                                            ("IFLA_XDP_FLAGS", flags)]})
            finally:
                os.close(fd)
    return links.list_interfaces()


def _by_name(infos: list[InterfaceInfo]) -> dict[str, InterfaceInfo]:
    return {i.name: i for i in infos}


def test_lists_the_namespace_links_with_addresses(netns_pair):
    infos = _by_name(netns.run_in_netns(netns_pair.server, links.list_interfaces))
    assert set(infos) == {"lo", netns_pair.server_if}  # not the host's links
    srv = infos[netns_pair.server_if]
    assert srv.state == "up"
    assert srv.mtu == 1500
    assert f"{netns_pair.server_ip}/24" in srv.addresses
    assert f"{netns_pair.server_ip6}/64" in srv.addresses
    assert srv.addresses[0] == f"{netns_pair.server_ip}/24"  # IPv4 listed first
    assert srv.xdp_mode is None and srv.xdp_prog_id is None and not srv.xdp_owned
    assert srv.host_endpoint is None
    lo = infos["lo"]
    assert lo.state == "up" and "127.0.0.1/8" in lo.addresses and lo.index == 1


def test_counters_rise_with_real_packets(netns_pair):
    before = _by_name(netns.run_in_netns(netns_pair.server, links.list_interfaces))
    in_ns(netns_pair.client, "ping", "-c", "5", "-i", "0.2", "-W", "2", netns_pair.server_ip)
    after = _by_name(netns.run_in_netns(netns_pair.server, links.list_interfaces))
    srv_b, srv_a = before[netns_pair.server_if], after[netns_pair.server_if]
    assert srv_a.rx_packets >= srv_b.rx_packets + 5
    assert srv_a.tx_packets >= srv_b.tx_packets + 5
    assert srv_a.rx_bytes > srv_b.rx_bytes + 5 * 84  # 5 echo requests of 84 IP bytes
    assert srv_a.tx_bytes > srv_b.tx_bytes


def test_state_down_when_link_is_down(netns_pair):
    sh("ip", "-n", netns_pair.server, "link", "set", netns_pair.server_if, "down")
    infos = _by_name(netns.run_in_netns(netns_pair.server, links.list_interfaces))
    assert infos[netns_pair.server_if].state == "down"
    # the peer loses its carrier: admin up, lower layer down
    infos = _by_name(netns.run_in_netns(netns_pair.client, links.list_interfaces))
    assert infos[netns_pair.client_if].state == "down"


def test_interface_exists_is_per_namespace(netns_pair):
    ns = netns_pair
    assert netns.run_in_netns(ns.server, netns.interface_exists, ns.server_if)
    assert not netns.run_in_netns(ns.server, netns.interface_exists, ns.client_if)
    assert netns.run_in_netns(ns.client, netns.interface_exists, ns.client_if)
    assert netns.run_in_netns(ns.server, netns.interface_exists, "lo")


def test_xdp_native_owned_program(netns_pair):
    infos = _by_name(netns.run_in_netns(
        netns_pair.server, _attach, netns_pair.server_if, (("nw_test_pass", XDP_FLAGS_DRV_MODE),)))
    srv = infos[netns_pair.server_if]
    assert srv.xdp_mode == "native"
    assert srv.xdp_prog_id and srv.xdp_prog_id > 0
    assert srv.xdp_prog_name == "nw_test_pass"
    assert srv.xdp_owned is True
    assert infos["lo"].xdp_mode is None


def test_xdp_generic_foreign_program(netns_pair):
    infos = _by_name(netns.run_in_netns(
        netns_pair.server, _attach, netns_pair.server_if, (("other_pass", XDP_FLAGS_SKB_MODE),)))
    srv = infos[netns_pair.server_if]
    assert srv.xdp_mode == "generic"
    assert srv.xdp_prog_name == "other_pass"
    assert srv.xdp_owned is False


def test_bpf_prog_name_of_missing_program_is_none():
    assert links.bpf_prog_name(2**32 - 2) is None
