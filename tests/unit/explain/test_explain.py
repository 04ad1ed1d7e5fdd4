"""explain: a packet's path through a planned DesiredState (pure, no root)."""
from __future__ import annotations

from pathlib import Path

import pytest
from nodewall.engine.errors import InputError
from nodewall.engine.explain.packet import parse_packet
from nodewall.engine.explain.walk import explain
from nodewall.engine.plan.planner import plan
from nodewall.engine.profile.loader import load_profiles

PROFILE = """
[settings]
backend = "{backend}"
failsafe_inbound = ["tcp:22"]
failsafe_outbound = ["udp:53"]

[[host_endpoints]]
name = "uplink"
interface = "eth0"
expected_ips = ["10.0.0.1"]
labels = {{ hep = "redis" }}

[[network_sets]]
name = "blocklist"
labels = {{ list = "drop" }}
nets = ["198.51.100.0/24"]
nets_file = "block.txt"

[[policies]]
name = "drop-blocklist"
order = 10
selector = "all()"
do_not_track = true
apply_on_forward = true
types = ["ingress"]
  [[policies.ingress]]
  action = "deny"
  source = {{ selector = 'list == "drop"' }}

[[policies]]
name = "redis-untracked"
order = 20
selector = "all()"
do_not_track = true
apply_on_forward = true
types = ["ingress"]
  [[policies.ingress]]
  action = "allow"
  protocol = "tcp"
  source = {{ nets = ["10.0.0.0/8"] }}
  destination = {{ ports = [6379] }}

[[policies]]
name = "web"
order = 100
selector = "all()"
types = ["ingress", "egress"]
  [[policies.ingress]]
  action = "allow"
  protocol = "tcp"
  destination = {{ ports = [80, 443] }}
  [[policies.egress]]
  action = "allow"
  protocol = "udp"
  destination = {{ nets = ["192.0.2.53/32"], ports = [53] }}
"""


def _desired(tmp_path: Path, backend: str = "iptables"):
    (tmp_path / "block.txt").write_text("# bad\n203.0.113.0/28\n203.0.113.7\n2001:db8::/32\n")
    path = tmp_path / "p.toml"
    path.write_text(PROFILE.format(backend=backend))
    return plan(load_profiles([path]))


def _explain(tmp_path, src, dst, backend="iptables", direction="ingress", iface="eth0"):
    return explain(_desired(tmp_path, backend),
                   parse_packet(src, dst, iface=iface, direction=direction))


def test_blocklisted_source_is_dropped_in_raw_by_the_nets_file_line(tmp_path):
    e = _explain(tmp_path, "203.0.113.7", "10.0.0.1:6379/tcp")
    assert (e.verdict, e.stage, e.rule.policy) == ("deny", "raw", "drop-blocklist")
    last = e.path[-1]
    assert last.action == "DROP" and last.chain == "raw nw-rfi-eth0"
    assert last.hits[0].member == "203.0.113.0/28"
    assert last.hits[0].file is not None and last.hits[0].file.endswith("block.txt")
    assert e.overrides is None


def test_failsafe_overriding_a_deny_names_the_deny(tmp_path):
    e = _explain(tmp_path, "203.0.113.7", "10.0.0.1:22/tcp")
    assert (e.verdict, e.stage, e.rule.policy) == ("allow", "filter", "(failsafe)")
    assert e.overrides is not None
    assert e.overrides.rule.policy == "drop-blocklist" and e.overrides.stage == "raw"
    assert [s.stage for s in e.path] == ["raw", "raw", "filter", "filter"]


def test_untracked_allow_decides_through_the_untracked_state_in_filter(tmp_path):
    e = _explain(tmp_path, "10.9.9.9", "10.0.0.1:6379")
    assert (e.verdict, e.stage, e.rule.policy) == ("allow", "raw", "redis-untracked")
    assert e.rule.index == 0
    actions = [(s.chain, s.action) for s in e.path]
    assert ("raw nw-untracked-allow", "NOTRACK") in actions
    assert "MARK" not in [a for _, a in actions]
    assert e.path[-1].rule.policy == "(untracked)"
    assert "source 10.9.9.9 in 10.0.0.0/8" in e.path[1].because


def test_tracked_allow_and_default_deny(tmp_path):
    allowed = _explain(tmp_path, "192.0.2.50", "10.0.0.1:443")
    assert (allowed.verdict, allowed.stage, allowed.rule.policy) == ("allow", "filter", "web")
    denied = _explain(tmp_path, "192.0.2.50", "10.0.0.1:6379")
    assert (denied.verdict, denied.rule.policy) == ("deny", "(default-deny)")
    udp = _explain(tmp_path, "192.0.2.50", "10.0.0.1:443/udp")
    assert udp.rule.policy == "(default-deny)"


