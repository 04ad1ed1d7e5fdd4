"""A rule shared by two host endpoints counts per interface: one policy applied to
two interfaces (a second veth pair between the test's own namespaces), a packet sent
over one of them raises only that interface's row of the rule, in `status` JSON
(with its chain) and in the metrics' `interface` label (iptables and nftables)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.conftest import IS_ROOT, in_ns, sh
from tests.helpers.safety_kit import nw, status

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(not IS_ROOT, reason="kernel test: needs root for namespaces")]

SECOND_SERVER_IP, SECOND_CLIENT_IP = "10.78.0.1", "10.78.0.2"

PROFILE = """
[settings]
backend = "{backend}"
failsafe_inbound = ["tcp:22"]
failsafe_outbound = []

[[host_endpoints]]
name = "first"
interface = "srv0"
labels = {{ role = "srv" }}

[[host_endpoints]]
name = "second"
interface = "srv1"
labels = {{ role = "srv" }}

[[policies]]
name = "web"
order = 100
selector = "role == 'srv'"
types = ["ingress"]
  [[policies.ingress]]
  action = "allow"
  protocol = "tcp"
  destination = {{ ports = [8080] }}
"""


def _second_link(pair) -> None:
    """srv1 (server, 10.78.0.1) <-> cli1 (client, 10.78.0.2), inside the fixture's
    namespaces (deleted with them)."""
    sh("ip", "-n", pair.server, "link", "add", "srv1", "type", "veth",
       "peer", "name", "cli1", "netns", pair.client)
    for ns, ifname, ip in ((pair.server, "srv1", SECOND_SERVER_IP),
                           (pair.client, "cli1", SECOND_CLIENT_IP)):
        sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", ifname)
        sh("ip", "-n", ns, "link", "set", ifname, "up")


def _syn(client_ns: str, dst: str) -> None:
    code = (f"import socket; s=socket.socket(); s.settimeout(1)\n"
            f"try: s.connect(({dst!r}, 8080))\nexcept OSError: pass")
    in_ns(client_ns, sys.executable, "-c", code, check=False, timeout=10)


def _web_rows(ns: str, state: Path) -> dict[str, dict]:
    rows = [r for r in status(ns, state)["rules"] if r["policy"] == "web"]
    assert len({r["id"] for r in rows}) == 1, rows  # one TOML rule ...
    return {r["interface"]: r for r in rows}  # ... one row per interface


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_shared_rule_counts_apart_per_interface(netns_pair, tmp_path, backend):
    ns, state = netns_pair.server, tmp_path / "state"
    _second_link(netns_pair)
    (tmp_path / "p.toml").write_text(PROFILE.format(backend=backend))
    nw(ns, state, "apply", str(tmp_path / "p.toml"))

    before = _web_rows(ns, state)
    assert set(before) == {"srv0", "srv1"}
    assert {r["chain"] for r in before.values()} == {"nw-fi-srv0", "nw-fi-srv1"}
    for _ in range(3):
        _syn(netns_pair.client, SECOND_SERVER_IP)
    after = _web_rows(ns, state)

    assert after["srv1"]["packets"] >= before["srv1"]["packets"] + 3
    assert after["srv0"]["packets"] == before["srv0"]["packets"]
    assert after["srv0"]["id"] == after["srv1"]["id"]


XDP_PROFILE = """
[settings]
backend = "xdp"
failsafe_inbound = ["tcp:22"]
failsafe_outbound = []

[[host_endpoints]]
name = "first"
interface = "srv0"
labels = { role = "srv" }

[[host_endpoints]]
name = "second"
interface = "srv1"
labels = { role = "srv" }

[[policies]]
name = "drop-web"
order = 10
selector = "role == 'srv'"
do_not_track = true
apply_on_forward = true
types = ["ingress"]
  [[policies.ingress]]
  action = "deny"
  protocol = "tcp"
  source = { nets = ["10.77.0.0/16", "10.78.0.0/16"] }
  destination = { ports = [8080] }
"""


def _xdp_rows(ns: str, state: Path) -> dict[str, dict]:
    rows = [r for r in status(ns, state)["rules"]
            if r["policy"] == "drop-web" and r["backend"] == "xdp"]
    assert len({r["id"] for r in rows}) == 1, rows
    return {r["interface"]: r for r in rows}


def _xdp_metric(ns: str, state: Path) -> dict[str, float]:
    """nodewall_rule_packets_total of the XDP rule by its interface label, as /metrics
    answers it (the exporter's text, read inside the server namespace)."""
    from tests.helpers.metrics_kit import samples
    code = ("import sys\nfrom pathlib import Path\n"
            "from nodewall.engine.metrics.exporter import Exporter\n"
            "from nodewall.engine.service import Service\n"
            "sys.stdout.write(Exporter(Service(state_dir=Path(sys.argv[1])).scrape).text())")
    text = in_ns(ns, sys.executable, "-c", code, str(state), timeout=60).stdout
    return {s.labels["interface"]: s.value for s in samples(text)
            if s.name == "nodewall_rule_packets_total" and s.labels["policy"] == "drop-web"
            and s.labels["backend"] == "xdp"}


def test_xdp_rule_shared_by_two_interfaces_counts_apart(netns_pair, tmp_path):
    """The XDP program counts a rule per interface (a counter slot per rule and
    interface): SYNs dropped in XDP on srv1 raise srv1's row and series only."""
    from nodewall.engine.dataplane.xdp.maps import PIN_ROOT

    ns, state = netns_pair.server, tmp_path / "state"
    _second_link(netns_pair)
    (tmp_path / "p.toml").write_text(XDP_PROFILE)
    try:
        nw(ns, state, "apply", str(tmp_path / "p.toml"))
        before = _xdp_rows(ns, state)
        assert set(before) == {"srv0", "srv1"}
        assert {r["chain"] for r in before.values()} == {"xdp:srv0", "xdp:srv1"}
        for _ in range(3):
            _syn(netns_pair.client, SECOND_SERVER_IP)
        after = _xdp_rows(ns, state)
        metric = _xdp_metric(ns, state)
        _syn(netns_pair.client, netns_pair.server_ip)
        last = _xdp_rows(ns, state)
    finally:
        nw(ns, state, "flush", check=False)
    assert not (PIN_ROOT / ns).exists()

    assert after["srv1"]["packets"] >= before["srv1"]["packets"] + 3
    assert after["srv0"]["packets"] == before["srv0"]["packets"]
    assert metric == {"srv0": after["srv0"]["packets"], "srv1": after["srv1"]["packets"]}
    assert last["srv0"]["packets"] > after["srv0"]["packets"]
    assert last["srv1"]["packets"] == after["srv1"]["packets"]
