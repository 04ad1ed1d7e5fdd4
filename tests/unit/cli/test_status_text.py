"""`status` text for humans: the head (generation, panic, pending, drift) first, rules
grouped by policy in evaluation order, and with --watch the head stays on screen."""
from __future__ import annotations

from nodewall.engine.cli.commands import _print_status
from nodewall.engine.observe.report import ConntrackInfo, RuleStats, StatusReport


def _rule(rid: str, policy: str, order: int, direction: str = "ingress") -> RuleStats:
    return RuleStats(rid, "p.toml", policy, direction, 0, "allow", "filter", 1, 60,
                     summary=f"rule {rid}", eval_order=order)


def _report(rules: tuple[RuleStats, ...], drift: tuple[str, ...] = ()) -> StatusReport:
    return StatusReport(netns="n", iptables_mode="legacy", interfaces=(),
                        conntrack=ConntrackInfo(7, 262144), rules=rules, generation=None,
                        pending_confirm=None, drift=drift)


def test_drift_first_and_rules_grouped_in_evaluation_order(capsys):
    rules = (_rule("a1", "web", 7), _rule("d1", "(default-deny)", 9),
             _rule("f1", "(failsafe)", 2), _rule("a2", "web", 8),
             _rule("e1", "dns", 1, "egress"), _rule("u1", "untracked", 0))
    _print_status(_report(rules, drift=("chain nw-fi-eth0 is missing",)))
    lines = capsys.readouterr().out.splitlines()
    assert "nothing applied" in lines[0] and "generation None" not in lines[0]
    assert lines[1] == "DRIFT: chain nw-fi-eth0 is missing"
    groups = [line.strip() for line in lines if line.startswith("  ") and
              not line.startswith("    ")]
    assert groups == ["untracked ingress", "(failsafe) ingress", "web ingress",
                      "(default-deny) ingress", "dns egress"]
    web = lines.index("  web ingress")
    assert lines[web + 1].split()[0] == "a1" and lines[web + 2].split()[0] == "a2"


def test_watch_keeps_the_head_on_a_short_terminal(capsys):
    rules = tuple(_rule(f"r{i}", f"p{i}", i) for i in range(40))
    _print_status(_report(rules, drift=("hook nw-INPUT is missing",)), rows=12)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 11
    assert lines[1].startswith("DRIFT:") and lines[2].startswith("conntrack 7/262144")
    assert lines[-1].startswith("… ") and "more line(s)" in lines[-1]
