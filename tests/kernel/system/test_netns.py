"""The namespace a process runs in is known by name whether it got there through
--netns (setns) or was started inside it by `ip netns exec` (state, manifests and
bpffs pins are kept per name)."""
from __future__ import annotations

import subprocess
import sys

from nodewall.engine.system import netns

from tests.conftest import in_ns

CODE = "from nodewall.engine.system import netns; print(netns.current_name(), netns.scope_name())"


def test_name_is_found_under_ip_netns_exec(netns_one):
    out = in_ns(netns_one, sys.executable, "-c", CODE).stdout.split()
    assert out == [netns_one, netns_one]


def test_entered_namespace_and_host(netns_one):
    assert netns.run_in_netns(netns_one, netns.current_name) == netns_one
    host = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True,
                          check=True).stdout.split()
    assert host == ["None", "host"]
