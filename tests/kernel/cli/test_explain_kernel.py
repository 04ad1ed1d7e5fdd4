"""`nodewall explain` checked against the kernel: explain a packet, send that packet
for real from the client namespace, and see the counter of the rule explain named
move (iptables and nftables)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import IS_ROOT, in_ns
from tests.helpers.safety_kit import nw, status

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(not IS_ROOT, reason="kernel test: needs root for namespaces")]

BLOCKED = "10.77.0.50"  # a client address listed in the nets_file

PROFILE = """
[settings]
backend = "{backend}"
failsafe_inbound = ["tcp:22"]
failsafe_outbound = []

[[host_endpoints]]
name = "srv"
interface = "srv0"
expected_ips = ["10.77.0.1"]
labels = {{ role = "srv" }}

[[network_sets]]
name = "blocklist"
labels = {{ list = "drop" }}
nets_file = "block.txt"

[[policies]]
name = "drop-blocklist"
order = 10
selector = "all()"
do_not_track = true
apply_on_forward = true
types = ["ingress"]
  [[policies.ingress]]
  action = "deny"
  source = {{ selector = 'list == "drop"' }}

[[policies]]
name = "web"
order = 100
selector = "all()"
types = ["ingress"]
  [[policies.ingress]]
  action = "allow"
  protocol = "tcp"
  source = {{ nets = ["10.77.0.0/24"] }}
  destination = {{ ports = [8080] }}
"""


def _profile(tmp_path: Path, backend: str) -> Path:
    lines = [f"192.0.2.{i}/32" for i in range(1, 200)] + [f"{BLOCKED}/32", "198.51.100.0/24"]
    (tmp_path / "block.txt").write_text("# blocked\n" + "\n".join(lines) + "\n")
    path = tmp_path / "p.toml"
    path.write_text(PROFILE.format(backend=backend))
    return path


def _explain(ns: str, state: Path, src: str, dst: str) -> dict:
    out = nw(ns, state, "explain", src, dst, "--iface", "srv0", "--output", "json")
    return json.loads(out.stdout)


def _packets(ns: str, state: Path, rule_id: str, backend: str | None) -> int:
    """The rule's packets; an XDP-accelerated rule's own series when it was decided
    in XDP (its raw backstop never sees the dropped packet)."""
    return sum(r["packets"] for r in status(ns, state)["rules"]
               if r["id"] == rule_id and (backend is None or r["backend"] == backend))


def _syn(pair, src: str, port: int) -> None:
    """One TCP connect attempt from `src` (bound) to the server; dropped or refused,
    the first packet goes through the server's rules."""
    code = (f"import socket; s=socket.socket(); s.settimeout(1); s.bind(({src!r}, 0))\n"
            f"try: s.connect(({pair.server_ip!r}, {port}))\nexcept OSError: pass")
    in_ns(pair.client, sys.executable, "-c", code, check=False, timeout=10)


@pytest.mark.parametrize("backend,drop_stage", [("iptables", "raw"), ("nftables", "raw"),
                                                ("xdp", "xdp")])
def test_explained_rule_counts_the_real_packet(netns_pair, tmp_path, backend, drop_stage):
    ns, state = netns_pair.server, tmp_path / "state"
    netns_pair.add_client_address(f"{BLOCKED}/24")
    nw(ns, state, "apply", str(_profile(tmp_path, backend)))

    blocked = _explain(ns, state, BLOCKED, "10.77.0.1:8080/tcp")
    assert (blocked["verdict"], blocked["stage"]) == ("deny", drop_stage)
    assert blocked["rule"]["policy"] == "drop-blocklist"
    member = blocked["path"][-1]["set_members"][0]
    # the line of the nets_file as applied: generation 1's recorded copy of block.txt
    assert member["member"] == f"{BLOCKED}/32" and "/generations/1/nets/" in member["file"]
    assert member["origin"] == "network set blocklist"

    allowed = _explain(ns, state, netns_pair.client_ip, "10.77.0.1:8080")
    assert (allowed["verdict"], allowed["stage"], allowed["rule"]["policy"]) == \
        ("allow", "filter", "web")

    ssh = _explain(ns, state, BLOCKED, "10.77.0.1:22")
    assert (ssh["verdict"], ssh["rule"]["policy"]) == ("allow", "(failsafe)")
    assert ssh["failsafe_overrides"]["rule"]["policy"] == "drop-blocklist"
    assert ssh["failsafe_overrides"]["stage"] == drop_stage

    for explained, src, port in ((blocked, BLOCKED, 8080),
                                 (allowed, netns_pair.client_ip, 8080),
                                 (ssh, BLOCKED, 22)):
        rid = explained["rule"]["id"]
        series = "xdp" if explained["stage"] == "xdp" else None
        before = _packets(ns, state, rid, series)
        _syn(netns_pair, src, port)
        assert _packets(ns, state, rid, series) > before, (src, port, explained["rule"])


