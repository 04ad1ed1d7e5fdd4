"""The TUI against the real engine in a throwaway lab (two namespaces, Redis, a
bounded traffic generator; engine/lab.py): every screen with real data, and
apply -> keep / revert / confirm timeout, checked afterwards with `nodewall status`.

Service works in the current network namespace, so each app scenario runs in a
forked child that entered the lab's server namespace (engine.netns.run_in_netns);
the child returns plain observations and the pytest process (host namespace)
asserts on them."""
from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import IS_ROOT, REPO

from .conftest import screen_text, settle, tick

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(not IS_ROOT, reason="kernel test: needs root for namespaces")]

SCENARIO_LIMIT = 90.0  # seconds one app scenario may take in its child before it fails
INGRESS_PORTS = "  destination = { ports = [6379] }"
EGRESS_PORTS = "  source = { ports = [6379] }"


@dataclass(frozen=True)
class Lab:
    ns: str
    client_ns: str
    profile: Path  # a copy of profiles/redis-host.toml (with blocklist.txt next to it)
    original: str  # its text as shipped
    state: Path


def nodewall(lab: Lab, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nodewall.engine.cli.main", "--netns", lab.ns,
                           "--state-dir", str(lab.state), *args],
                          capture_output=True, text=True, timeout=120, check=True)


def engine_status(lab: Lab) -> dict:
    return json.loads(nodewall(lab, "status", "--output", "json").stdout)


def with_ports(text: str, ports: str) -> str:
    """The profile with the Redis untracked pair (ingress destination, egress source
    port) opened for PORTS ("6379, 7001") instead of 6379."""
    assert INGRESS_PORTS in text and EGRESS_PORTS in text
    # the first destination is redis-untracked's (the last one is the tracked IPv6 rule)
    return (text.replace(INGRESS_PORTS, f"  destination = {{ ports = [{ports}] }}", 1)
            .replace(EGRESS_PORTS, f"  source = {{ ports = [{ports}] }}", 1))


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    from nodewall.engine.lab import lifecycle as lab_mod
    from nodewall.engine.service import Service
    from nodewall.engine.system.netns import run_in_netns

    prefix = f"nwt{uuid.uuid4().hex[:6]}"
    info = lab_mod.lab_up(prefix, duration=300, traffic=True)
    try:
        work = tmp_path_factory.mktemp("tui-real")
        for name in ("redis-host.toml", "blocklist.txt"):
            shutil.copy(REPO / "profiles" / name, work / name)
        lab = Lab(info.server_ns, info.client_ns, work / "redis-host.toml",
                  (work / "redis-host.toml").read_text(), work / "state")
        gen = run_in_netns(lab.ns, lambda: Service(netns=lab.ns, state_dir=lab.state)
                           .apply([lab.profile]).generation)
        assert gen == 1
        yield lab
    finally:
        lab_mod.lab_down(prefix)


Scenario = Callable[[object, dict], Awaitable[None]]


def in_app(lab: Lab, scenario: Scenario, **app_kwargs) -> dict:
    """Run `scenario(pilot, observations)` on an 80x24 app over the real Service in
    the lab's server namespace; returns the observations."""
    from nodewall.engine.service import Service
    from nodewall.engine.system.netns import run_in_netns
    from nodewall.tui.app import make_app

    def child() -> dict:
        async def main() -> dict:
            app = make_app(lambda: Service(netns=lab.ns, state_dir=lab.state), [lab.profile],
                           interval=60, **app_kwargs)  # ticks when the scenario says so
            obs: dict = {}
            async with app.run_test(size=(80, 24)) as pilot:
                await scenario(pilot, obs)
            return obs
        return asyncio.run(asyncio.wait_for(main(), SCENARIO_LIMIT))

    try:
        return run_in_netns(lab.ns, child)
    except BaseException as exc:
        tb = getattr(exc, "child_traceback", "")
        raise AssertionError(f"the app scenario failed in {lab.ns}:\n{tb}") from exc


