"""The agent over a mounted ConfigMap (issue 12): one version per pass, the kubelet's
swap seen through inotify, bad input recorded and backed off from, nodes.toml."""
from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from nodewall.engine.errors import InputError, InputErrors
from nodewall.engine.safety.agent import STATUS_FILE, Agent
from nodewall.engine.safety.snapshot import NodeIdentity, parse_labels, take_snapshot
from nodewall.engine.safety.watch import ProfilesWatch

from tests.helpers.configmap_kit import ConfigMapDir
from tests.helpers.safety_kit import until

from .conftest import Rig, profile_text

NETS = '[[network_sets]]\nname = "b"\nlabels = { list = "b" }\nnets = ["10.0.0.0/8"]\n'


def _agent(rig: Rig, directory: Path, **kw) -> tuple[Agent, list[str]]:
    logged: list[str] = []
    return Agent(rig.tx, directory, log=logged.append, **kw), logged


def _status(rig: Rig) -> dict:
    return json.loads((rig.root / STATUS_FILE).read_text())


def test_a_configmap_is_read_through_the_version_dotdata_names(rig: Rig, tmp_path: Path):
    cm = ConfigMapDir(tmp_path / "cm")
    version = cm.write({"a.toml": profile_text(80), "b.toml": NETS})
    snap = take_snapshot(cm.root)
    assert snap.version == version
    assert [p.parent.name for p in snap.paths] == [version, version]
    assert [p.name for p in snap.paths] == ["a.toml", "b.toml"]

    agent, _ = _agent(rig, cm.root)
    result = agent.reconcile_once()
    assert (result.outcome, result.source) == ("applied", version)
    assert rig.store.meta(1).sources == [str(p) for p in snap.paths]
    assert _status(rig)["source"] == version and _status(rig)["outcome"] == "applied"


def test_a_plain_directory_applies_every_toml_but_dotfiles(rig: Rig, tmp_path: Path):
    d = tmp_path / "plain"
    d.mkdir()
    (d / "a.toml").write_text(profile_text(80))
    (d / ".hidden.toml").write_text("not toml [")
    snap = take_snapshot(d)
    assert snap.version == "" and [p.name for p in snap.paths] == ["a.toml"]


def test_a_version_removed_while_read_is_read_again_never_mixed(rig: Rig, tmp_path: Path):
    """The kubelet swapped and removed the version this pass had resolved: the pass
    fails to read it and the agent reads the new version at once."""
    cm = ConfigMapDir(tmp_path / "cm")
    cm.write({"a.toml": profile_text(80)})
    agent, logged = _agent(rig, cm.root)
    real_snapshot = agent.snapshot
    swapped: list[str] = []

    def snapshot_then_swap():
        snap = real_snapshot()
        if not swapped:
            swapped.append(cm.write({"a.toml": profile_text(90)}))  # removes snap.root
        return snap

    agent.snapshot = snapshot_then_swap
    result = agent.reconcile_once()
    assert (result.outcome, result.source) == ("applied", swapped[0])
    assert rig.fake.holds == rig.planned(cm.root / "..data" / "a.toml")
    assert any("changed during the pass" in m for m in logged)
    assert agent.failures == 0


def test_bad_input_keeps_the_generation_records_it_and_backs_off(rig: Rig, tmp_path: Path):
    cm = ConfigMapDir(tmp_path / "cm")
    cm.write({"a.toml": profile_text(80)})
    agent, logged = _agent(rig, cm.root, backoff_max=20)
    assert agent.reconcile_once().generation == 1
    kernel = set(rig.fake.holds)
    bad = cm.write({"a.toml": profile_text(80), "b.toml": '[[policies]]\nname = "x"\norder = "one"\n'})
    delays = []
    for _ in range(4):
        result = agent.reconcile_once()
        assert (result.outcome, result.generation, result.exit_code) == ("bad_input", 1, 2)
        delays.append(agent.next_delay(3))
    assert delays == [3, 6, 12, 20]  # doubled, capped at backoff_max
    assert set(rig.fake.holds) == kernel
    assert any(f"{bad}/b.toml:3:" in m for m in logged)
    status = _status(rig)
    assert status["outcome"] == "bad_input" and status["consecutive_failures"] == 4
    assert f"{bad}/b.toml:3:" in status["message"] and status["generation"] == 1

    good = cm.write({"a.toml": profile_text(81)})
    result = agent.reconcile_once()
    assert (result.outcome, result.generation, result.source) == ("applied", 2, good)
    assert agent.failures == 0 and agent.next_delay(3) == 3


NODES = """
[[nodes]]
profiles = ["base.toml"]

[[nodes]]
name = "edge-*"
profiles = ["edge.toml", "base.toml"]

[[nodes]]
labels = { role = "db" }
profiles = ["db.toml"]
"""


