"""Drift (issue 5, item 6): changes made by hand to nodewall's chains, hooks and
sets are reported by status, and repaired by apply, by `agent --once` and by the
running agent."""
from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from tests.conftest import IS_ROOT, in_ns
from tests.helpers.safety_kit import fingerprint, nw, nw_cmd, status, write_profile

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(not IS_ROOT, reason="kernel test: needs root for namespaces")]

INLINE = """
[[policies]]
name = "inline-nets"
order = 30
selector = "all()"
  [[policies.ingress]]
  action = "allow"
  protocol = "udp"
  source = { nets = ["10.9.1.0/24", "10.9.2.0/24", "10.9.3.0/24"] }
[[policies.egress]]
action = "allow"
"""


def _sets(ns: str) -> list[str]:
    return [s for s in in_ns(ns, "ipset", "list", "-n").stdout.split() if s.startswith("nw-")]


def _by_hand(ns: str) -> None:
    """Five kinds of drift: a rule deleted, a hook deleted, a foreign rule above a
    hook, a member added to a big set, a member swapped in a small inline set."""
    rules = [ln for ln in in_ns(ns, "iptables-legacy-save", "-t", "filter").stdout.splitlines()
             if ln.startswith("-A nw-fi-srv0 ")]
    assert len(rules) > 3
    in_ns(ns, "iptables-legacy", "-t", "filter", "-D", "nw-fi-srv0", "3")
    in_ns(ns, "iptables-legacy", "-t", "filter", "-D", "OUTPUT", "-m", "comment",
          "--comment", "nw:hook", "-j", "nw-OUTPUT")
    in_ns(ns, "ip6tables-legacy", "-t", "filter", "-I", "INPUT", "1", "-p", "udp",
          "--dport", "9", "-j", "ACCEPT")
    big = next(s for s in _sets(ns) if s.startswith("nw-n4-"))
    in_ns(ns, "ipset", "add", big, "198.51.100.0/24")
    inline = next(s for s in _sets(ns) if s.startswith("nw-sn4-"))
    in_ns(ns, "ipset", "del", inline, "10.9.2.0/24")
    in_ns(ns, "ipset", "add", inline, "10.9.99.0/24")


def _check_reported(drift: list[str]) -> None:
    text = "\n".join(drift)
    assert "chain 4/filter/nw-fi-srv0 was changed (1 rule block(s) missing" in text, text
    assert "hook 4/filter/OUTPUT->nw-OUTPUT is missing" in text
    assert "hook 6/filter/INPUT->nw-INPUT is at position 2, not first" in text
    assert "nw-n4-" in text and "entries, applied" in text
    assert "nw-sn4-" in text and "(other members)" in text


@pytest.fixture
def applied(netns_pair, tmp_path):
    ns, state = netns_pair.server, tmp_path / "state"
    profile = write_profile(tmp_path / "profiles", "p", iface="srv0", members=2000,
                            rules=5, extra=INLINE)
    nw(ns, state, "apply", str(profile))
    assert status(ns, state)["drift"] == []
    return ns, state, profile, fingerprint(ns)


def test_drift_by_hand_is_reported_and_apply_repairs_it(applied):
    ns, state, profile, clean = applied
    _by_hand(ns)
    assert fingerprint(ns) != clean
    _check_reported(status(ns, state)["drift"])
    assert "DRIFT: chain 4/filter/nw-fi-srv0" in nw(ns, state, "status").stdout
    assert nw(ns, state, "apply", "--check", str(profile), check=False).returncode == 0
    nw(ns, state, "apply", str(profile))
    assert status(ns, state)["drift"] == []
    assert fingerprint(ns) == clean
    assert nw(ns, state, "apply", "--check", str(profile), check=False).returncode == 3


