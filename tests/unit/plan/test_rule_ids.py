"""Rule ids: equal id <=> equal rendered block; edits elsewhere keep ids."""
from __future__ import annotations

import re
from dataclasses import replace

from nodewall.engine.errors import Loc
from nodewall.engine.plan.planner import plan
from nodewall.engine.plan.rule_ids import (
    ID_LENGTH,
    assign_dup_indexes,
    policy_rule_id,
    synthetic_id,
)
from nodewall.engine.profile.model import EntityMatch

from tests.helpers.planner_kit import hep, netset, policy, policy_ids, ports, profile, rule


def _ids(*rules_, sets=(), name="p", tier="normal", heps=None):
    pol = policy(name, ingress=tuple(rules_), tier=tier)
    return policy_ids(plan(profile(heps=heps or [hep()], sets=sets, policies=[pol])), name)


R1 = rule("allow", protocol="tcp", dst=EntityMatch(ports=ports(22)))
R2 = rule("deny", src=EntityMatch(nets=("10.0.0.0/8", "192.168.0.0/16")))


def test_id_shape():
    rid = synthetic_id("failsafe", "ingress", "tcp:22")
    assert len(rid) == ID_LENGTH and re.fullmatch(r"[A-Za-z0-9_-]+", rid)
    assert rid == synthetic_id("failsafe", "ingress", "tcp:22")
    assert rid != synthetic_id("failsafe", "egress", "tcp:22")


def test_editing_rule_one_keeps_rule_two_id():
    a = _ids(R1, R2)
    b = _ids(replace(R1, destination=EntityMatch(ports=ports(2222))), R2)
    assert a[0] != b[0] and a[1] == b[1]


def test_inserting_a_rule_before_keeps_later_ids():
    a = _ids(R1, R2)
    b = _ids(rule("log"), R1, R2)
    assert b[1:] == a


def test_locations_do_not_change_ids():
    moved = replace(R1, loc=Loc("other.toml", 99, 5),
                    destination=replace(R1.destination, loc=Loc("other.toml", 99, 20)))
    assert _ids(moved) == _ids(R1)


def test_policy_name_direction_and_tier_are_part_of_the_id():
    base = _ids(R1)
    assert _ids(R1, name="q") != base
    assert _ids(R1, tier="untracked") != base
    pol = policy("p", egress=(R1,))
    d = plan(profile(heps=[hep()], policies=[pol]))
    assert policy_ids(d, "p", "egress") != base


def test_identical_rules_get_distinct_ids_by_duplicate_index():
    a = _ids(R1, R1, R2, R1)
    assert len(set(a)) == 4
    # the first copy's id does not depend on the later copies
    assert _ids(R1)[0] == a[0]


def test_selector_canonical_form_not_spelling_decides():
    ns = netset("b", ("10.0.0.0/8",), {"list": "drop"})
    a = _ids(rule("deny", src=EntityMatch(selector="list == 'drop'")), sets=[ns])
    b = _ids(rule("deny", src=EntityMatch(selector='list=="drop"')), sets=[ns])
    assert a == b


def test_changing_the_set_a_selector_resolves_to_changes_the_id():
    r = rule("deny", src=EntityMatch(selector='list == "drop"'))
    one = netset("one", ("10.0.0.0/8",), {"list": "drop"})
    two = netset("two", ("10.0.0.0/8",), {"list": "drop"})
    other = netset("two", ("10.0.0.0/8",), {"list": "keep"})
    base = _ids(r, sets=[one])
    assert _ids(r, sets=[two]) != base  # resolves to another set
    assert _ids(r, sets=[one, two]) != base  # now a list:set
    assert _ids(r, sets=[one, other]) == base  # unrelated set: same rendering
    # the members of a set do not change the rendered rule (only the set contents)
    assert _ids(r, sets=[replace(one, nets=("10.9.0.0/16",))]) == base


def test_selected_host_endpoint_addresses_are_part_of_the_id():
    r = rule("allow", src=EntityMatch(selector='role == "peer"'))
    peer = hep("peer", "eth1", ("192.0.2.7",), role="peer")
    base = _ids(r, heps=[hep(), peer])
    assert _ids(r, heps=[hep(), replace(peer, expected_ips=("192.0.2.8",))]) != base


def test_rule_nets_set_name_follows_the_id():
    d1 = plan(profile(heps=[hep()], policies=[policy("p", ingress=(R2,))]))
    d2 = plan(profile(heps=[hep()], policies=[policy("p", ingress=(rule("log"), R2))]))
    assert {s.name for s in d1.ipsets} == {s.name for s in d2.ipsets}
    changed = replace(R2, source=EntityMatch(nets=("10.0.0.0/8", "172.16.0.0/12")))
    d3 = plan(profile(heps=[hep()], policies=[policy("p", ingress=(changed,))]))
    assert {s.name for s in d3.ipsets}.isdisjoint({s.name for s in d1.ipsets})


def test_assign_dup_indexes():
    assert assign_dup_indexes([{"a": 1}, {"b": 1}, {"a": 1}, {"a": 1}]) == [0, 0, 1, 2]


def test_policy_rule_id_hashes_every_input():
    base = policy_rule_id("p", "normal", "ingress", {"x": 1}, {}, 0)
    assert base == policy_rule_id("p", "normal", "ingress", {"x": 1}, {}, 0)
    variants = [("q", "normal", "ingress", {"x": 1}, {}, 0),
                ("p", "untracked", "ingress", {"x": 1}, {}, 0),
                ("p", "normal", "egress", {"x": 1}, {}, 0),
                ("p", "normal", "ingress", {"x": 2}, {}, 0),
                ("p", "normal", "ingress", {"x": 1}, {"s": "nw-a"}, 0),
                ("p", "normal", "ingress", {"x": 1}, {}, 1)]
    assert len({policy_rule_id(*v) for v in variants} | {base}) == len(variants) + 1
