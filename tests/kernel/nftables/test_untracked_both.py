"""The untracked fast path with real packets on both packet filters (iptables and
nftables): raw NOTRACKs what an untracked (do_not_track) policy allows and filter
accepts it by its conntrack state UNTRACKED — no packet mark.  An untracked flow leaves
no conntrack entry; a tracked flow on the same endpoint still gets normal policy (and
an entry); a peer the untracked rule does not name falls through to normal policy;
failsafe traffic still passes raw, whose failsafe rules no untracked rule can meet now
stand behind the untracked rules; the filter rule that accepts UNTRACKED is owned like
any other (drift, repair)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import IS_ROOT, in_ns
from tests.helpers.safety_kit import nw, status, until

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(not IS_ROOT, reason="kernel test: needs root for namespaces")]

OTHER = "10.77.0.3"  # a second client address, not named by the untracked rules
FAST, TRACKED, CLOSED = 6380, 2222, 2223

PROFILE = """[settings]
backend = "{backend}"
failsafe_inbound = ["tcp:22"]
failsafe_outbound = []

[[host_endpoints]]
name = "srv"
interface = "srv0"
labels = {{ role = "srv" }}

[[policies]]
name = "fast"
order = 10
selector = "all()"
do_not_track = true
apply_on_forward = true
  [[policies.ingress]]
  action = "allow"
  protocol = "tcp"
  source = {{ nets = ["{client}/32"] }}
  destination = {{ ports = [{fast}] }}
  [[policies.egress]]
  action = "allow"
  protocol = "tcp"
  source = {{ ports = [{fast}] }}
  destination = {{ nets = ["{client}/32"] }}

[[policies]]
name = "open"
order = 20
selector = "all()"
types = ["ingress"]
  [[policies.ingress]]
  action = "allow"
  protocol = "tcp"
  destination = {{ ports = [{tracked}] }}
"""

LISTEN = ("import socket,time\n"
          "socks=[]\n"
          f"for p in (22, {FAST}, {TRACKED}, {CLOSED}):\n"
          "    s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
          "    s.bind(('0.0.0.0', p)); s.listen(64); socks.append(s)\n"
          "time.sleep(90)\n")


def connects(ns: str, src: str, dst: str, port: int) -> bool:
    """A TCP connect + a few bytes each way (the data packets cross raw and filter in
    both directions after the handshake)."""
    code = ("import socket; s=socket.socket(); s.settimeout(1.5); "
            f"s.bind(({src!r}, 0)); s.connect(({dst!r}, {port})); s.sendall(b'ping'); "
            "print('connected')")
    return "connected" in in_ns(ns, sys.executable, "-c", code, check=False,
                                timeout=10).stdout


def entries(ns: str, port: int) -> int:
    """conntrack entries of the server namespace for TCP to `port`."""
    out = in_ns(ns, "conntrack", "-L", "-p", "tcp", "--dport", str(port), check=False).stdout
    return sum(1 for line in out.splitlines() if f"dport={port}" in line)


def hits(report: dict, policy: str, backend: str | None = None) -> int:
    return sum(r["packets"] for r in report["rules"] if r["policy"] == policy
               and (backend is None or r["backend"] == backend))


def kernel_text(ns: str, backend: str) -> str:
    if backend == "iptables":
        return in_ns(ns, "iptables-legacy-save").stdout
    return in_ns(ns, "nft", "list", "table", "inet", "nodewall").stdout


def remove_untracked_accept(ns: str, backend: str) -> None:
    """By hand, as an operator would: the first rule of filter INPUT's top chain."""
    if backend == "iptables":
        in_ns(ns, "iptables-legacy", "-t", "filter", "-D", "nw-INPUT", "1")
        return
    listing = in_ns(ns, "nft", "-a", "list", "chain", "inet", "nodewall",
                    "filter4-nw-INPUT").stdout
    handle = next(line.rsplit("# handle ", 1)[1].strip() for line in listing.splitlines()
                  if "ct state untracked" in line)
    in_ns(ns, "nft", "delete", "rule", "inet", "nodewall", "filter4-nw-INPUT",
          "handle", handle)