async def until(pilot, check: Callable[[], bool], limit: float = 20.0) -> bool:
    """Let the app run (its own timers included) until check() holds; bounded."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        await settle(pilot)
        if check():
            return True
        await asyncio.sleep(0.2)
    return False


def table_rows(screen, selector: str) -> list[list[str]]:
    from textual.widgets import DataTable
    table = screen.query_one(selector, DataTable)
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


# -- every screen with real data ------------------------------------------------------
def test_every_screen_shows_the_real_engine(lab):
    from nodewall.tui import fmt
    from nodewall.tui.live import rule_key
    from nodewall.tui.rulerows import is_engine_rule, match_text, short_chain
    from textual.widgets import DataTable

    async def scenario(pilot, obs: dict) -> None:
        app = pilot.app
        await tick(pilot)
        await asyncio.sleep(1.0)  # a second report: rates need two samples
        await tick(pilot)
        report = app.state.report
        obs["dashboard"] = screen_text(app)
        obs["ct"] = (report.conntrack.count, report.conntrack.max)
        obs["ct_max_proc"] = int(Path("/proc/sys/net/netfilter/nf_conntrack_max").read_text())
        obs["top"] = table_rows(app.screen, "#top-rules")
        obs["ifaces"] = table_rows(app.screen, "#ifaces")

        await pilot.press("2")
        await tick(pilot)
        report = app.state.report
        obs["rules"] = screen_text(app)
        obs["n_rules"] = len(report.rules)
        table = app.screen.query_one("#rules", DataTable)
        obs["rules_rows"] = {row.key.value: [str(c).strip() for c in table.get_row(row.key)]
                             for row in table.ordered_rows}
        obs["rules_report"] = {
            rule_key(r): [fmt.clip(r.policy, 15), fmt.rule_position(r.direction, r.index),
                          fmt.clip(match_text(r), 18, middle=True), r.backend,
                          fmt.clip(r.interface, 7, middle=True),
                          fmt.clip(short_chain(r), 6, middle=True), fmt.human(r.packets)]
            for r in report.rules if not is_engine_rule(r)}
        obs["n_engine"] = sum(is_engine_rule(r) for r in report.rules)

        await pilot.press("3")
        obs["sampled"] = await until(pilot, lambda: app.sample is not None)
        obs["conntrack"] = screen_text(app)
        obs["sample_protocols"] = dict(app.sample.by_protocol) if app.sample else {}

        await pilot.press("4")
        obs["validated"] = await until(pilot, lambda: "valid" in screen_text(app))
        obs["profiles"] = screen_text(app)

        await pilot.press("5", "d")
        obs["diffed"] = await until(pilot, lambda: app.screen.preview is not None)
        obs["apply"] = screen_text(app)

    obs = in_app(lab, scenario)

    dash = obs["dashboard"]
    assert f"netns {lab.ns} | gen 1" in dash
    eth0 = next(row for row in obs["ifaces"] if row[0] == "eth0")
    assert eth0[1] == "up" and eth0[2].startswith("10.0.0.1/24")
    assert eth0[5].startswith(("native nw_", "generic nw_")) and eth0[6] == "uplink"
    count, ct_max = obs["ct"]
    assert ct_max == obs["ct_max_proc"] > 0
    assert re.search(rf"^{count}/{ct_max} \[[#-]+\]", dash, re.MULTILINE), dash
    # busiest rules: the profile's own rules, told apart by their summaries
    top = obs["top"]
    assert top and all(not row[0].startswith("(") for row in top), top
    assert ["redis-untracked", "in[0]"] == top[0][:2] and "port 6379" in top[0][4], top
    assert len({(row[0], row[1], row[2]) for row in top}) == len(top)

    assert f"{obs['n_rules']} rules  sorted by rate" in obs["rules"]
    rows, report = obs["rules_rows"], obs["rules_report"]
    assert obs["n_engine"] > 0  # failsafe, conntrack, default deny: folded into one row
    assert len(rows) == len(report) + 1 and len(report) + obs["n_engine"] == obs["n_rules"]
    assert rows["(engine)"][2] == f"{obs['n_engine']} rules (e shows)"
    for key, cells in report.items():
        assert rows[key][:7] == cells  # the real counters
    redis_in = [row for row in rows.values() if row[:2] == ["redis-untracked", "in[0]"]
                and row[3] == "raw"]
    assert len(redis_in) == 1 and redis_in[0][6] != "0"  # the generator's traffic
    assert redis_in[0][4] and redis_in[0][5] == "rfi", redis_in  # interface, raw chain

    assert obs["sampled"], obs["conntrack"]
    assert re.search(r"sample: \d+ entries \(limit 2000\)", obs["conntrack"])
    for proto in obs["sample_protocols"]:
        assert proto in obs["conntrack"]

    assert obs["validated"], obs["profiles"]
    assert "[saved]" in obs["profiles"] and str(lab.profile) in obs["profiles"]
    assert "[settings]" in obs["profiles"] and "valid" in obs["profiles"]

    assert obs["diffed"], obs["apply"]
    # nothing to change; both untracked rules of the profile placed in XDP
    assert "XDP: 2 of 2 untracked rules in XDP" in obs["apply"]
    assert "no changes: the kernel already matches" in obs["apply"]  # an unchanged kernel


# -- apply: keep, revert, confirm timeout --------------------------------------------------
async def _pick(pilot, label_start: str) -> None:
    from textual.widgets import Tree
    tree = pilot.app.screen.query_one("#prof-tree", Tree)
    nodes = []

    def walk(node):
        for child in node.children:
            nodes.append(child)
            walk(child)
    walk(tree.root)
    target = next(n for n in nodes  # the whole label (the tree's may be cut)
                  if (n.data.label if n.data else str(n.label)).startswith(label_start))
    tree.focus()
    tree.move_cursor(target)
    await settle(pilot)


async def _set_field(pilot, name: str, value: str) -> None:
    from textual.widgets import Input
    box = next(i for i in pilot.app.screen.query("#prof-form Input").results(Input)
               if i.name == name)
    box.focus()
    box.value = value
    await pilot.press("enter")
    await settle(pilot)


async def _apply(pilot, obs: dict) -> None:
    """5, d (the plan), a, y: apply with the app's confirm timeout."""
    app = pilot.app
    await pilot.press("5", "d")
    assert await until(pilot, lambda: app.screen.preview is not None)
    obs["plan"] = screen_text(app)
    await pilot.press("a")
    await settle(pilot)
    obs["dialog"] = screen_text(app)
    await pilot.press("y")
    assert await until(pilot, lambda: app.pending is not None)
    obs["pending"] = screen_text(app)
    obs["pending_gen"] = app.pending.generation


