"""One-line rule summaries and chain naming."""
from __future__ import annotations

import pytest
from nodewall.engine.plan.describe import failsafe_summary, rule_summary
from nodewall.engine.plan.naming import endpoint_chain, top_chain
from nodewall.engine.profile.model import EntityMatch, IcmpMatch

from tests.helpers.planner_kit import fs, ports, rule


@pytest.mark.parametrize("r,text", [
    (rule("allow", protocol="tcp", src=EntityMatch(nets=("10.0.0.0/8",)),
          dst=EntityMatch(ports=ports(6379))), "allow tcp from 10.0.0.0/8 to port 6379"),
    (rule("deny"), "deny all"),
    (rule("deny", src=EntityMatch(selector="list=='drop'")),
     'deny from selector list == "drop"'),
    (rule("allow", protocol="tcp", dst=EntityMatch(ports=ports(22, "8000:8080"))),
     "allow tcp to ports 22,8000:8080"),
    (rule("allow", protocol="icmp", icmp=IcmpMatch(8, 0)), "allow icmp type 8 code 0"),
    (rule("allow", protocol="icmpv6", not_icmp=IcmpMatch(128)),
     "allow icmpv6 not icmpv6 type 128"),
    (rule("log", not_protocol="udp", ip_version=6), "log IPv6 not udp"),
    (rule("pass", src=EntityMatch(nets=("10.0.0.1/32", "10.0.0.2/32", "10.0.0.3/32",
                                        "10.0.0.4/32", "10.0.0.5/32"))),
     "pass from 10.0.0.1/32, 10.0.0.2/32, 10.0.0.3/32 +2 more"),
    (rule("allow", protocol="udp",
          src=EntityMatch(not_nets=("192.0.2.0/24",), not_selector="has(bad)",
                          not_ports=ports(53)),
          dst=EntityMatch(nets=("198.51.100.1/32",), not_ports=ports("1:1023"))),
     ("allow udp from not 192.0.2.0/24 not selector has(bad) not port 53 "
     "to 198.51.100.1/32 not ports 1:1023")),
])
def test_rule_summary(r, text):
    assert rule_summary(r) == text


def test_rule_summary_with_note():
    assert rule_summary(rule("deny"), "selector matches nothing") == \
        "deny all (selector matches nothing)"


def test_failsafe_summary():
    assert failsafe_summary(fs("tcp:22"), "ingress") == "failsafe inbound tcp:22"
    assert failsafe_summary(fs("udp:53@10.0.0.0/8"), "egress", reverse=True) == \
        "return traffic of failsafe outbound udp:53@10.0.0.0/8"


def test_chain_names():
    assert top_chain("INPUT") == "nw-INPUT"
    assert endpoint_chain("rfi", "eth0") == "nw-rfi-eth0"
    assert endpoint_chain("fi", "*") == "nw-fi-:all"
    assert endpoint_chain("ffo", "a" * 15) == "nw-ffo-" + "a" * 15  # longest real ifname
    long1, long2 = endpoint_chain("ffo", "x" * 40 + "1"), endpoint_chain("ffo", "x" * 40 + "2")
    assert len(long1) <= 28 and long1 != long2
