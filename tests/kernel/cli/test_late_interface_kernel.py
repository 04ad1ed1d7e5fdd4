"""A host endpoint whose interface does not exist yet (Calico allows it; the boot unit
runs before interfaces exist): validate, diff and apply agree on one warning, and the
rules take effect when the interface appears."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import IS_ROOT, in_ns, sh
from tests.helpers.safety_kit import nw, status

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(not IS_ROOT, reason="kernel test: needs root for namespaces")]

PROFILE = """
[settings]
backend = "{backend}"
failsafe_inbound = []
failsafe_outbound = []

[[host_endpoints]]
name = "later"
interface = "late0"
labels = {{ role = "later" }}

[[policies]]
name = "web"
order = 10
selector = "all()"
types = ["ingress"]
  [[policies.ingress]]
  action = "allow"
  protocol = "tcp"
  source = {{ nets = ["10.78.0.0/24"] }}
  destination = {{ ports = [8080] }}
"""
WARNING = "interface 'late0' does not exist in this network namespace (yet)"


def _hits(ns: str, state: Path, policy: str) -> int:
    return sum(r["packets"] for r in status(ns, state)["rules"] if r["policy"] == policy)


def _syn(client: str, port: int) -> None:
    code = ("import socket; s=socket.socket(); s.settimeout(1)\n"
            f"try: s.connect(('10.78.0.1', {port}))\nexcept OSError: pass")
    in_ns(client, sys.executable, "-c", code, check=False, timeout=10)


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_rules_wait_for_the_interface_with_one_warning(netns_pair, tmp_path, backend):
    ns, state = netns_pair.server, tmp_path / "state"
    profile = tmp_path / "late.toml"
    profile.write_text(PROFILE.format(backend=backend))
    said = {}
    for cmd in ("validate", "diff", "apply"):
        out = nw(ns, state, cmd, str(profile))
        said[cmd] = [line for line in out.stderr.splitlines() if WARNING in line]
        assert len(said[cmd]) == 1, (cmd, out.stderr)
    assert said["validate"] == said["diff"] == said["apply"]
    assert said["apply"][0].startswith(f"{profile}:9:")  # at the interface value
    check = json.loads(nw(ns, state, "validate", "-o", "json", str(profile)).stdout)
    assert any(WARNING in w for w in check["warnings"])

    sh("ip", "-n", ns, "link", "add", "late0", "type", "veth", "peer", "name", "late1",
       "netns", netns_pair.client)
    sh("ip", "-n", ns, "addr", "add", "10.78.0.1/24", "dev", "late0")
    sh("ip", "-n", netns_pair.client, "addr", "add", "10.78.0.2/24", "dev", "late1")
    sh("ip", "-n", ns, "link", "set", "late0", "up")
    sh("ip", "-n", netns_pair.client, "link", "set", "late1", "up")

    allowed, denied = _hits(ns, state, "web"), _hits(ns, state, "(default-deny)")
    _syn(netns_pair.client, 8080)
    assert _hits(ns, state, "web") > allowed
    _syn(netns_pair.client, 9090)
    assert _hits(ns, state, "(default-deny)") > denied
