"""Failsafe (issue 5, item 2) and panic mode (item 3) with real TCP over a veth pair:
panic drops everything but failsafe traffic in both directions (and the return
traffic of each), survives an apply, shows loudly in status, and ends with
`panic off` or `flush`."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import IS_ROOT, in_ns
from tests.helpers.safety_kit import fingerprint, nw, status, write_profile

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(not IS_ROOT, reason="kernel test: needs root for namespaces")]

ALLOW_ALL = """
[[policies]]
name = "open"
order = 50
selector = "all()"
  [[policies.ingress]]
  action = "allow"
  protocol = "tcp"
  destination = { ports = [2222] }
  [[policies.egress]]
  action = "allow"
"""

LISTEN = ("import socket,sys,time\n"
          "socks=[]\n"
          "for p in sys.argv[1:]:\n"
          "    s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
          "    s.bind(('0.0.0.0', int(p))); s.listen(64); socks.append(s)\n"
          "time.sleep(120)\n")


def connects(ns: str, dst: str, port: int) -> bool:
    code = (f"import socket; s=socket.socket(); s.settimeout(1.0); "
            f"s.connect(({dst!r}, {port})); print('connected')")
    return "connected" in in_ns(ns, sys.executable, "-c", code, check=False,
                                timeout=10).stdout


@pytest.fixture
def listeners(netns_pair):
    procs = [subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", LISTEN,
                               *ports])
             for ns, ports in ((netns_pair.server, ("22", "2222")),
                               (netns_pair.client, ("6443", "7000")))]
    try:
        for _ in range(100):
            if connects(netns_pair.client, netns_pair.server_ip, 2222):
                break
        yield netns_pair
    finally:
        for p in procs:
            p.kill()
            p.wait()


def _reach(pair) -> dict[str, bool]:
    return {"in 22": connects(pair.client, pair.server_ip, 22),
            "in 2222": connects(pair.client, pair.server_ip, 2222),
            "out 6443": connects(pair.server, pair.client_ip, 6443),
            "out 7000": connects(pair.server, pair.client_ip, 7000)}


def test_panic_keeps_failsafe_only_survives_apply_and_ends(listeners, tmp_path):
    pair = listeners
    ns, state = pair.server, tmp_path / "state"
    profile = write_profile(tmp_path, "p", iface="srv0", extra=ALLOW_ALL,
                            failsafe_in='["tcp:22"]', failsafe_out='["tcp:6443"]')
    nw(ns, state, "apply", str(profile))
    everything = {"in 22": True, "in 2222": True, "out 6443": True, "out 7000": True}
    assert _reach(pair) == everything
    normal = fingerprint(ns)

    out = nw(ns, state, "panic", "on").stdout
    assert "PANIC MODE ON" in out and "failsafe inbound tcp:22; outbound tcp:6443" in out
    failsafe_only = {"in 22": True, "in 2222": False, "out 6443": True, "out 7000": False}
    assert _reach(pair) == failsafe_only
    report = status(ns, state)
    assert report["panic"] is True and report["drift"] == []
    assert any(r["policy"] == "(panic)" and r["action"] == "deny" and r["packets"] > 0
               for r in report["rules"])
    assert "!!! PANIC MODE" in nw(ns, state, "status").stdout

    # an apply while panic is on keeps panic in place
    changed = write_profile(tmp_path, "q", iface="srv0", extra=ALLOW_ALL, rules=2,
                            failsafe_in='["tcp:22"]', failsafe_out='["tcp:6443"]')
    nw(ns, state, "apply", str(changed))
    assert _reach(pair) == failsafe_only
    assert status(ns, state)["panic"] is True and status(ns, state)["generation"] == 2
    nw(ns, state, "rollback")
    assert _reach(pair) == failsafe_only

    assert "panic mode off" in nw(ns, state, "panic", "off").stdout
    assert _reach(pair) == everything and fingerprint(ns) == normal
    assert status(ns, state)["panic"] is False

    nw(ns, state, "panic", "on")
    nw(ns, state, "flush")  # flush removes panic too: nothing of nodewall's is left
    assert _reach(pair) == everything and status(ns, state)["panic"] is False
    assert "nw-" not in in_ns(ns, "iptables-legacy-save").stdout


def test_panic_with_nothing_applied_uses_felix_defaults(listeners, tmp_path):
    pair = listeners
    ns, state = pair.server, tmp_path / "state"
    out = nw(ns, state, "panic", "on").stdout
    assert "tcp:22, udp:68, tcp:179" in out and "tcp:6443" in out
    assert _reach(pair) == {"in 22": True, "in 2222": False, "out 6443": True,
                            "out 7000": False}
    nw(ns, state, "panic", "off")
    assert _reach(pair)["in 2222"] and "nw-" not in in_ns(ns, "iptables-legacy-save").stdout


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_failsafe_under_default_deny_both_directions(listeners, tmp_path, backend):
    """Without panic: a host endpoint with no policy denies all but failsafe, and the
    return traffic of each failsafe direction passes."""
    pair = listeners
    ns, state = pair.server, tmp_path / "state"
    profile = write_profile(tmp_path, "deny", iface="srv0", failsafe_in='["tcp:22"]',
                            failsafe_out='["tcp:6443"]', backend=backend)
    nw(ns, state, "apply", str(profile))
    assert _reach(pair) == {"in 22": True, "in 2222": False, "out 6443": True,
                            "out 7000": False}
