"""The TUI's pure helpers: formatting, live rates, the guard, TOML leaf edits, files."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import tomlkit
from nodewall.tui import fmt
from nodewall.tui.client import EngineClient
from nodewall.tui.files import atomic_write, validate_text
from nodewall.tui.guard import Guard, ReadOnlyError
from nodewall.tui.live import LiveState
from nodewall.tui.status_text import revert_text
from nodewall.tui.tomldoc import FormError, ProfileDoc

from .fakes import FakeClock, FakeService

DATA = Path(__file__).parent / "data" / "redis-host.toml"


def test_sparkline_scales_to_its_maximum():
    assert fmt.sparkline([0, 1, 2, 4], width=4) == "▁▃▅█"
    # on a fixed scale (the conntrack table's size) a tiny count is the lowest block
    assert fmt.sparkline([7, 7, 7], width=3, top=262144) == "▁▁▁"
    assert fmt.sparkline([131072, 262144], width=2, top=262144) == "▅█"
    assert fmt.sparkline([5, 5], width=8) == "██"
    assert fmt.sparkline([0, 0, 0]) == "▁▁▁"
    assert fmt.sparkline(range(100), width=5) == fmt.sparkline([95, 96, 97, 98, 99], 5)


def test_gauge_and_human_and_loc():
    assert fmt.gauge(0.5, 10) == "[#####-----]"
    assert fmt.gauge(2.0, 4) == "[####]"
    assert fmt.human(1234) == "1.2k"
    assert fmt.human_bytes(2048) == "2.0kB"
    assert fmt.parse_loc("/a:b/c.toml:12:5") == ("/a:b/c.toml", 12, 5)
    assert fmt.parse_loc("nope") is None
    assert fmt.rule_position("ingress", 2) == "in[2]"
    assert fmt.rule_position("egress", -1) == "eg"


def test_rates_between_ticks_and_counter_reset():
    fake, clock, live = FakeService(), FakeClock(), LiveState()
    fake.clock = clock
    live.update(fake.status(), clock())
    assert live.rule_rates["b2:xdp"].pps is None  # one sample: no rate yet
    clock.advance(2)
    live.update(fake.status(), clock())
    assert live.rule_rates["b2:xdp"].pps == pytest.approx(400 / 2)
    assert live.rule_rates["b2:raw"].pps == pytest.approx(1 / 2)  # same id, other backend
    assert live.iface_rates["srv0"].rx_bps == pytest.approx(50_000 / 2)
    assert [(r.id, r.backend) for r in live.busiest(2)] == [("b2", "xdp"), ("c3", "raw")]
    fake.rules = [(r.__class__(**{**r.__dict__, "packets": 0}), s) for r, s in fake.rules]
    clock.advance(1)
    live.update(fake.status(), clock())
    assert live.rule_rates["b2:xdp"].pps is None  # counters went down: reset, not negative
    assert list(live.ct_history) == [1200.0] * 3


def test_guard_blocks_mutations_in_the_client():
    guard = Guard(readonly=True, reason="--readonly")
    fake = FakeService()
    client = EngineClient(lambda: fake, guard)
    client.status()
    with pytest.raises(ReadOnlyError):
        client.apply([DATA], 30)
    with pytest.raises(ReadOnlyError):
        client.rollback()
    assert "apply" not in fake.calls and "rollback" not in fake.calls
    assert guard.check_action("apply") is None and guard.check_action("diff") is True


def test_form_edit_keeps_comments_and_touches_only_the_leaves():
    text = DATA.read_text()
    doc = ProfileDoc(text)
    rule = ("policies", 1, "ingress", 0)
    values = doc.form_values("rule", rule)
    assert values["destination.ports"] == "6379" and values["source.nets"] == "10.0.0.0/8"
    values["destination.ports"] = "6379, 6380"
    assert doc.apply_form("rule", rule, values)
    out = doc.text()
    before, after = text.splitlines(), out.splitlines()
    changed = [(a, b) for a, b in zip(before, after) if a != b]
    assert changed == [('  destination = { ports = [6379] }',
                        '  destination = { ports = [6379, 6380] }')]
    assert doc.apply_form("rule", rule, doc.form_values("rule", rule)) is False


def test_replacing_a_value_keeps_its_trailing_comment():
    doc = ProfileDoc(DATA.read_text())
    doc.apply_form("rule", ("policies", 0, "ingress", 0),
                   {"source.selector": "", "source.nets": "192.0.2.0/24"})
    assert ('  source = { nets = ["192.0.2.0/24"] }   '
            '# selects network sets (and host endpoints)') in doc.text().splitlines()
    hep = ("host_endpoints", 0)
    doc.apply_form("host_endpoint", hep, {"interface": "eth1", "labels": "hep=redis-host, z=a"})
    lines = doc.text().splitlines()
    assert any(ln.startswith('interface = "eth1"') and "# or \"*\"" in ln for ln in lines)
    assert 'labels = { hep = "redis-host", z = "a" }' in lines


def test_add_and_delete_rules():
    doc = ProfileDoc(DATA.read_text())
    path = doc.add_rule(1, "ingress", "deny")
    doc.apply_form("rule", path, {"protocol": "udp", "destination.ports": "53"})
    parsed = tomlkit.parse(doc.text()).unwrap()
    assert parsed["policies"][1]["ingress"][-1] == {
        "action": "deny", "protocol": "udp", "destination": {"ports": [53]}}
    assert "  [[policies.egress]]                # the return path" in doc.text()
    doc.delete_rule(("policies", 1, "egress", 0))
    parsed = tomlkit.parse(doc.text()).unwrap()
    assert "egress" not in parsed["policies"][1]
    assert "# profiles/redis-host.toml" in doc.text()


def test_form_errors():
    doc = ProfileDoc(DATA.read_text())
    with pytest.raises(FormError):
        doc.apply_form("rule", ("policies", 1, "ingress", 0), {"action": "permit"})
    with pytest.raises(FormError):
        doc.apply_form("host_endpoint", ("host_endpoints", 0), {"labels": "novalue"})


def test_atomic_write_keeps_mode_and_leaves_no_temp(tmp_path):
    target = tmp_path / "p.toml"
    target.write_text("old\n")
    os.chmod(target, 0o640)
    atomic_write(target, "new\n")
    assert target.read_text() == "new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["p.toml"]


def test_validate_text_reports_the_real_file_name(tmp_path):
    target = tmp_path / "redis-host.toml"
    target.write_text(DATA.read_text())
    fake = FakeService()
    bad = DATA.read_text().replace('action = "deny"', 'action = "dney"')
    problems, _ = validate_text(fake.validate, target, bad, [])
    assert len(problems) == 1
    assert problems[0].text == f"{target}:29:13: unknown action 'dney'"
    assert (problems[0].line, problems[0].col) == (29, 13)
    assert [p.name for p in tmp_path.iterdir()] == ["redis-host.toml"]  # scratch removed
    assert validate_text(fake.validate, target, DATA.read_text(), []) == ([], [])


def test_buffer_save_refuses_to_overwrite_an_edit_made_on_disk(tmp_path):
    from nodewall.engine.errors import ConcurrentEdit
    from nodewall.tui.files import Buffer

    target = tmp_path / "p.toml"
    target.write_text("a = 1\n")
    buf = Buffer.load(target)
    buf.set_text("a = 2\n")
    with open(target, "a") as fh:
        fh.write("b = 3\n")
    with pytest.raises(ConcurrentEdit):
        buf.save()
    assert target.read_text() == "a = 1\nb = 3\n" and buf.dirty


def test_merge3_merges_different_lines_and_marks_the_same_line():
    from nodewall.tui.merge import merge3
    base = "a = 1\n\n# c\nb = 2\n"
    assert merge3(base, "a = 9\n\n# c\nb = 2\n", "a = 1\n\n# c\nb = 3\n").text == \
        "a = 9\n\n# c\nb = 3\n"  # blank line and comment kept
    both = merge3(base, "a = 9\n\n# c\nb = 2\n", "a = 8\n\n# c\nb = 2\n")
    assert both.conflicts == 1
    assert both.text == "<<<<<<< yours\na = 9\n=======\na = 8\n>>>>>>> on disk\n\n# c\nb = 2\n"
    same = merge3(base, "a = 9\n\n# c\nb = 2\n", "a = 9\n\n# c\nb = 2\n")
    assert same.conflicts == 0 and same.text == "a = 9\n\n# c\nb = 2\n"
    ends = merge3(base, base + "x = 1", base + "y = 2\n")  # both append: a conflict
    assert ends.conflicts == 1 and ends.text.endswith("x = 1\n=======\ny = 2\n>>>>>>> on disk\n")


def test_short_chain_drops_the_prefix_and_the_interface_column():
    from dataclasses import replace

    from nodewall.tui.rulerows import short_chain

    from .fakes import make_rules
    rule = make_rules()[0][0]
    cells = [short_chain(replace(rule, interface=i, chain=c)) for i, c in (
        ("eth0", "nw-fi-eth0"), ("eth0", "nw-rfi-eth0"), ("*", "nw-ffi-:all"),
        ("", "nw-INPUT"), ("eth1", "xdp:eth1"), ("", ""))]
    assert cells == ["fi", "rfi", "ffi", "INPUT", "xdp", ""]


def test_revert_notice_says_how_to_acknowledge_it():
    notice = {"generation": 3, "reverted_to": 2, "reason": "confirm-timeout"}
    assert revert_text(notice).endswith("(confirm timed out): ack in ^p")
    # read-only (not root): the palette has no Acknowledge revert
    assert revert_text(notice, readonly=True).endswith("root: nodewall ack")
