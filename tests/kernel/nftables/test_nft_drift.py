"""Drift on the nftables packet filter: changes made by hand to nodewall's table
(a rule deleted, a hook jump deleted, a member swapped in a nets_file set with the
count unchanged, a member added to an inline set) are reported by status and
repaired by apply and by `agent --once`."""
from __future__ import annotations

import json

import pytest

from tests.conftest import IS_ROOT, in_ns
from tests.helpers.safety_kit import nw, status, write_profile
from tests.kernel.safety.test_safety_drift import INLINE

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(not IS_ROOT, reason="kernel test: needs root for namespaces")]


def _table(ns: str) -> list[dict]:
    return json.loads(in_ns(ns, "nft", "-j", "list", "table", "inet", "nodewall").stdout)[
        "nftables"]


def _set(ns: str, prefix: str) -> str:
    return next(i["set"]["name"] for i in _table(ns) if "set" in i
                and i["set"]["name"].startswith(prefix))


def _has(ns: str, name: str, addr: str) -> bool:
    return in_ns(ns, "nft", "get", "element", "inet", "nodewall", name, f"{{ {addr} }}",
                 check=False).returncode == 0


def _by_hand(ns: str) -> tuple[str, str]:
    """Returns (nets_file set, the member swapped out of it)."""
    rules = [i["rule"] for i in _table(ns) if "rule" in i]
    victim = next(r for r in rules if r["chain"] == "filter4-nw-fi-srv0")
    in_ns(ns, "nft", "delete", "rule", "inet", "nodewall", "filter4-nw-fi-srv0",
          "handle", str(victim["handle"]))
    hook = next(r for r in rules if r["chain"] == "filter-output")
    in_ns(ns, "nft", "delete", "rule", "inet", "nodewall", "filter-output",
          "handle", str(hook["handle"]))
    big = _set(ns, "nw-n4-")
    assert _has(ns, big, "30.0.0.0/30") and not _has(ns, big, "30.0.0.4")
    in_ns(ns, "nft", "delete", "element", "inet", "nodewall", big, "{ 30.0.0.0/30 }")
    in_ns(ns, "nft", "add", "element", "inet", "nodewall", big, "{ 198.51.100.0/30 }")
    inline = _set(ns, "nw-sn4-")
    in_ns(ns, "nft", "add", "element", "inet", "nodewall", inline, "{ 10.9.99.0/24 }")
    return big, "30.0.0.1"


def test_drift_on_nftables_is_reported_and_repaired(netns_pair, tmp_path):
    ns, state = netns_pair.server, tmp_path / "state"
    profile = write_profile(tmp_path / "profiles", "p", iface="srv0", members=200, rules=5,
                            extra=INLINE, backend="nftables")
    # members apart from each other: each is one range of the nft set (adjacent ones merge)
    (profile.parent / "p-nets.txt").write_text("".join(f"30.0.{i}.0/30\n" for i in range(200)))
    nw(ns, state, "apply", str(profile))
    assert status(ns, state)["drift"] == []

    big, swapped = _by_hand(ns)
    drift = "\n".join(status(ns, state)["drift"])
    assert "chain 4/filter/nw-fi-srv0 was changed (1 rule block(s) missing" in drift, drift
    assert "hook 4/filter/OUTPUT->nw-OUTPUT is missing" in drift
    assert f"ipset {big} was changed outside nodewall (other members)" in drift
    assert "nw-sn4-" in drift and "ranges, applied" in drift
    assert nw(ns, state, "apply", "--check", str(profile), check=False).returncode == 0
    nw(ns, state, "apply", str(profile))
    assert status(ns, state)["drift"] == []
    assert _has(ns, big, swapped) and not _has(ns, big, "198.51.100.1")

    _by_hand(ns)
    once = nw(ns, state, "agent", "--once", "--profiles", str(profile.parent))
    assert "drift item(s))" in once.stderr
    assert status(ns, state)["drift"] == []
    assert _has(ns, big, swapped) and not _has(ns, big, "198.51.100.1")
    nw(ns, state, "flush")


def _rules(ns: str, chain: str) -> list[dict]:
    return [i["rule"] for i in _table(ns) if "rule" in i and i["rule"]["chain"] == chain]