def test_edit_in_forms_apply_and_keep(lab):
    from textual.widgets import TabbedContent
    before = engine_status(lab)["generation"]
    assert before == 1  # the first test to apply (generation numbers are not reused)

    async def scenario(pilot, obs: dict) -> None:
        app = pilot.app
        await tick(pilot)
        await pilot.press("4")
        await settle(pilot)
        app.screen.query_one("#prof-tabs", TabbedContent).active = "tab-forms"
        await settle(pilot)
        await _pick(pilot, "ingress[0] allow tcp src 10.0.0.0/8")
        await _set_field(pilot, "destination.ports", "6379, 7001")
        await _pick(pilot, "egress[0] allow tcp")
        await _set_field(pilot, "source.ports", "6379, 7001")
        await pilot.press("ctrl+s", "escape")  # escape: out of the field, so 5 switches
        await settle(pilot)
        obs["left_field"] = type(app.focused).__name__
        await _apply(pilot, obs)
        await pilot.press("K", "y")
        assert await until(pilot, lambda: app.pending is None and "kept" in app.outcome)
        await tick(pilot)
        obs["after"] = screen_text(app)

    obs = in_app(lab, scenario, confirm_timeout=60)
    assert lab.profile.read_text() == with_ports(lab.original, "6379, 7001")
    assert obs["left_field"] == "Tree"
    assert re.search(r"rules \+\d+ -\d+", obs["plan"]) and "rules +0 -0" not in obs["plan"]
    assert "Unless you keep them (K) within 60s" in obs["dialog"]
    assert f"KEEP generation {before + 1}? K keep / R revert" in obs["pending"]
    assert f"generation {before + 1} kept" in obs["after"] and f"gen {before + 1}" in obs["after"]
    report = engine_status(lab)
    assert report["generation"] == before + 1 and report["pending_confirm"] is None
    assert any(r["policy"] == "redis-untracked" and "6379,7001" in r["summary"].replace(" ", "")
               for r in report["rules"]), [r["summary"] for r in report["rules"]]


