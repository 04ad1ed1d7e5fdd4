"""How many nftables transactions an apply commits, counted by the kernel's nft
generation id (+1 per commit in the namespace): one for rules and small sets
together, one for a set delta alone (small or big), two when a big set and the rules
change together (the set's netlink transaction, then the ruleset batch)."""
from __future__ import annotations

import pytest
from nodewall.engine.dataplane.nftables import netlink
from nodewall.engine.dataplane.nftables.sets import INLINE_MAX
from nodewall.engine.system import netns

from tests.conftest import IS_ROOT, in_ns
from tests.helpers.safety_kit import nw, status

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(not IS_ROOT, reason="kernel test: needs root for namespaces")]

PROFILE = """[settings]
backend = "nftables"
failsafe_inbound = ["tcp:22"]
failsafe_outbound = []
[[host_endpoints]]
name = "srv"
interface = "srv0"
labels = {{ role = "srv" }}
[[network_sets]]
name = "small"
labels = {{ list = "small" }}
nets_file = "small.txt"
[[network_sets]]
name = "big"
labels = {{ list = "big" }}
nets_file = "big.txt"
[[policies]]
name = "deny-lists"
order = 10
selector = "all()"
types = ["ingress"]
  [[policies.ingress]]
  action = "deny"
  source = {{ selector = 'list == "small"' }}
  [[policies.ingress]]
  action = "deny"
  source = {{ selector = 'list == "big"' }}
  [[policies.ingress]]
  action = "allow"
  protocol = "tcp"
  destination = {{ ports = [{port}] }}
"""


def _lists(d, small_extra: str = "", big_extra: str = "") -> None:
    (d / "small.txt").write_text("".join(f"10.1.{i}.0/24\n" for i in range(0, 200, 2))
                                 + small_extra)
    # apart from each other: every member is one range of the interval set
    (d / "big.txt").write_text("".join(f"10.{100 + i // 250}.{i % 250}.0/25\n"
                                       for i in range(INLINE_MAX + 1000)) + big_extra)


def _commits(ns: str, state, profile) -> int:
    before = netns.run_in_netns(ns, netlink.generation)
    nw(ns, state, "apply", str(profile))
    return netns.run_in_netns(ns, netlink.generation) - before


def _deny_big_hits(ns: str, state) -> int:
    return sum(r["packets"] for r in status(ns, state)["rules"]
               if r["policy"] == "deny-lists" and r["index"] == 1)


def test_transactions_per_apply(netns_pair, tmp_path):
    ns, state = netns_pair.server, tmp_path / "state"
    profile = tmp_path / "p.toml"
    _lists(tmp_path)
    profile.write_text(PROFILE.format(port=2222))
    assert _commits(ns, state, profile) == 3  # declare big, fill big, rules + small set

    profile.write_text(PROFILE.format(port=2223))  # a rule
    _lists(tmp_path, small_extra="10.2.0.0/24\n")  # and the small set
    assert _commits(ns, state, profile) == 1

    netns_pair.add_client_address("10.100.0.9/24")  # in the big set
    in_ns(netns_pair.client, "ping", "-c", "2", "-W", "1", "-I", "10.100.0.9",
          netns_pair.server_ip, check=False)
    hits = _deny_big_hits(ns, state)
    assert hits >= 2
    _lists(tmp_path, small_extra="10.2.0.0/24\n", big_extra="10.250.0.0/24\n")
    assert _commits(ns, state, profile) == 1  # the big set's delta alone
    assert _deny_big_hits(ns, state) == hits  # the rules were not rewritten
    _lists(tmp_path, small_extra="10.3.0.0/24\n", big_extra="10.250.0.0/24\n")
    assert _commits(ns, state, profile) == 1  # the small set's delta alone

    profile.write_text(PROFILE.format(port=2224))
    _lists(tmp_path, small_extra="10.3.0.0/24\n", big_extra="10.251.0.0/24\n")
    assert _commits(ns, state, profile) == 2  # big set, then rules
    report = status(ns, state)
    assert report["drift"] == []
    nw(ns, state, "flush")
