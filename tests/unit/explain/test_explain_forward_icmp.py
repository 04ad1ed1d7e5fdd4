"""explain for ICMP (type and code) and forwarded packets (the host endpoints'
forward chains, for apply_on_forward policies), pure: planned profiles, no root."""
from __future__ import annotations

from pathlib import Path

import pytest
from nodewall.engine.errors import InputError
from nodewall.engine.explain.packet import parse_packet
from nodewall.engine.explain.walk import explain
from nodewall.engine.plan.planner import plan
from nodewall.engine.profile.loader import load_profiles

PROFILE = (Path(__file__).parents[2] / "data" / "explain_forward.toml.in").read_text()


def _explain(tmp_path: Path, src: str, dst: str, *, direction="ingress", iface="eth0",
             out_iface=None, backend="iptables"):
    path = tmp_path / "p.toml"
    path.write_text(PROFILE.format(backend=backend, edge_if="eth0", inside_if="eth1",
                                    blocked="203.0.113.0/24", routed="10.0.0.0/8"))
    packet = parse_packet(src, dst, iface=iface, direction=direction, out_iface=out_iface)
    return explain(plan(load_profiles([path])), packet)


def test_a_ping_is_an_echo_request_and_rules_match_its_type(tmp_path):
    ping = _explain(tmp_path, "203.0.113.7", "10.0.0.1/icmp")
    assert (ping.packet.icmp_type, ping.packet.icmp_code) == (8, 0)
    assert (ping.verdict, ping.stage, ping.rule.policy) == ("allow", "filter", "ping-me")
    reply = _explain(tmp_path, "192.0.2.1", "10.0.0.1/icmp:0")
    assert (reply.verdict, reply.rule.policy) == ("deny", "(default-deny)")
    unreachable = _explain(tmp_path, "192.0.2.1", "10.0.0.1/icmp:3:1")
    assert (unreachable.packet.icmp_type, unreachable.packet.icmp_code) == (3, 1)
    assert unreachable.to_json()["packet"]["text"].startswith("icmp type 3 code 1 ")


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_forwarded_packet_walks_the_forward_chain(tmp_path, backend):
    allowed = _explain(tmp_path, "10.1.1.1", "192.168.1.5/icmp", direction="forward",
                       out_iface="eth1", backend=backend)
    assert (allowed.verdict, allowed.stage, allowed.rule.policy) == ("allow", "filter", "routed")
    assert allowed.rule.index == 1
    assert allowed.path[-1].action == "RETURN"
    assert "ffi" in allowed.path[-1].chain and "eth0" in allowed.path[-1].chain
    denied = _explain(tmp_path, "203.0.113.7", "192.168.1.5/icmp", direction="forward",
                      out_iface="eth1", backend=backend)
    assert (denied.verdict, denied.stage, denied.rule.policy, denied.rule.index) == \
        ("deny", "filter", "routed", 0)
    other = _explain(tmp_path, "192.0.2.1", "192.168.1.5:80", direction="forward",
                     out_iface="eth1", backend=backend)
    assert (other.verdict, other.rule.policy) == ("deny", "(default-deny)")
    assert other.rule.direction == "forward"
    packet = allowed.to_json()["packet"]
    assert (packet["direction"], packet["iface"], packet["out_iface"], packet["icmp_type"]) == \
        ("forward", "eth0", "eth1", 8)


def test_forwarded_from_an_interface_no_forward_policy_covers(tmp_path):
    """eth1's host endpoint has no apply_on_forward policy: nodewall leaves its
    forwarding to the kernel (no chain takes it), whatever eth0's policies say."""
    e = _explain(tmp_path, "203.0.113.7", "10.1.1.1/icmp", direction="forward", iface="eth1",
                 out_iface="eth0")
    assert (e.verdict, e.stage, e.rule.id) == ("allow", None, None)


@pytest.mark.parametrize("dst", ["10.0.0.2/icmp:300", "10.0.0.2/tcp:8", "10.0.0.2/icmpv6",
                                 "10.0.0.2/icmp:1:2:3"])
def test_bad_icmp_packets_are_input_errors(dst):
    with pytest.raises(InputError):
        parse_packet("10.0.0.1", dst, iface="eth0", direction="ingress")


def test_a_forwarded_packet_needs_its_out_interface():
    """Without it the out-endpoint's forward chain (and its default deny) cannot be
    walked, so explain would answer for half the path."""
    with pytest.raises(InputError, match="leaves by an interface"):
        parse_packet("10.1.1.1", "192.168.1.5/icmp", iface="eth0", direction="forward")


def test_text_lines_put_the_verdict_first_when_asked(tmp_path):
    """The TUI's dialog: at 80x24 the answer shows before the path."""
    e = _explain(tmp_path, "203.0.113.7", "192.168.1.5/icmp", direction="forward",
                 out_iface="eth1")
    plain, first = e.text_lines(), e.text_lines(verdict_first=True)
    assert sorted(plain) == sorted(first) and plain[0] == first[0]
    assert plain[-1].startswith("verdict:") and first[1].startswith("verdict:")