def _summaries(report: dict) -> str:
    return "\n".join(r["summary"] for r in report["rules"])


def test_apply_then_revert(lab):
    before = engine_status(lab)
    lab.profile.write_text(with_ports(lab.original, "6379, 7002"))

    async def scenario(pilot, obs: dict) -> None:
        app = pilot.app
        await tick(pilot)
        await _apply(pilot, obs)
        obs["while_pending"] = await asyncio.to_thread(engine_status_in_ns, lab)  # pyroute2:
        # not on a thread with a running event loop
        await pilot.press("R", "y")
        assert await until(pilot, lambda: app.pending is None and "reverted" in app.outcome)
        await tick(pilot)
        obs["after"] = screen_text(app)

    obs = in_app(lab, scenario, confirm_timeout=60)
    gen = before["generation"]
    assert obs["pending_gen"] > gen  # generation numbers are never reused after a revert
    assert obs["while_pending"]["generation"] == obs["pending_gen"]
    assert "7002" in obs["while_pending"]["rules"]
    assert "changes reverted" in obs["after"] and f"gen {gen}" in obs["after"]
    report = engine_status(lab)
    assert report["generation"] == gen and report["pending_confirm"] is None
    assert "7002" not in _summaries(report)
    assert _summaries(report).count("6379") == _summaries(before).count("6379")


def test_apply_and_let_the_confirm_time_out(lab):
    before = engine_status(lab)
    lab.profile.write_text(with_ports(lab.original, "6379, 7003"))

    async def scenario(pilot, obs: dict) -> None:
        app = pilot.app
        await tick(pilot)
        await _apply(pilot, obs)
        # nobody presses k: the engine's watcher reverts at the deadline and the app's
        # once-a-second check notices it
        obs["reverted"] = await until(pilot, lambda: "reverted to generation" in app.outcome,
                                      limit=30)
        obs["after"] = screen_text(app)

    obs = in_app(lab, scenario, confirm_timeout=3)
    gen = before["generation"]
    assert "Unless you keep them (K) within 3s" in obs["dialog"]
    assert obs["pending_gen"] > gen
    assert obs["reverted"], obs["after"]
    assert f"reverted to generation {gen} (confirm timeout)" in obs["after"]
    assert "KEEP" not in obs["after"]
    report = engine_status(lab)
    assert report["generation"] == gen and report["pending_confirm"] is None
    assert "7003" not in _summaries(report)


def engine_status_in_ns(lab: Lab) -> dict:
    """Generation and rule summaries straight from a second Service (called in the
    scenario's child, which is in the lab's namespace; off the event loop's thread)."""
    from nodewall.engine.service import Service
    report = Service(netns=lab.ns, state_dir=lab.state).status()
    return {"generation": report.generation,
            "rules": "\n".join(r.summary for r in report.rules)}
