"""XDP through the CLI started by `ip netns exec NS nodewall apply` (not --netns): ip
netns exec gives the command a private mount namespace with a fresh /sys, so pins made
in a bpffs mounted there would vanish when it exits.  They must land in the host's
bpffs, under the namespace's name, where `nodewall --netns NS status` finds them."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import in_ns

pytestmark = pytest.mark.kernel

NODEWALL = [sys.executable, "-m", "nodewall.engine.cli.main"]
DENIED = "10.77.0.99"

PROFILE = """[settings]
backend = "xdp"
xdp_mode = "generic"
failsafe_inbound = ["tcp:22"]
failsafe_outbound = []

[[host_endpoints]]
name = "srv"
interface = "srv0"
expected_ips = ["10.77.0.1"]
labels = {{ hep = "srv" }}

[[network_sets]]
name = "deny"
labels = {{ list = "drop" }}
nets_file = "{nets}"

[[policies]]
name = "drop-listed"
order = 10
selector = "all()"
do_not_track = true
apply_on_forward = true
types = ["ingress"]

  [[policies.ingress]]
  action = "deny"
  source = {{ selector = 'list == "drop"' }}
"""

SEND = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 0))
for _ in range(5):
    s.sendto(b"x", (sys.argv[2], 9999))
"""


def test_apply_through_ip_netns_exec_keeps_pins_for_status(netns_pair, tmp_path):
    from nodewall.engine.dataplane.xdp import maps as xdp_maps
    pair = netns_pair
    pair.add_client_address(f"{DENIED}/24")
    nets = tmp_path / "deny.txt"
    nets.write_text(f"192.0.2.0/24\n{DENIED}\n")
    profile = tmp_path / "p.toml"
    profile.write_text(PROFILE.format(nets=nets))
    state = tmp_path / "state"
    pins = xdp_maps.PIN_ROOT / pair.server
    try:
        out = in_ns(pair.server, *NODEWALL, "--state-dir", str(state), "apply",
                    "--output", "json", str(profile), check=False, timeout=120)
        assert out.returncode == 0, out.stderr
        assert (pins / "prog").exists() and (pins / "nw_meta").exists()  # host's bpffs
        in_ns(pair.client, sys.executable, "-c", SEND, DENIED, pair.server_ip)
        st = subprocess.run([*NODEWALL, "--netns", pair.server, "--state-dir", str(state),
                             "status", "--output", "json"], capture_output=True, text=True,
                            timeout=120, check=False)
        assert st.returncode == 0, st.stderr
        report = json.loads(st.stdout)
        hits = sum(r["packets"] for r in report["rules"]
                   if r["policy"] == "drop-listed" and r["backend"] == "xdp")
        assert hits >= 5
    finally:
        subprocess.run([*NODEWALL, "--netns", pair.server, "--state-dir", str(state), "flush"],
                       capture_output=True, timeout=120, check=False)
        assert not Path(pins).exists(), f"pins left in {pins}"
