"""Other tools' rules found in an iptables-save listing: nodewall ipsets used by them,
and their raw NOTRACK rules when nodewall's filter accepts untracked packets."""
from __future__ import annotations

from nodewall.engine.dataplane.iptables.dataplane import _foreign_in_save

NW_ACCEPT = ("-A nw-INPUT -m conntrack --ctstate UNTRACKED -m comment --comment "
             "\"nw:(untracked)\" -j ACCEPT")
FOREIGN_NOTRACK = "-A PREROUTING -p udp -m udp --dport 53 -j CT --notrack"


def _save(raw: list[str], filter_: list[str]) -> list[str]:
    return ["*raw", ":PREROUTING ACCEPT [0:0]", *raw, "COMMIT",
            "*filter", ":INPUT ACCEPT [0:0]", *filter_, "COMMIT"]


def test_a_foreign_notrack_is_reported_when_nodewall_accepts_untracked():
    found = _foreign_in_save(4, _save([FOREIGN_NOTRACK], [NW_ACCEPT]))
    assert len(found) == 1 and "NOTRACKs packets" in found[0] and FOREIGN_NOTRACK in found[0]


def test_a_foreign_notrack_is_quiet_when_nodewall_accepts_no_untracked_packet():
    assert _foreign_in_save(4, _save([FOREIGN_NOTRACK], ["-A nw-INPUT -j DROP"])) == []


def test_nodewall_own_notrack_and_a_foreign_notrack_outside_raw_are_not_reported():
    own = "-A nw-rpi-eth0 -p tcp --dport 6379 -m comment --comment \"nw:abc\" -j CT --notrack"
    assert _foreign_in_save(6, _save([own], [NW_ACCEPT])) == []
    assert _foreign_in_save(4, ["*mangle", FOREIGN_NOTRACK, "COMMIT", "*filter", NW_ACCEPT,
                                "COMMIT"]) == []


def test_a_foreign_rule_using_a_nodewall_set_is_reported():
    line = "-A INPUT -m set --match-set nw-n4-blocklist-0a1b2c src -j DROP"
    found = _foreign_in_save(4, _save([], [line]))
    assert found and "uses a nodewall ipset" in found[0]