@pytest.fixture
def served(netns_pair):
    netns_pair.add_client_address(f"{OTHER}/24")
    proc = subprocess.Popen(["ip", "netns", "exec", netns_pair.server, sys.executable, "-c",
                             LISTEN])
    try:
        assert until(lambda: connects(netns_pair.client, netns_pair.client_ip,
                                      netns_pair.server_ip, TRACKED), 15)
        yield netns_pair
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_untracked_flow_is_accepted_by_ctstate_and_tracked_flow_gets_policy(
        served, tmp_path, backend):
    pair = served
    ns, cli, state, srv = pair.server, pair.client, tmp_path / "state", pair.server_ip
    profile = tmp_path / "p.toml"
    profile.write_text(PROFILE.format(backend=backend, client=pair.client_ip, fast=FAST,
                                      tracked=TRACKED))
    nw(ns, state, "apply", str(profile))
    in_ns(ns, "conntrack", "-F", check=False)

    # the rule shape: NOTRACK + ACCEPT in raw, UNTRACKED accepted in filter, no mark
    text = kernel_text(ns, backend)
    if backend == "iptables":
        assert "-j CT --notrack" in text and "--ctstate UNTRACKED" in text
        assert "MARK" not in text and "-m mark" not in text
    else:
        assert "notrack" in text and "ct state untracked" in text
        assert "meta mark" not in text

    # the untracked flow: served, both directions accepted by the UNTRACKED rule in
    # filter, and no conntrack entry for it
    before = hits(status(ns, state), "(untracked)", "filter")
    assert connects(cli, pair.client_ip, srv, FAST)
    report = status(ns, state)
    assert hits(report, "(untracked)", "filter") >= before + 4  # SYN, ACK, data; SYN-ACK
    assert hits(report, "fast", "raw") >= 4
    assert entries(ns, FAST) == 0

    # a tracked flow on the same endpoint: normal policy decides, conntrack tracks it
    assert connects(cli, pair.client_ip, srv, TRACKED)
    assert entries(ns, TRACKED) >= 1
    assert not connects(cli, pair.client_ip, srv, CLOSED)  # default deny
    # a peer the untracked rule does not name falls through to normal policy: denied
    denied = hits(status(ns, state), "(default-deny)")
    assert not connects(cli, OTHER, srv, FAST)
    assert hits(status(ns, state), "(default-deny)") > denied
    # failsafe still wins: raw keeps the tcp:22 rules (which no untracked rule can meet)
    # behind the untracked rules, and they still accept in raw, both directions
    raw_fs = hits(status(ns, state), "(failsafe)", "raw")
    assert connects(cli, OTHER, srv, 22) and connects(cli, pair.client_ip, srv, 22)
    assert hits(status(ns, state), "(failsafe)", "raw") >= raw_fs + 6
    assert report["drift"] == []
    if backend == "iptables":  # another tool's NOTRACK would be accepted too: said
        notrack = ["-t", "raw", "PREROUTING", "-p", "udp", "--dport", "53", "-j", "CT",
                   "--notrack"]
        in_ns(ns, "iptables-legacy", *notrack[:2], "-A", *notrack[2:])
        assert any("NOTRACKs packets" in w and "do_not_track" in w
                   for w in status(ns, state)["warnings"])
        in_ns(ns, "iptables-legacy", *notrack[:2], "-D", *notrack[2:])

    # the UNTRACKED accept is owned: removing it by hand is drift, and without it the
    # untracked flow meets normal policy (no rule for its port: default deny)
    remove_untracked_accept(ns, backend)
    drift = "\n".join(status(ns, state)["drift"])
    assert "filter/nw-INPUT" in drift, drift
    assert not connects(cli, pair.client_ip, srv, FAST)
    nw(ns, state, "apply", str(profile))
    assert status(ns, state)["drift"] == []
    assert connects(cli, pair.client_ip, srv, FAST)
    nw(ns, state, "flush")