def test_egress_and_other_interfaces(tmp_path):
    dns = _explain(tmp_path, "10.0.0.1", "192.0.2.53:53/udp", direction="egress")
    assert (dns.verdict, dns.rule.policy) == ("allow", "(failsafe)")
    other = _explain(tmp_path, "10.0.0.1", "192.0.2.54:5353/udp", direction="egress")
    assert (other.verdict, other.rule.policy) == ("deny", "(default-deny)")
    web = _explain(tmp_path, "10.0.0.1", "192.0.2.53:54/udp", direction="egress")
    assert web.rule.policy == "(default-deny)"
    elsewhere = _explain(tmp_path, "203.0.113.7", "10.0.0.1:6379", iface="eth1")
    assert (elsewhere.verdict, elsewhere.stage, elsewhere.rule.id) == ("allow", None, None)
    assert elsewhere.path == ()


def test_ipv6_member_of_the_nets_file(tmp_path):
    e = _explain(tmp_path, "[2001:db8::5]:4000", "[fd00::1]:80")
    assert (e.verdict, e.rule.policy) == ("deny", "drop-blocklist")
    assert e.path[-1].hits[0].member == "2001:db8::/32"


def test_nftables_names_its_chains(tmp_path):
    e = _explain(tmp_path, "203.0.113.7", "10.0.0.1:6379", backend="nftables")
    assert e.packet_filter == "nftables"
    assert (e.verdict, e.rule.policy) == ("deny", "drop-blocklist")
    assert e.path[-1].chain == "raw4-nw-rfi-eth0"


def test_xdp_drops_first_and_failsafe_passes_there(tmp_path):
    e = _explain(tmp_path, "198.51.100.9", "10.0.0.1:6379", backend="xdp")
    assert (e.verdict, e.stage, e.rule.policy) == ("deny", "xdp", "drop-blocklist")
    assert e.path[0].hits[0].member == "198.51.100.0/24"
    ssh = _explain(tmp_path, "198.51.100.9", "10.0.0.1:22", backend="xdp")
    assert ssh.path[0].stage == "xdp" and ssh.path[0].action == "PASS"
    assert ssh.verdict == "allow" and ssh.overrides is not None
    assert ssh.overrides.stage == "xdp"


def test_json_carries_the_contract(tmp_path):
    data = _explain(tmp_path, "203.0.113.7", "10.0.0.1:22/tcp").to_json()
    assert data["verdict"] == "allow" and data["stage"] == "filter"
    assert data["rule"]["policy"] == "(failsafe)" and data["rule"]["id"]
    assert data["failsafe_overrides"]["rule"]["policy"] == "drop-blocklist"
    assert [p["stage"] for p in data["path"]] == ["raw", "raw", "filter", "filter"]


@pytest.mark.parametrize("src,dst", [("10.0.0.300", "10.0.0.1:22"), ("10.0.0.1", "10.0.0.2:99999"),
                                     ("10.0.0.1", "fd00::1"), ("10.0.0.1", "10.0.0.2:22/bogus"),
                                     ("10.0.0.1", "10.0.0.2:22/icmp")])
def test_bad_packets_are_input_errors(src, dst):
    with pytest.raises(InputError):
        parse_packet(src, dst, iface="eth0", direction="ingress")


@pytest.mark.parametrize("lines,address,member", [
    ("192.0.2.0/24\n8.0.0.0/5\n", "10.1.1.1", "8.0.0.0/5"),  # a short prefix, other octet
    ("192.0.2.0/24\n0.0.0.0/0\n", "10.1.1.1", "0.0.0.0/1"),  # /0 is kept as two /1s
    ("# c\n10.1.1.1  # host\n", "10.1.1.1", "10.1.1.1/32"),  # a bare address
    ("110.1.1.0/24\n10.1.1.0/25\n", "10.1.1.1", "10.1.1.0/25"),  # 110. is not 10.
    ("110.1.1.0/24\n", "10.1.1.1", None),
    ("2001:db8::/32\n", "2001:db8::1", "2001:db8::/32"),
])
def test_nets_file_lookup_finds_the_member(tmp_path, lines, address, member):
    import ipaddress

    from nodewall.engine.explain.members import SetIndex
    from nodewall.engine.plan.desired import IpSetSpec
    path = tmp_path / "n.txt"
    path.write_text(lines)
    family = 6 if ":" in address else 4
    spec = IpSetSpec("nw-x", family, "hash:net", files=(path,), origin="network set x")
    hit = SetIndex([spec]).lookup("nw-x", ipaddress.ip_address(address))
    assert (hit.member if hit else None) == member