def test_agent_repairs_drift_once_and_continuously(applied):
    ns, state, profile, clean = applied
    _by_hand(ns)
    once = nw(ns, state, "agent", "--once", "--profiles", str(profile.parent))
    assert "drift: chain 4/filter/nw-fi-srv0" in once.stderr
    assert "drift item(s))" in once.stderr
    assert status(ns, state)["drift"] == [] and fingerprint(ns) == clean

    agent = subprocess.Popen(nw_cmd(ns, state, "agent", "--profiles", str(profile.parent),
                                    "--interval", "2"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert "reconciling" in agent.stderr.readline()
        # the first pass ends with "in place"; the hand edits then land between two
        # passes (2 s apart), so the next pass reads them as drift before repairing
        # (edits made during a pass are repaired by its apply without a drift line)
        assert "in place: generation" in agent.stderr.readline()
        _by_hand(ns)
        end = time.monotonic() + 30
        while time.monotonic() < end and fingerprint(ns) != clean:
            time.sleep(0.2)
        assert fingerprint(ns) == clean
        assert status(ns, state)["drift"] == []
    finally:
        agent.send_signal(signal.SIGTERM)
        rc = agent.wait(timeout=30)
    log = agent.stderr.read()
    assert rc == 0 and "drift: hook 4/filter/OUTPUT->nw-OUTPUT is missing" in log
    assert "stopped" in log


def test_agent_keeps_the_kernel_on_bad_input(applied, tmp_path):
    ns, state, profile, clean = applied
    (profile.parent / "zz-bad.toml").write_text('[[policies]]\nname = "x"\norder = "one"\n')
    out = nw(ns, state, "agent", "--once", "--profiles", str(profile.parent), check=False)
    assert out.returncode == 2 and "zz-bad.toml:3:" in out.stderr
    assert fingerprint(ns) == clean and status(ns, state)["generation"] == 1


def test_same_count_member_swap_in_a_nets_file_set_is_drift_and_repaired(netns_pair,
                                                                           tmp_path):
    """`ipset del` one member, `ipset add` another: the count stays, the content does
    not (issue 15, adversarial 5)."""
    ns, state = netns_pair.server, tmp_path / "state"
    nw(ns, state, "apply", str(write_profile(tmp_path, "a", iface="srv0", members=20)))
    sets = subprocess.run(["ip", "netns", "exec", ns, "ipset", "list", "-n"],
                          capture_output=True, text=True, check=True).stdout.split()
    name = next(s for s in sets if s.startswith("nw-n4-big"))

    def ipset(*args):
        return subprocess.run(["ip", "netns", "exec", ns, "ipset", *args],
                              capture_output=True, text=True, check=False)

    members = [line for line in ipset("list", name).stdout.splitlines()
               if line[:1].isdigit()]
    first = members[0]
    ipset("del", name, first)
    ipset("add", name, "198.51.100.0/30")
    drift = status(ns, state)["drift"]
    assert any(name in d and "other members" in d for d in drift), drift
    assert nw(ns, state, "apply", "--check", str(tmp_path / "a.toml"), check=False) \
        .returncode == 0
    nw(ns, state, "apply", str(tmp_path / "a.toml"))
    assert ipset("test", name, first).returncode == 0
    assert ipset("test", name, "198.51.100.1").returncode != 0
    assert status(ns, state)["drift"] == []


def _chain_rules(ns: str, chain: str) -> list[str]:
    return [ln for ln in in_ns(ns, "iptables-legacy-save", "-t", "filter").stdout.splitlines()
            if ln.startswith(f"-A {chain} ")]


def _replace(ns: str, chain: str, line: str, *spec: str) -> None:
    """`iptables -R` the rule `line` of `chain` by `spec`, keeping its comment."""
    rules = _chain_rules(ns, chain)
    rid = line.split("--comment ", 1)[1].split()[0].strip('"')
    in_ns(ns, "iptables-legacy", "-t", "filter", "-R", chain, str(rules.index(line) + 1),
          *spec, "-m", "comment", "--comment", rid)
    edited = _chain_rules(ns, chain)
    assert len(edited) == len(rules) and line not in edited
    assert sum(rid in ln for ln in edited) == 1


def _edit_in_place(ns: str) -> list[str]:
    """Three of nodewall's rules edited in place with `iptables -R`, keeping their
    `nw:<id>` comments (issue 15: drift by content): a port allow now allows another
    port, the nets_file deny now matches the (small) inline set, and the INPUT hook
    jumps for UDP only.  Returns the original lines."""
    rules = _chain_rules(ns, "nw-fi-srv0")
    port = next(ln for ln in rules if "--dports 1000 " in ln)
    deny = next(ln for ln in rules if "--match-set nw-n4-" in ln)
    inline = next(ln for ln in rules if "--match-set nw-sn4-" in ln)
    small = inline.split("--match-set ", 1)[1].split()[0]
    hook = next(ln for ln in _chain_rules(ns, "INPUT") if "nw:hook" in ln)
    _replace(ns, "nw-fi-srv0", port, "-p", "tcp", "--dport", "9999", "-j", "ACCEPT")
    _replace(ns, "nw-fi-srv0", deny, "-m", "set", "--match-set", small, "src", "-j", "DROP")
    _replace(ns, "INPUT", hook, "-p", "udp", "-j", "nw-INPUT")
    return [port, deny, hook]


def _filter_rules(ns: str) -> set[str]:
    return set(_chain_rules(ns, "nw-fi-srv0") + _chain_rules(ns, "INPUT"))


def test_a_rule_edited_in_place_is_drift_and_repaired(applied):
    """Same id, same count, other content: status reports it, diff and apply --check
    see a change, apply and `agent --once` put the original rule back."""
    ns, state, profile, clean = applied
    originals = _edit_in_place(ns)
    drift = status(ns, state)["drift"]
    assert any(d.startswith("chain 4/filter/nw-fi-srv0 was changed (2 rule block(s) "
                            "edited in place") for d in drift), drift
    assert "hook 4/filter/INPUT->nw-INPUT was edited in place (it no longer matches every " \
        "packet)" in drift
    diff = nw(ns, state, "diff", str(profile)).stdout
    assert "edited in place, replaced: its counters are lost" in diff, diff
    assert "(nw:hook, edited in place" in diff
    assert nw(ns, state, "apply", "--check", str(profile), check=False).returncode == 0
    nw(ns, state, "apply", str(profile))
    assert set(originals) <= _filter_rules(ns)
    assert fingerprint(ns) == clean and status(ns, state)["drift"] == []
    assert nw(ns, state, "apply", "--check", str(profile), check=False).returncode == 3

    _edit_in_place(ns)
    once = nw(ns, state, "agent", "--once", "--profiles", str(profile.parent))
    assert "drift: chain 4/filter/nw-fi-srv0 was changed" in once.stderr, once.stderr
    assert "edited in place" in once.stderr
    assert set(originals) <= _filter_rules(ns)
    assert fingerprint(ns) == clean and status(ns, state)["drift"] == []


def test_content_digests_survive_unrelated_applies_and_set_reloads(applied):
    """No false drift: an apply that changes another rule and the nets_file members,
    then one that drops the inline set, then a rollback (it reloads the nets_file set
    by a swap, and creates the inline set again at another kernel index: a foreign
    set took its slot) leave the digests of the rules they did not touch valid; an
    edit in place is still seen afterwards."""
    ns, state, profile, _ = applied
    nets = profile.parent / "p-nets.txt"
    nets.write_text("".join(f"31.0.{i // 64}.{(i % 64) * 4}/30\n" for i in range(2000)))
    text = profile.read_text()
    assert '"10.0.4.0/24"' in text and text.endswith(INLINE)
    text = text.replace('"10.0.4.0/24"', '"10.0.44.0/24"')  # one rule changes
    profile.write_text(text)
    nw(ns, state, "apply", str(profile))
    assert status(ns, state)["drift"] == []
    assert nw(ns, state, "apply", "--check", str(profile), check=False).returncode == 3
    inline = next(s for s in _sets(ns) if s.startswith("nw-sn4-"))

    profile.write_text(text[:-len(INLINE)])
    nw(ns, state, "apply", str(profile))
    assert inline not in _sets(ns)
    in_ns(ns, "ipset", "create", "foreign-x", "hash:ip")  # takes the freed set index
    nw(ns, state, "rollback")
    assert inline in _sets(ns)
    assert status(ns, state)["drift"] == []
    profile.write_text(text)
    assert nw(ns, state, "apply", "--check", str(profile), check=False).returncode == 3
    _edit_in_place(ns)
    assert any("edited in place" in d for d in status(ns, state)["drift"])


def test_agent_once_output_json_reports_the_pass(applied, tmp_path):
    """`agent --once --output json`: the pass as one JSON object on stdout (the log
    stays on stderr), the repaired drift named, then bad input as outcome and exit 2."""
    ns, state, profile, clean = applied
    _by_hand(ns)
    once = nw(ns, state, "agent", "--once", "--profiles", str(profile.parent), "-o", "json")
    report = json.loads(once.stdout)
    assert report["exit"] == 0 and report["generation"] >= 1, report
    assert any("nw-fi-srv0" in d for d in report["drift"]), report
    assert fingerprint(ns) == clean

    (profile.parent / "zz-bad.toml").write_text('[[policies]]\nname = "x"\norder = "one"\n')
    bad = nw(ns, state, "agent", "--once", "--profiles", str(profile.parent), "-o", "json",
             check=False)
    report = json.loads(bad.stdout)
    assert bad.returncode == 2 and (report["outcome"], report["exit"]) == ("bad_input", 2)
    assert "zz-bad.toml:3:" in report["message"], report
    assert fingerprint(ns) == clean
