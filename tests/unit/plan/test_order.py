"""evaluation_order: rule ids in the order the kernel meets them (status groups and
sorts by it)."""
from __future__ import annotations

from nodewall.engine.plan.order import evaluation_order
from nodewall.engine.plan.planner import plan
from nodewall.engine.profile.loader import load_profiles

PROFILE = """
[settings]
backend = "iptables"
failsafe_inbound = ["tcp:22"]
failsafe_outbound = []
[[host_endpoints]]
name = "h"
interface = "eth0"
[[policies]]
name = "b-web"
order = 20
selector = "all()"
types = ["ingress"]
  [[policies.ingress]]
  action = "allow"
  protocol = "tcp"
  destination = { ports = [80] }
[[policies]]
name = "a-late"
order = 30
selector = "all()"
types = ["ingress"]
  [[policies.ingress]]
  action = "allow"
  protocol = "tcp"
  destination = { ports = [443] }
[[policies]]
name = "z-untracked"
order = 90
selector = "all()"
do_not_track = true
apply_on_forward = true
types = ["ingress", "egress"]
  [[policies.ingress]]
  action = "allow"
  protocol = "udp"
  [[policies.egress]]
  action = "allow"
  protocol = "udp"
"""


def test_raw_before_filter_policies_by_order_default_deny_last(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(PROFILE)
    desired = plan(load_profiles([path]))
    order = evaluation_order(desired)
    first = {}
    for rid, place in order.items():
        meta = desired.rules[rid]
        key = (meta.policy, meta.direction)
        first[key] = min(first.get(key, place), place)
    assert first[("z-untracked", "ingress")] < first[("b-web", "ingress")]  # raw first
    assert first[("b-web", "ingress")] < first[("a-late", "ingress")]  # order, not name
    assert first[("a-late", "ingress")] < first[("(default-deny)", "ingress")]
    assert set(order) <= set(desired.rules)
    assert sorted(order.values()) == list(range(len(order)))


def test_ndp_sits_between_conntrack_established_and_invalid(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(PROFILE)
    desired = plan(load_profiles([path]))
    order = evaluation_order(desired)
    place = {}
    for rid, i in order.items():
        m = desired.rules[rid]
        if m.direction == "ingress":
            place[m.summary.split(" (")[0]] = i
    est = place["accept conntrack RELATED,ESTABLISHED ingress"]
    ndp = place["accept ICMPv6 130-136 ingress"]
    invalid = place["drop conntrack INVALID ingress"]
    assert est < ndp < invalid
