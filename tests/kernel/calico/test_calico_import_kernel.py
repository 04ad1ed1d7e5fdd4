"""Calico YAML imported with `nodewall import calico`, applied with `nodewall apply`
in a namespace pair, with real TCP: the Calico docs' DoS example (HEP + untracked
deny GNP + GNS) and the Redis host case (HEP, untracked allow from a GNS of client
nets, untracked deny from a blocklist GNS).  The YAML is the test data's, with the
interface and addresses swapped for the namespaces'."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import IS_ROOT, REPO, in_ns
from tests.helpers.safety_kit import NODEWALL, nw, status

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(not IS_ROOT, reason="kernel test: needs root for namespaces")]

DATA = REPO / "tests/data/calico"
BLOCKED = "10.77.0.99"  # in the blocklist / deny list
STRANGER = "10.77.0.200"  # on the link, in no set

LISTEN = ("import socket,sys,time\n"
          "socks=[]\n"
          "for p in sys.argv[1:]:\n"
          "    s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
          "    s.bind(('0.0.0.0', int(p))); s.listen(64); socks.append(s)\n"
          "time.sleep(120)\n")


def connects(ns: str, src: str, dst: str, port: int) -> bool:
    code = (f"import socket; s=socket.socket(); s.bind(({src!r}, 0)); s.settimeout(1.0); "
            f"s.connect(({dst!r}, {port})); print('connected')")
    return "connected" in in_ns(ns, sys.executable, "-c", code, check=False,
                                timeout=10).stdout


def imported(tmp_path: Path, name: str, swaps: dict[str, str]) -> Path:
    text = (DATA / name).read_text()
    for old, new in swaps.items():
        text = text.replace(old, new)
    src = tmp_path / name
    src.write_text(text)
    out = tmp_path / f"{src.stem}.toml"
    proc = subprocess.run([*NODEWALL, "import", "calico", str(src), "-o", str(out)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture
def served(netns_pair):
    """The pair with listeners on 22 and 6379 in the server and two extra client
    addresses; every source reaches every port before any profile is applied."""
    pair = netns_pair
    for addr in (BLOCKED, STRANGER):
        pair.add_client_address(f"{addr}/24")
    proc = subprocess.Popen(["ip", "netns", "exec", pair.server, sys.executable, "-c", LISTEN,
                             "22", "6379"])
    try:
        for _ in range(100):
            if connects(pair.client, pair.client_ip, pair.server_ip, 6379):
                break
        for src in (pair.client_ip, BLOCKED, STRANGER):
            assert connects(pair.client, src, pair.server_ip, 6379), src
        yield pair
    finally:
        proc.kill()
        proc.wait()


def tracked_from(ns: str, src: str) -> int:
    out = in_ns(ns, "conntrack", "-L", "-s", src, check=False).stdout
    return sum(1 for line in out.splitlines() if line.strip())


def rule_packets(report: dict, policy: str, action: str) -> int:
    return sum(r["packets"] for r in report["rules"]
               if r["policy"] == policy and r["action"] == action)


def test_calico_docs_dos_example_drops_the_deny_list_before_conntrack(served, tmp_path):
    pair = served
    profile = imported(tmp_path, "docs-dos-mitigation.yaml",
                       {"eth0": pair.server_if, "10.0.0.1": pair.server_ip,
                        "1.2.3.4/32": f"{BLOCKED}/32"})
    state = tmp_path / "state"
    nw(pair.server, state, "apply", "--backend", "iptables", str(profile))
    try:
        # the host endpoint's default deny: a port no policy allows
        assert not connects(pair.client, pair.client_ip, pair.server_ip, 6379)
        assert rule_packets(status(pair.server, state), "dos-mitigation", "deny") == 0
        # failsafe tcp:22 (Felix's defaults: the import writes no [settings])
        assert connects(pair.client, pair.client_ip, pair.server_ip, 22)
        # the deny list: dropped by the untracked GNP, no conntrack entry
        assert not connects(pair.client, BLOCKED, pair.server_ip, 6379)
        assert rule_packets(status(pair.server, state), "dos-mitigation", "deny") > 0
    finally:
        nw(pair.server, state, "flush")


def test_redis_host_case_untracked_allow_from_clients_blocklist_first(served, tmp_path):
    pair = served
    profile = imported(tmp_path, "redis-host.yaml",
                       {"eth0": pair.server_if, "10.0.0.": "10.77.0."})
    state = tmp_path / "state"
    nw(pair.server, state, "apply", "--backend", "iptables", str(profile))
    try:
        # a tracked connection leaves an entry (failsafe tcp:22 is ordinary policy)...
        assert connects(pair.client, pair.client_ip, pair.server_ip, 22)
        assert tracked_from(pair.server, pair.client_ip) > 0
        in_ns(pair.server, "conntrack", "-F", check=False)
        # ...one from a client net (10.77.0.0/25) to Redis is allowed untracked: none
        assert connects(pair.client, pair.client_ip, pair.server_ip, 6379)
        assert tracked_from(pair.server, pair.client_ip) == 0
        # in the client nets too, but the blocklist policy (order 10) comes first
        assert not connects(pair.client, BLOCKED, pair.server_ip, 6379)
        assert rule_packets(status(pair.server, state), "drop-blocklist", "deny") > 0
        # in no set: the host endpoint's default deny
        assert not connects(pair.client, STRANGER, pair.server_ip, 6379)
        report = status(pair.server, state)
        assert rule_packets(report, "redis-untracked", "allow") > 0
    finally:
        nw(pair.server, state, "flush")
