"""The packet-filter behaviours that have no test of their own elsewhere, with real
packets over a veth pair, on both packet filters (iptables and nftables): NDP under
default deny (IPv6 failsafe with cold neighbour caches), INVALID packets dropped by
the conntrack rule, a pre-DNAT deny in mangle, Log (counts and goes on) and Pass
(leaves the policy: the allow after it is skipped)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import IS_ROOT, in_ns
from tests.helpers.safety_kit import nw, status, until

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(not IS_ROOT, reason="kernel test: needs root for namespaces")]

OTHER = "10.77.0.3"  # a second client address

PROFILE = """[settings]
backend = "{backend}"
failsafe_inbound = ["tcp:22"]
failsafe_outbound = []

[[host_endpoints]]
name = "srv"
interface = "srv0"
labels = {{ role = "srv" }}

[[policies]]
name = "screen"
order = 5
selector = "all()"
pre_dnat = true
apply_on_forward = true
types = ["ingress"]
  [[policies.ingress]]
  action = "deny"
  protocol = "tcp"
  source = {{ nets = ["{other}/32"] }}
  destination = {{ ports = [2222] }}

[[policies]]
name = "open"
order = 10
selector = "all()"
types = ["ingress", "egress"]
  [[policies.ingress]]
  action = "log"
  protocol = "tcp"
  destination = {{ ports = [2222] }}
  [[policies.ingress]]
  action = "allow"
  protocol = "tcp"
  destination = {{ ports = [2222] }}
  [[policies.ingress]]
  action = "pass"
  protocol = "tcp"
  source = {{ nets = ["10.77.0.2/32"] }}
  destination = {{ ports = [2223] }}
  [[policies.ingress]]
  action = "allow"
  protocol = "tcp"
  destination = {{ ports = [2223] }}
  [[policies.egress]]
  action = "allow"
"""

LISTEN = ("import socket,time\n"
          "socks=[]\n"
          "for fam, addr in ((socket.AF_INET, '0.0.0.0'), (socket.AF_INET6, '::')):\n"
          "    for p in (22, 2222, 2223):\n"
          "        s=socket.socket(fam); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
          "        if fam == socket.AF_INET6:\n"
          "            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)\n"
          "        s.bind((addr, p)); s.listen(64); socks.append(s)\n"
          "time.sleep(90)\n")

# a bare ACK for a connection that does not exist: INVALID when tcp_loose is off
BARE_ACK = r"""
import socket, struct, sys
src, dst, dport = sys.argv[1], sys.argv[2], int(sys.argv[3])
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack(f"!{len(b)//2}H", b)); s = (s >> 16) + (s & 0xFFFF); s += s >> 16
    return ~s & 0xFFFF
hdr = struct.pack("!HHIIBBHHH", 40000, dport, 1000, 2000, 5 << 4, 0x10, 64240, 0, 0)
pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(hdr))
hdr = hdr[:16] + struct.pack("!H", csum(pseudo + hdr)) + hdr[18:]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
s.bind((src, 0))
for _ in range(3):
    s.sendto(hdr, (dst, 0))
"""


def connects(ns: str, src: str, dst: str, port: int) -> bool:
    fam = "socket.AF_INET6" if ":" in dst else "socket.AF_INET"
    code = (f"import socket; s=socket.socket({fam}); s.settimeout(1.5); s.bind(({src!r}, 0)); "
            f"s.connect(({dst!r}, {port})); print('connected')")
    return "connected" in in_ns(ns, sys.executable, "-c", code, check=False,
                                timeout=10).stdout


def hits(report: dict, policy: str, index: int | None = None, backend: str | None = None,
         action: str | None = None) -> int:
    return sum(r["packets"] for r in report["rules"] if r["policy"] == policy
               and (index is None or r["index"] == index)
               and (backend is None or r["backend"] == backend)
               and (action is None or r["action"] == action))


@pytest.fixture
def served(netns_pair):
    netns_pair.add_client_address(f"{OTHER}/24")
    proc = subprocess.Popen(["ip", "netns", "exec", netns_pair.server, sys.executable, "-c",
                             LISTEN])
    try:
        assert until(lambda: connects(netns_pair.client, netns_pair.client_ip,
                                      netns_pair.server_ip, 2222), 15)
        yield netns_pair
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_ndp_invalid_prednat_log_and_pass(served, tmp_path, backend):
    pair = served
    ns, cli, state = pair.server, pair.client, tmp_path / "state"
    profile = tmp_path / "p.toml"
    profile.write_text(PROFILE.format(backend=backend, other=OTHER))
    nw(ns, state, "apply", str(profile))
    srv = pair.server_ip

    # Log counts and goes on; the pre-DNAT deny stops OTHER in mangle
    assert connects(cli, pair.client_ip, srv, 2222)
    assert not connects(cli, OTHER, srv, 2222)
    # Pass leaves the policy: the allow after it is skipped for .2, not for OTHER
    assert not connects(cli, pair.client_ip, srv, 2223)
    assert connects(cli, OTHER, srv, 2223)

    # NDP under default deny: cold neighbour caches on both sides, IPv6 failsafe
    in_ns(ns, "ip", "-6", "neigh", "flush", "dev", "srv0")
    in_ns(cli, "ip", "-6", "neigh", "flush", "dev", "cli0")
    assert connects(cli, pair.client_ip6, pair.server_ip6, 22)
    assert connects(cli, pair.client_ip6, pair.server_ip6, 2222)

    # INVALID: a bare ACK with no connection, with loose pick-up off in the namespace
    in_ns(ns, "sysctl", "-qw", "net.netfilter.nf_conntrack_tcp_loose=0")
    before = hits(status(ns, state), "(conntrack)", action="deny")
    in_ns(cli, sys.executable, "-c", BARE_ACK, pair.client_ip, srv, "2222")
    report = status(ns, state)
    assert hits(report, "(conntrack)", action="deny") >= before + 3

    assert hits(report, "open", 0, "filter") >= 1  # log
    assert hits(report, "screen", 0, "mangle") >= 1  # pre-DNAT deny
    assert hits(report, "(ndp)") >= 1
    assert report["drift"] == []
    nw(ns, state, "flush")
