"""engine.plan.disjoint: which Matches can never take one packet, and the raw endpoint
chain order that moves failsafe rules no untracked rule can meet behind them."""
from __future__ import annotations

import ipaddress
import itertools

import pytest
from nodewall.engine.plan.desired import ChainRule, Match, Target
from nodewall.engine.plan.disjoint import disjoint, failsafe_last
from nodewall.engine.profile.model import PortRange

P = PortRange


def ports(*ns: int) -> tuple[PortRange, ...]:
    return tuple(P(n, n) for n in ns)


@pytest.mark.parametrize(("a", "b", "apart"), [
    (Match(protocol="tcp"), Match(protocol="udp"), True),
    (Match(protocol="tcp"), Match(protocol="6"), False),  # the same protocol by number
    (Match(protocol="tcp"), Match(not_protocol="tcp"), True),
    (Match(protocol="tcp"), Match(), False),
    (Match(protocol="tcp", dst_ports=ports(22)), Match(protocol="tcp", dst_ports=ports(6379)),
     True),
    (Match(protocol="tcp", dst_ports=(P(6000, 7000),)),
     Match(protocol="tcp", dst_ports=ports(6379)), False),
    # one side's destination port, the other's source port: both may hold
    (Match(protocol="tcp", dst_ports=ports(443)), Match(protocol="tcp", src_ports=ports(6379)),
     False),
    (Match(protocol="tcp", src_ports=ports(22)), Match(protocol="tcp", src_ports=ports(6379)),
     True),
    (Match(protocol="tcp", dst_ports=ports(22)),
     Match(protocol="tcp", not_dst_ports=(P(1, 1024),)), True),
    (Match(src_net="10.0.0.0/8"), Match(src_net="192.0.2.0/24"), True),
    (Match(src_net="10.0.0.0/8"), Match(src_net="10.1.0.0/16"), False),
    (Match(src_net="10.1.0.0/16"), Match(not_src_net="10.0.0.0/8"), True),
    (Match(dst_net="10.0.0.0/8"), Match(src_net="192.0.2.0/24"), False),
    (Match(protocol="icmp", icmp_type=8), Match(protocol="icmp", icmp_type=0), True),
    (Match(protocol="icmp", icmp_type=3, icmp_code=1),
     Match(protocol="icmp", icmp_type=3, icmp_code=4), True),
    (Match(protocol="icmp", icmp_type=3), Match(protocol="icmp", icmp_type=3, icmp_code=4),
     False),
    # set membership is not known to the planner: never disjoint
    (Match(src_sets=("nw-a",)), Match(protocol="tcp", src_net="10.0.0.0/8"), False),
])
def test_disjoint(a, b, apart):
    assert disjoint(a, b) is apart
    assert disjoint(b, a) is apart


# ------------------------------------------------------------------ the reorder keeps verdicts

def _takes(m: Match, pkt: tuple[str, int, int, str, str]) -> bool:
    """A tiny evaluator for the fields the rules below use."""
    proto, sport, dport, src, dst = pkt
    if m.protocol is not None and m.protocol != proto:
        return False
    for rs, port, neg in ((m.src_ports, sport, False), (m.dst_ports, dport, False),
                          (m.not_src_ports, sport, True), (m.not_dst_ports, dport, True)):
        if rs and any(r.first <= port <= r.last for r in rs) == neg:
            return False
    for net, addr in ((m.src_net, src), (m.dst_net, dst)):
        if net is not None and ipaddress.ip_address(addr) not in ipaddress.ip_network(net):
            return False
    return True


def _verdict(rules: list[ChainRule], pkt) -> str | None:
    return next((r.rule_id for r in rules if _takes(r.match, pkt)), None)


ACCEPT = Target("ACCEPT")
FAILSAFE = [
    ChainRule("fs-tcp22", Match(protocol="tcp", dst_ports=ports(22)), ACCEPT),
    ChainRule("fs-udp68", Match(protocol="udp", dst_ports=ports(68)), ACCEPT),
    ChainRule("fs-ret-udp53", Match(protocol="udp", src_ports=ports(53)), ACCEPT),
    ChainRule("fs-ret-tcp443", Match(protocol="tcp", src_ports=ports(443),
                                     src_net="10.0.0.0/8"), ACCEPT),
]
POLICIES = [
    [ChainRule("allow-redis", Match(protocol="tcp", dst_ports=ports(6379),
                                    src_net="10.0.0.0/8"), Target("JUMP", chain="nw-x"))],
    [ChainRule("deny-net", Match(src_net="192.0.2.0/24"), Target("DROP")),
     ChainRule("allow-udp", Match(protocol="udp", dst_ports=ports(5000)), ACCEPT)],
    [ChainRule("deny-all", Match(), Target("DROP"))],
    [],
]
PACKETS = list(itertools.product(("tcp", "udp"), (22, 53, 443, 1234), (22, 68, 5000, 6379),
                                 ("10.1.2.3", "192.0.2.9", "198.51.100.1"), ("10.0.0.1",)))


@pytest.mark.parametrize("policy", POLICIES)
def test_failsafe_last_gives_every_packet_the_same_first_match(policy):
    before = FAILSAFE + policy
    after = failsafe_last(FAILSAFE, policy)
    assert sorted(r.rule_id for r in after) == sorted(r.rule_id for r in before)
    assert all(_verdict(after, p) == _verdict(before, p) for p in PACKETS)


def test_failsafe_last_moves_only_what_no_policy_rule_can_meet():
    got = [r.rule_id for r in failsafe_last(FAILSAFE, POLICIES[0])]
    # the Redis allow may meet the return rule of tcp:443@10/8 (from 10/8:443 to :6379),
    # and that one may meet tcp:22 (from 10/8:443 to :22): both stay in front, in order
    assert got == ["fs-tcp22", "fs-ret-tcp443", "allow-redis", "fs-udp68", "fs-ret-udp53"]
    deny_all = [r.rule_id for r in failsafe_last(FAILSAFE, POLICIES[2])]
    assert deny_all == [r.rule_id for r in FAILSAFE] + ["deny-all"]  # Calico's order kept