def _selection_dir(tmp_path: Path, nodes: str) -> Path:
    cm = ConfigMapDir(tmp_path / "cm")
    cm.write({"base.toml": profile_text(22), "edge.toml": NETS,
              "db.toml": NETS.replace('"b"', '"db"'), "nodes.toml": nodes})
    return cm.root


@pytest.mark.parametrize("node, expected", [
    (NodeIdentity("w-1"), ["base.toml"]),
    (NodeIdentity(None), ["base.toml"]),
    (NodeIdentity("edge-3"), ["base.toml", "edge.toml"]),
    (NodeIdentity("edge-3", {"role": "db"}), ["base.toml", "edge.toml", "db.toml"]),
    (NodeIdentity("w-2", {"role": "db", "zone": "a"}), ["base.toml", "db.toml"]),
])
def test_nodes_toml_gives_each_node_the_union_of_its_entries(tmp_path: Path, node, expected):
    snap = take_snapshot(_selection_dir(tmp_path, NODES), node)
    assert [p.name for p in snap.paths] == expected


def test_a_node_no_entry_matches_is_bad_input(tmp_path: Path):
    d = _selection_dir(tmp_path, '[[nodes]]\nname = "edge-*"\nprofiles = ["edge.toml"]\n')
    with pytest.raises(InputError) as caught:
        take_snapshot(d, NodeIdentity("w-1", {"role": "web"}))
    assert "nodes.toml:1:1" in caught.value.render() and "node w-1 with labels role=web" \
        in caught.value.render()


def test_nodes_toml_errors_are_located(tmp_path: Path):
    d = _selection_dir(tmp_path, '[[nodes]]\nprofiles = ["base.toml", "nope.toml"]\n'
                                 '[[nodes]]\nnmae = "x"\nprofiles = ["db.toml"]\n')
    with pytest.raises(InputErrors) as caught:
        take_snapshot(d, NodeIdentity("x"))
    text = caught.value.render()
    assert "nodes.toml:2:26: no profile 'nope.toml' beside nodes.toml" in text
    assert "nodes.toml:4:1: unknown key 'nmae'" in text
    d2 = _selection_dir(tmp_path / "2", "[[nodes]\n")
    with pytest.raises(InputError) as caught:
        take_snapshot(d2, NodeIdentity("x"))
    assert "nodes.toml:1:" in caught.value.render() and "TOML syntax error" in \
        caught.value.render()


def test_parse_labels():
    assert parse_labels("") == {}
    assert parse_labels(" role=db , zone=a,empty=") == {"role": "db", "zone": "a", "empty": ""}
    with pytest.raises(InputError) as caught:
        parse_labels("role=db,oops")
    assert str(caught.value.loc) == "--node-labels:1:9"


def test_the_watch_wakes_on_the_swap_times_out_and_stops(tmp_path: Path):
    cm = ConfigMapDir(tmp_path / "cm")
    cm.write({"a.toml": "x"})
    stop = threading.Event()
    watch = ProfilesWatch(cm.root)
    try:
        watch.open()
        assert watch.active
        assert watch.wait(0.05, stop) == "timer"
        cm.write({"a.toml": "y"})
        assert watch.wait(30, stop) == "change"
        assert watch.wait(0.05, stop) == "timer"  # the burst was drained
        stop.set()
        assert watch.wait(30, stop) == "stop"
    finally:
        watch.close()


def test_without_the_directory_the_interval_drives_and_the_watch_comes_later(tmp_path: Path):
    d = tmp_path / "later"
    watch = ProfilesWatch(d)
    stop = threading.Event()
    try:
        assert watch.wait(0.05, stop) == "timer"
        assert not watch.active and "No such file" in watch.problem
        d.mkdir()
        watch.open()
        assert watch.active
        (d / "a.toml").write_text("x")
        assert watch.wait(30, stop) == "change"
    finally:
        watch.close()


def test_the_running_agent_applies_a_swap_without_waiting_the_interval(rig: Rig,
                                                                         tmp_path: Path):
    cm = ConfigMapDir(tmp_path / "cm")
    cm.write({"a.toml": profile_text(80)})
    agent, logged = _agent(rig, cm.root)
    stop = threading.Event()
    done = threading.Event()
    thread = threading.Thread(target=lambda: (agent.run(3600, stop=stop), done.set()))
    thread.start()
    try:
        assert until(lambda: rig.store.current() == 1)
        new = cm.write({"a.toml": profile_text(81)})
        assert until(lambda: rig.store.current() == 2)
        # agent.json is written when the pass ends, just after the generation is recorded
        assert until(lambda: _status(rig)["source"] == new)
    finally:
        stop.set()
        thread.join(30)
    assert done.is_set() and logged[-1] == "stopped"
    assert "on change (inotify) and every 3600s" in logged[0]
