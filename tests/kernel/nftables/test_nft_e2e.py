"""The nftables packet filter end to end through the CLI, in a throwaway lab: the
example profile with `--backend nftables`, real traffic, counters, conntrack, flush,
foreign nft tables, and switching between iptables and nftables."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import IS_ROOT, REPO, in_ns
from tests.kernel.cli.test_cli_e2e import (
    _nw_lines,
    _wait_connect,
    conntrack_count,
    lab,  # noqa: F401  (fixture)
    nw,
    redis_ping,
    rule_hits,
    status,
    tcp_from,
)

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(not IS_ROOT, reason="kernel test: needs root for namespaces")]

PROFILE = REPO / "profiles" / "redis-host.toml"


def nft_json(ns: str, *args: str) -> list[dict]:
    proc = in_ns(ns, "nft", "-j", *args, check=False)
    return json.loads(proc.stdout)["nftables"] if proc.returncode == 0 else []


def nodewall_table(ns: str) -> list[dict]:
    return nft_json(ns, "list", "table", "inet", "nodewall")


def test_redis_host_on_nftables(lab, tmp_path):  # noqa: F811
    state = tmp_path / "state"
    out = nw(lab, state, "apply", "--backend", "nftables", "--output", "json", str(PROFILE))
    assert json.loads(out.stdout)["generation"] == 1
    ns = lab.server_ns
    assert nodewall_table(ns)
    assert _nw_lines(ns) == ""  # no legacy chain, no ipset

    in_ns(ns, "conntrack", "-F", check=False)
    for _ in range(5):
        assert redis_ping(lab) == "PONG"
    assert conntrack_count(ns) == 0  # untracked: notrack in raw
    in_ns(lab.client_ns, "ping", "-c", "2", "-W", "1", "10.0.0.1")
    assert conntrack_count(ns) > 0
    assert not tcp_from(lab, "203.0.113.7", "10.0.0.1", 6379)  # blocklist
    assert not tcp_from(lab, "10.0.0.2", "10.0.0.1", 6380)  # default deny

    report = status(lab, state)
    assert report["drift"] == []
    assert rule_hits(report, "redis-untracked", "ingress", 0, "raw") >= 5
    assert rule_hits(report, "redis-untracked", "egress", 0, "raw") >= 5
    assert rule_hits(report, "ssh-and-icmp", "ingress", 1, "filter") >= 1
    blocked = rule_hits(report, "drop-blocklist", "ingress", 0, "raw") + \
        rule_hits(report, "drop-blocklist", "ingress", 0, "xdp")
    assert blocked >= 1

    # the same profile again: nothing to do, and counters survive a changed apply
    again = json.loads(nw(lab, state, "apply", "--backend", "nftables", "--output", "json",
                          str(PROFILE)).stdout)
    assert again["changed"] is False
    assert nw(lab, state, "apply", "--backend", "nftables", "--check", str(PROFILE),
              check=False).returncode == 3


def test_failsafe_ssh_open_under_default_deny_nftables(lab, tmp_path):  # noqa: F811
    state = tmp_path / "state"
    profile = tmp_path / "deny-all.toml"
    profile.write_text('[settings]\nbackend = "nftables"\nfailsafe_inbound = ["tcp:22"]\n'
                       'failsafe_outbound = []\n'
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
        assert nodewall_table(lab.server_ns)
        assert tcp_from(lab, "10.0.0.2", "10.0.0.1", 22)
        assert not tcp_from(lab, "10.0.0.2", "10.0.0.1", 2222)
        report = status(lab, state)
        assert any(r["policy"] == "(failsafe)" and r["packets"] > 0 for r in report["rules"])
        assert any(r["policy"] == "(default-deny)" and r["packets"] > 0
                   for r in report["rules"])
    finally:
        listener.kill()
        listener.wait()


def test_flush_leaves_foreign_nft_table(lab, tmp_path):  # noqa: F811
    state = tmp_path / "state"
    ns = lab.server_ns
    in_ns(ns, "nft", "add table inet foreign; add chain inet foreign input "
          "{ type filter hook input priority 10; policy accept; }; "
          "add rule inet foreign input ip saddr 192.0.2.1 counter drop")
    before = in_ns(ns, "nft", "list", "table", "inet", "foreign").stdout
    nw(lab, state, "apply", "--backend", "nftables", str(PROFILE))
    report = status(lab, state)
    assert any("nft table inet foreign (not nodewall's, left alone): base chains input at "
               "input priority 10" in w for w in report["warnings"]), report["warnings"]
    assert redis_ping(lab) == "PONG"
    nw(lab, state, "flush")
    assert nodewall_table(ns) == []
    assert _nw_lines(ns) == ""
    assert in_ns(ns, "nft", "list", "table", "inet", "foreign").stdout == before


def test_switch_iptables_nftables_iptables(lab, tmp_path):  # noqa: F811
    state = tmp_path / "state"
    ns = lab.server_ns
    nw(lab, state, "apply", "--backend", "iptables", str(PROFILE))
    assert _nw_lines(ns) and not nodewall_table(ns)
    diff = nw(lab, state, "diff", "--backend", "nftables", str(PROFILE)).stdout
    assert "nft chain" in diff and "- " in diff
    nw(lab, state, "apply", "--backend", "nftables", str(PROFILE))
    assert _nw_lines(ns) == "" and nodewall_table(ns)
    assert redis_ping(lab) == "PONG"
    assert status(lab, state)["drift"] == []
    nw(lab, state, "apply", "--backend", "iptables", str(PROFILE))
    assert _nw_lines(ns) and not nodewall_table(ns)
    assert redis_ping(lab) == "PONG"
    assert status(lab, state)["drift"] == []
    # a rollback to the nftables generation switches back again
    nw(lab, state, "rollback")
    assert _nw_lines(ns) == "" and nodewall_table(ns)


def _set_has(ns: str, name: str, addr: str) -> bool:
    return in_ns(ns, "nft", "get", "element", "inet", "nodewall", name, f"{{ {addr} }}",
                 check=False).returncode == 0


def test_nets_file_delta_is_element_add_delete(lab, tmp_path):  # noqa: F811
    from bench.common import write_cidr_file
    state = tmp_path / "state"
    ns = lab.server_ns
    nets = write_cidr_file(tmp_path / "nets.txt", 10000, extra=("203.0.113.7",))
    lines = nets.read_text().splitlines()
    gone = next(x for x in lines if "/" not in x and not x.startswith("203."))
    profile = tmp_path / "p.toml"
    profile.write_text(
        '[settings]\nbackend = "nftables"\nfailsafe_inbound = []\nfailsafe_outbound = []\n'
        '[[host_endpoints]]\nname = "srv"\ninterface = "eth0"\nlabels = { role = "x" }\n'
        f'[[network_sets]]\nname = "big"\nlabels = {{ l = "big" }}\nnets_file = "{nets}"\n'
        '[[policies]]\nname = "deny-big"\norder = 1\nselector = "all()"\n'
        'types = ["ingress"]\n'
        '  [[policies.ingress]]\n  action = "deny"\n  source = { selector = \'l == "big"\' }\n'
        '  [[policies.ingress]]\n  action = "allow"\n')
    nw(lab, state, "apply", str(profile))
    name = next(s["set"]["name"] for s in nodewall_table(ns) if "set" in s
                and s["set"]["name"].startswith("nw-n4-"))
    assert _set_has(ns, name, gone) and not _set_has(ns, name, "198.18.77.1")
    assert not tcp_from(lab, "203.0.113.7", "10.0.0.1", 6379)
    assert redis_ping(lab) == "PONG"

    denied = rule_hits(status(lab, state), "deny-big", "ingress", 0, "raw") + \
        rule_hits(status(lab, state), "deny-big", "ingress", 0, "filter")
    assert denied >= 1
    nets.write_text("\n".join([*(x for x in lines if x != gone), "198.18.77.0/24"]) + "\n")
    out = json.loads(nw(lab, state, "apply", "--output", "json", str(profile)).stdout)
    changes = out["plan"]["changes"]
    assert f"+ nft set {name} (network set big) 198.18.77.0/24" in changes
    assert f"- nft set {name} (network set big) {gone}" in changes
    assert out["plan"]["set_members_added"] == 1 and out["plan"]["set_members_removed"] == 1
    assert not _set_has(ns, name, gone) and _set_has(ns, name, "198.18.77.1")
    report = status(lab, state)
    assert report["drift"] == []
    # the ruleset was re-rendered with the counters it had
    assert rule_hits(report, "deny-big", "ingress", 0, "filter") + \
        rule_hits(report, "deny-big", "ingress", 0, "raw") >= denied
    assert not tcp_from(lab, "203.0.113.7", "10.0.0.1", 6379)


@pytest.mark.parametrize("profile", sorted(p.name for p in (REPO / "profiles").glob("*.toml")))
def test_every_example_profile_applies_on_nftables(lab, tmp_path, profile):  # noqa: F811
    state = tmp_path / "state"
    nw(lab, state, "apply", "--backend", "nftables", str(REPO / "profiles" / profile))
    report = status(lab, state)
    assert report["generation"] == 1 and report["drift"] == []
    nw(lab, state, "flush")
    assert nodewall_table(lab.server_ns) == [] and _nw_lines(lab.server_ns) == ""


def test_selector_over_two_network_sets_is_one_merged_set(lab, tmp_path):  # noqa: F811
    state = tmp_path / "state"
    ns = lab.server_ns
    profile = tmp_path / "p.toml"
    profile.write_text(
        '[settings]\nbackend = "nftables"\nfailsafe_inbound = []\nfailsafe_outbound = []\n'
        '[[host_endpoints]]\nname = "srv"\ninterface = "eth0"\nlabels = { role = "x" }\n'
        '[[network_sets]]\nname = "a"\nlabels = { l = "bad" }\nnets = ["203.0.113.0/25"]\n'
        '[[network_sets]]\nname = "b"\nlabels = { l = "bad" }\n'
        'nets = ["203.0.113.128/25", "198.51.100.0/24"]\n'
        '[[policies]]\nname = "deny-bad"\norder = 1\nselector = "all()"\n'
        'types = ["ingress"]\n'
        '  [[policies.ingress]]\n  action = "deny"\n  source = { selector = \'l == "bad"\' }\n'
        '  [[policies.ingress]]\n  action = "allow"\n')
    nw(lab, state, "apply", str(profile))
    merged = [s["set"] for s in nodewall_table(ns)
              if "set" in s and s["set"]["name"].startswith("nw-l4")]
    assert len(merged) == 1
    elems = nft_json(ns, "list", "set", "inet", "nodewall", merged[0]["name"])[1]["set"]["elem"]
    assert {"prefix": {"addr": "203.0.113.0", "len": 24}} in elems  # the two halves merged
    assert not tcp_from(lab, "203.0.113.7", "10.0.0.1", 6379)
    assert redis_ping(lab) == "PONG"
    assert status(lab, state)["drift"] == []