def test_explain_without_an_applied_generation_exits_6(netns_one, tmp_path):
    out = nw(netns_one, tmp_path / "state", "explain", "10.0.0.1", "10.0.0.2:22", "-o", "json",
             check=False)
    assert out.returncode == 6
    assert json.loads(out.stdout)["error"]["kind"] == "NothingPending"


FORWARD_PROFILE = (Path(__file__).parents[2] / "data" / "explain_forward.toml.in").read_text()
FAR_IP, ROUTER_FAR_IP = "10.78.0.2", "10.78.0.1"


@pytest.fixture
def routed(netns_pair):
    """client -- server (routes, forwarding on in its own namespace) -- far: a third
    namespace behind the server's srv1, deleted afterwards."""
    from tests.conftest import drop_namespace, sh
    far = f"{netns_pair.server[:-2]}-f"
    sh("ip", "netns", "add", far)
    try:
        sh("ip", "-n", netns_pair.server, "link", "add", "srv1", "type", "veth",
           "peer", "name", "far0", "netns", far)
        for ns, ifname, ip in ((netns_pair.server, "srv1", ROUTER_FAR_IP), (far, "far0", FAR_IP)):
            sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", ifname)
            sh("ip", "-n", ns, "link", "set", ifname, "up")
        sh("ip", "-n", far, "link", "set", "lo", "up")
        in_ns(netns_pair.server, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        sh("ip", "-n", netns_pair.client, "route", "add", "10.78.0.0/24",
           "via", netns_pair.server_ip)
        sh("ip", "-n", far, "route", "add", "10.77.0.0/24", "via", ROUTER_FAR_IP)
        netns_pair.add_client_address(f"{BLOCKED}/24")
        yield netns_pair
    finally:
        drop_namespace(far)


def _ping(ns: str, src: str, dst: str) -> bool:
    return in_ns(ns, "ping", "-n", "-c", "1", "-W", "1", "-I", src, dst,
                 check=False, timeout=10).returncode == 0


def _rule_packets(ns: str, state: Path, rule_id: str, chain_part: str) -> int:
    return sum(r["packets"] for r in status(ns, state)["rules"]
               if r["id"] == rule_id and chain_part in r["chain"])


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_explained_icmp_and_forwarded_packets_count_on_the_named_rule(routed, tmp_path,
                                                                      backend):
    ns, state = routed.server, tmp_path / "state"
    (tmp_path / "p.toml").write_text(FORWARD_PROFILE.format(
        backend=backend, edge_if="srv0", inside_if="srv1", blocked=f"{BLOCKED}/32",
        routed="10.77.0.0/24"))
    nw(ns, state, "apply", str(tmp_path / "p.toml"))

    def explain(src: str, dst: str, *extra: str) -> dict:
        return json.loads(nw(ns, state, "explain", src, dst, "--iface", "srv0", *extra,
                             "-o", "json").stdout)

    forward = ("--direction", "forward", "--out-iface", "srv1")
    host_ping = explain(routed.client_ip, f"{routed.server_ip}/icmp")
    through = explain(routed.client_ip, f"{FAR_IP}/icmp", *forward)
    blocked = explain(BLOCKED, f"{FAR_IP}/icmp", *forward)
    assert (host_ping["verdict"], host_ping["stage"], host_ping["rule"]["policy"]) == \
        ("allow", "filter", "ping-me")
    assert (through["verdict"], through["stage"], through["rule"]["policy"],
            through["rule"]["index"]) == ("allow", "filter", "routed", 1)
    assert (blocked["verdict"], blocked["stage"], blocked["rule"]["policy"],
            blocked["rule"]["index"]) == ("deny", "filter", "routed", 0)
    assert "ffi-srv0" in through["path"][-1]["chain"]

    for explained, src, dst, chain_part, answered in (
            (host_ping, routed.client_ip, routed.server_ip, "nw-fi-srv0", True),
            (through, routed.client_ip, FAR_IP, "nw-ffi-srv0", True),
            (blocked, BLOCKED, FAR_IP, "nw-ffi-srv0", False)):
        rid = explained["rule"]["id"]
        before = _rule_packets(ns, state, rid, chain_part)
        assert _ping(routed.client, src, dst) is answered, (src, dst)
        assert _rule_packets(ns, state, rid, chain_part) > before, (src, dst, explained["rule"])
