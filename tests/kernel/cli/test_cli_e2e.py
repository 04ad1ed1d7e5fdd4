"""End to end through the CLI, in a throwaway lab (two namespaces, Redis, veth):
apply the example profile, send real traffic, read counters and conntrack back."""
from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import IS_ROOT, REPO, in_ns

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(not IS_ROOT, reason="kernel test: needs root for namespaces")]

NODEWALL = [sys.executable, "-m", "nodewall.engine.cli.main"]


@pytest.fixture
def lab(tmp_path):
    from nodewall.engine.lab import lifecycle as lab_mod
    prefix = f"nwt{uuid.uuid4().hex[:5]}"
    info = lab_mod.lab_up(prefix, duration=120, traffic=False)
    try:
        yield info
    finally:
        lab_mod.lab_down(prefix)


def nw(lab_info, state_dir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [*NODEWALL, "--netns", lab_info.server_ns, "--state-dir", str(state_dir), *args]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc


def status(lab_info, state_dir: Path) -> dict:
    return json.loads(nw(lab_info, state_dir, "status", "--output", "json").stdout)


def rule_hits(report: dict, policy: str, direction: str, index: int, backend: str) -> int:
    return sum(r["packets"] for r in report["rules"] if r["policy"] == policy
               and r["direction"] == direction and r["index"] == index
               and r["backend"] == backend)


def redis_ping(lab_info) -> str:
    return in_ns(lab_info.client_ns, "redis-cli", "-h", "10.0.0.1", "-p", "6379",
                 "PING", check=False, timeout=10).stdout.strip()


def tcp_from(lab_info, src: str, dst: str, port: int) -> bool:
    code = (f"import socket; s=socket.socket(socket.AF_INET6 if ':' in {dst!r} else "
            f"socket.AF_INET); s.settimeout(1.5); s.bind(({src!r}, 0)); "
            f"s.connect(({dst!r}, {port})); print('connected')")
    proc = in_ns(lab_info.client_ns, sys.executable, "-c", code, check=False, timeout=10)
    return "connected" in proc.stdout


def conntrack_count(ns: str) -> int:
    return int(in_ns(ns, "cat", "/proc/sys/net/netfilter/nf_conntrack_count").stdout)


def test_redis_host_profile_end_to_end(lab, tmp_path):
    state = tmp_path / "state"
    profile = REPO / "profiles" / "redis-host.toml"
    assert nw(lab, state, "validate", str(profile)).returncode == 0
    out = nw(lab, state, "apply", "--backend", "iptables", "--output", "json", str(profile))
    applied = json.loads(out.stdout)
    assert applied["generation"] == 1 and applied["changed"] is True

    # untracked Redis from an allowed source works and leaves conntrack empty
    in_ns(lab.server_ns, "conntrack", "-F", check=False)
    for _ in range(5):
        assert redis_ping(lab) == "PONG"
    assert conntrack_count(lab.server_ns) == 0

    # a tracked flow (ICMP, allowed by ssh-and-icmp) does create conntrack entries
    in_ns(lab.client_ns, "ping", "-c", "2", "-W", "1", "10.0.0.1")
    assert conntrack_count(lab.server_ns) > 0

    # the blocklisted source is denied (network-set selector in raw)
    assert not tcp_from(lab, "203.0.113.7", "10.0.0.1", 6379)
    # a port no policy allows is denied by the host endpoint's default deny
    assert not tcp_from(lab, "10.0.0.2", "10.0.0.1", 6380)

    report = status(lab, state)
    assert report["schema"] == 1 and report["generation"] == 1
    assert rule_hits(report, "redis-untracked", "ingress", 0, "raw") >= 5
    assert rule_hits(report, "redis-untracked", "egress", 0, "raw") >= 5
    assert rule_hits(report, "drop-blocklist", "ingress", 0, "raw") >= 1
    assert rule_hits(report, "ssh-and-icmp", "ingress", 1, "filter") >= 1
    assert report["conntrack"]["max"] > 0
    assert {"count", "max"} <= set(report["conntrack"])
    for key in ("interfaces", "rules", "generation", "pending_confirm", "drift"):
        assert key in report
    assert report["drift"] == []

    # a second apply of the same profile changes nothing and keeps the counters
    again = json.loads(nw(lab, state, "apply", "--backend", "iptables", "--output", "json",
                          str(profile)).stdout)
    assert again["changed"] is False
    assert rule_hits(status(lab, state), "redis-untracked", "ingress", 0, "raw") >= 5
    assert nw(lab, state, "apply", "--backend", "iptables", "--check", str(profile),
              check=False).returncode == 3


def test_failsafe_ssh_stays_open_under_default_deny(lab, tmp_path):
    state = tmp_path / "state"
    profile = tmp_path / "deny-all.toml"
    profile.write_text('[settings]\nfailsafe_inbound = ["tcp:22"]\nfailsafe_outbound = []\n'
                       '[[host_endpoints]]\nname = "srv"\ninterface = "eth0"\n'
                       'labels = { role = "x" }\n')
    listener = subprocess.Popen(
        ["ip", "netns", "exec", lab.server_ns, sys.executable, "-c",
         ("import socket,time\n"
         "for port in (22, 2222):\n"
         "    s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
         "    s.bind(('0.0.0.0', port)); s.listen(16); globals()[f's{port}']=s\n"
         "time.sleep(60)\n")])
    try:
        assert _wait_connect(lab, 2222)
        nw(lab, state, "apply", str(profile))
        assert tcp_from(lab, "10.0.0.2", "10.0.0.1", 22)  # failsafe
        assert not tcp_from(lab, "10.0.0.2", "10.0.0.1", 2222)  # default deny
        report = status(lab, state)
        assert any(r["policy"] == "(failsafe)" and r["packets"] > 0 for r in report["rules"])
        assert any(r["policy"] == "(default-deny)" and r["packets"] > 0
                   for r in report["rules"])
    finally:
        listener.kill()
        listener.wait()


def _wait_connect(lab, port: int) -> bool:
    import time
    deadline = time.time() + 5
    while time.time() < deadline:
        if tcp_from(lab, "10.0.0.2", "10.0.0.1", port):
            return True
        time.sleep(0.1)
    return False


def _nw_lines(ns: str) -> str:
    out = []
    for tool in ("iptables-legacy-save", "ip6tables-legacy-save"):
        out += [ln for ln in in_ns(ns, tool).stdout.splitlines() if "nw-" in ln]
    out += [ln for ln in in_ns(ns, "ipset", "list", "-n").stdout.splitlines()
            if ln.startswith("nw-")]
    return "\n".join(out)


def test_flush_leaves_nothing_and_foreign_rules_survive(lab, tmp_path):
    state = tmp_path / "state"
    ns = lab.server_ns
    # foreign objects in every table nodewall writes to
    in_ns(ns, "ipset", "create", "foreign-set", "hash:ip")
    in_ns(ns, "ipset", "add", "foreign-set", "192.0.2.1")
    for table, chain in (("raw", "PREROUTING"), ("mangle", "PREROUTING"),
                         ("filter", "INPUT"), ("filter", "OUTPUT")):
        foreign = f"FOREIGN-{chain}"
        in_ns(ns, "iptables-legacy", "-t", table, "-N", foreign)
        in_ns(ns, "iptables-legacy", "-t", table, "-A", foreign, "-s", "192.0.2.1",
              "-j", "RETURN")
        in_ns(ns, "iptables-legacy", "-t", table, "-A", chain, "-m", "set", "--match-set",
              "foreign-set", "src", "-j", foreign)
    before = {t: in_ns(ns, "iptables-legacy", "-t", t, "-S").stdout
              for t in ("raw", "mangle", "filter")}

    nw(lab, state, "apply", "--backend", "iptables", str(REPO / "profiles" / "redis-host.toml"))
    assert _nw_lines(ns)
    for t, text in before.items():  # foreign rules are all still there
        now = in_ns(ns, "iptables-legacy", "-t", t, "-S").stdout
        assert all(line in now for line in text.splitlines())
    nw(lab, state, "flush")
    assert _nw_lines(ns) == ""
    for t, text in before.items():
        assert in_ns(ns, "iptables-legacy", "-t", t, "-S").stdout == text
    assert "192.0.2.1" in in_ns(ns, "ipset", "list", "foreign-set").stdout


@pytest.mark.parametrize("profile", sorted(p.name for p in (REPO / "profiles").glob("*.toml")))
def test_every_example_profile_validates_and_applies(lab, tmp_path, profile):
    state = tmp_path / "state"
    path = REPO / "profiles" / profile
    assert nw(lab, state, "validate", str(path)).returncode == 0
    nw(lab, state, "apply", str(path))
    report = status(lab, state)
    assert report["generation"] == 1 and report["drift"] == []
    nw(lab, state, "flush")
    assert _nw_lines(lab.server_ns) == ""


def test_unchanged_xdp_profile_is_nothing_to_do(lab, tmp_path):
    """With XDP in play, a second apply of the same profile changes nothing: no new
    generation, and `apply --check` exits 3."""
    state = tmp_path / "state"
    profile = str(REPO / "profiles" / "redis-host.toml")
    first = json.loads(nw(lab, state, "apply", "--output", "json", profile).stdout)
    assert any(p["placement"].startswith("xdp on") for p in first["plan"]["xdp"])
    assert nw(lab, state, "apply", "--check", profile, check=False).returncode == 3
    again = json.loads(nw(lab, state, "apply", "--output", "json", profile).stdout)
    assert again["changed"] is False and again["generation"] == first["generation"]
    nw(lab, state, "flush")
