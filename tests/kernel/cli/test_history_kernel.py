"""Generation history and the automation contract through the CLI in a namespace:
history with origins and outcomes, show, diff --from --to, rollback --to, history
after flush; apply --check -o json with "changed" and structured plan entries."""
from __future__ import annotations

import json

import pytest

from tests.conftest import IS_ROOT
from tests.helpers.safety_kit import fingerprint, nw, status, write_profile

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(not IS_ROOT, reason="kernel test: needs root for namespaces")]


def _json(ns, state, *args, code: int = 0) -> dict:
    out = nw(ns, state, *args, "--output", "json", check=False)
    assert out.returncode == code, (args, out.returncode, out.stderr)
    return json.loads(out.stdout)


def test_history_show_diff_and_rollback_to(netns_pair, tmp_path):
    ns, state = netns_pair.server, tmp_path / "state"
    a = write_profile(tmp_path, "a", iface="srv0", members=8, rules=2, variant=1)
    b = write_profile(tmp_path, "b", iface="srv0", members=8, rules=3, variant=2)
    c = write_profile(tmp_path, "c", iface="srv0", rules=1, variant=3)
    nw(ns, state, "apply", "--origin", "ansible", str(a))
    fp_a = fingerprint(ns)
    nw(ns, state, "apply", "--confirm-timeout", "60", str(b))
    _json(ns, state, "confirm")
    nw(ns, state, "apply", "--origin", "agent", str(c))

    gens = _json(ns, state, "history")["generations"]
    assert [(g["generation"], g["origin"], g["outcome"]) for g in gens] == [
        (1, "ansible", "kept"), (2, "cli", "kept"), (3, "agent", "in force")]
    assert gens[0]["files"][0]["name"] == "profiles/00-a.toml"
    assert len(gens[0]["files"][0]["sha256"]) == 64 and gens[0]["content"]

    shown = _json(ns, state, "show", "2")
    assert "ports2" in shown["profiles"][0]["text"]
    assert {r["policy"] for r in shown["rules"]} >= {"deny-big", "ports2"}

    d = _json(ns, state, "diff", "--from", "1", "--to", "2")
    assert {r["policy"] for r in d["plan"]["rules_added"]} >= {"ports2"}
    assert {r["policy"] for r in d["plan"]["rules_removed"]} >= {"ports1"}
    assert any(line.startswith("+") and "ports2" in line for line in d["profile_diff"])
    assert "generation 1 -> 2" in nw(ns, state, "diff", "--from", "1", "--to", "2").stdout

    assert _json(ns, state, "rollback", "--to", "1") == {"generation": 1}
    assert fingerprint(ns) == fp_a and status(ns, state)["generation"] == 1
    outcomes = {g["generation"]: g["outcome"] for g in _json(ns, state, "history")["generations"]}
    assert outcomes == {1: "in force", 2: "kept", 3: "rolled back"}

    err = _json(ns, state, "rollback", "--to", "42", code=6)
    assert err["exit"] == 6 and "not recorded" in err["error"]["message"]
    assert _json(ns, state, "rollback", "--to", "1", code=3)["exit"] == 3
    assert _json(ns, state, "confirm", code=6)["error"]["kind"] == "NothingPending"

    assert _json(ns, state, "flush")["flushed"] is True
    after = _json(ns, state, "history")["generations"]
    assert [g["generation"] for g in after] == [1, 2, 3]
    assert after[0]["outcome"] == "flushed" and not any(g["current"] for g in after)
    assert "nothing applied" in nw(ns, state, "status").stdout


def test_apply_check_json_says_changed_and_structures_the_plan(netns_pair, tmp_path):
    ns, state = netns_pair.server, tmp_path / "state"
    a = write_profile(tmp_path, "a", iface="srv0", members=4, rules=2, variant=1)
    b = write_profile(tmp_path, "b", iface="srv0", members=4, rules=1, variant=1)
    first = _json(ns, state, "apply", "--check", str(a))
    assert (first["changed"], first["check"]) == (True, True)
    entries = first["plan"]["entries"]
    assert entries and {e["op"] for e in entries} <= {"add", "remove", "change"}
    rules = [e for e in entries if e["rule_id"] and e["rule_id"] != "hook"]
    assert {e["policy"] for e in rules} >= {"ports1", "deny-big", "(default-deny)"}
    assert all(e["table"] in ("raw", "mangle", "filter", "ipset") for e in entries)
    assert all(e["text"] for e in entries)

    nw(ns, state, "apply", str(a))
    same = _json(ns, state, "apply", "--check", str(a), code=3)
    assert same["changed"] is False and same["exit"] == 3
    assert same["error"]["kind"] == "NothingToDo"

    # a removed rule carries the policy it had (from the generation in place)
    shrink = _json(ns, state, "diff", str(b))
    removed = [e for e in shrink["entries"] if e["op"] == "remove" and e["rule_id"]]
    assert removed and {e["policy"] for e in removed} == {"ports1"}
    assert all(e["summary"].startswith("allow tcp") for e in removed)
    text = nw(ns, state, "diff", str(b)).stdout.splitlines()
    assert any(line.startswith("- filter v4 nw-fi-srv0") and "[ports1: allow tcp" in line
               for line in text), text
    assert text[-1].startswith("0 rule(s) added, 1 removed;"), text