def _content(rule: dict) -> list:
    """A rule's expressions without counter values (what an edit changes)."""
    return [{"counter": None} if "counter" in e else e for e in rule["expr"]]


CHAINS = ("filter4-nw-fi-srv0", "filter-input")


def _contents(ns: str) -> list[tuple[str, str, str]]:
    """(chain, comment, expressions) of the rules of CHAINS, in order."""
    return [(c, r.get("comment", ""), json.dumps(_content(r), sort_keys=True))
            for c in CHAINS for r in _rules(ns, c)]


def _edit_in_place(ns: str) -> list[tuple[str, str, str]]:
    """`nft replace rule … handle N` of a port allow into another port and of the
    IPv4 input hook jump into a UDP-only one, keeping their comments "nw:<id>"
    (issue 15: drift by content).  Returns _contents() before the edits."""
    before = _contents(ns)
    chain = "filter4-nw-fi-srv0"
    victim = next(r for r in _rules(ns, chain) if "1000" in json.dumps(r["expr"]))
    in_ns(ns, "nft", "replace", "rule", "inet", "nodewall", chain, "handle",
          str(victim["handle"]), "meta", "l4proto", "tcp", "tcp", "dport", "9999", "counter",
          "accept", "comment", json.dumps(victim["comment"]))
    hook = next(r for r in _rules(ns, "filter-input") if "ipv4" in json.dumps(r["expr"]))
    in_ns(ns, "nft", "replace", "rule", "inet", "nodewall", "filter-input", "handle",
          str(hook["handle"]), "meta", "nfproto", "ipv4", "meta", "l4proto", "udp", "counter",
          "jump", "filter4-nw-INPUT", "comment", json.dumps(hook["comment"]))
    after = _contents(ns)
    assert [r[:2] for r in after] == [r[:2] for r in before]
    assert sum(a != b for a, b in zip(after, before, strict=True)) == 2
    return before


def test_a_rule_edited_in_place_on_nftables_is_drift_and_repaired(netns_pair, tmp_path):
    ns, state = netns_pair.server, tmp_path / "state"
    profile = write_profile(tmp_path / "profiles", "p", iface="srv0", members=20, rules=5,
                            backend="nftables")
    nw(ns, state, "apply", str(profile))
    assert status(ns, state)["drift"] == []

    before = _edit_in_place(ns)
    drift = status(ns, state)["drift"]
    assert any(d.startswith("chain 4/filter/nw-fi-srv0 was changed (1 rule block(s) "
                            "edited in place") for d in drift), drift
    assert "hook 4/filter/INPUT->nw-INPUT was edited in place (it no longer matches every " \
        "packet of its family)" in drift
    diff = nw(ns, state, "diff", str(profile)).stdout
    assert "~ nft chain filter4-nw-fi-srv0: 1 rule block(s) edited in place, replaced: " \
        "their counters are lost" in diff
    assert "~ nft chain filter-input: 1 rule block(s) edited in place" in diff
    assert nw(ns, state, "apply", "--check", str(profile), check=False).returncode == 0
    nw(ns, state, "apply", str(profile))
    assert _contents(ns) == before and status(ns, state)["drift"] == []
    assert nw(ns, state, "apply", "--check", str(profile), check=False).returncode == 3

    _edit_in_place(ns)
    once = nw(ns, state, "agent", "--once", "--profiles", str(profile.parent))
    assert "edited in place" in once.stderr and "drift item(s))" in once.stderr
    assert _contents(ns) == before and status(ns, state)["drift"] == []

    # a nets_file reload and another rule changing leave the other digests valid
    (profile.parent / "p-nets.txt").write_text("".join(f"31.0.{i}.0/30\n" for i in range(20)))
    profile.write_text(profile.read_text().replace('"10.0.4.0/24"', '"10.0.44.0/24"'))
    nw(ns, state, "apply", str(profile))
    assert status(ns, state)["drift"] == []
    nw(ns, state, "rollback")
    assert status(ns, state)["drift"] == []
    _edit_in_place(ns)
    assert sum("edited in place" in d for d in status(ns, state)["drift"]) == 2
    nw(ns, state, "flush")
