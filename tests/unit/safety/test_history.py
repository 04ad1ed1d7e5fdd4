"""Generation history (engine.safety.history) over the fake dataplane: origins,
content hashes, every outcome (kept, reverted by timeout, rolled back, superseded,
flushed), `show`, `diff --from --to`, `rollback --to`, and old meta.json records."""
from __future__ import annotations

import json

import pytest
from nodewall.engine.errors import ExitCode, NothingPending, NothingToDo
from nodewall.engine.safety import history

from .conftest import Rig


def _outcomes(rig: Rig) -> dict[int, str]:
    return {e.generation: e.outcome for e in history.history(rig.store)}


def test_history_records_origin_hashes_and_each_outcome(rig: Rig) -> None:
    a, b, c, d = (rig.profile(n, p) for n, p in (("a", 80), ("b", 81), ("c", 82), ("d", 83)))
    rig.tx.apply([a], origin="ansible")
    rig.tx.apply([b], confirm_timeout=60, origin="tui")
    rig.tx.confirm()  # 2 kept
    rig.tx.apply([c], confirm_timeout=60)  # 3 pending ...
    rig.tx.apply([d], confirm_timeout=0.1, origin="agent")  # ... superseded by 4
    assert _outcomes(rig) == {1: "kept", 2: "kept", 3: "superseded by 4",
                              4: "pending confirm"}
    assert rig.restart().watch_confirm(4, poll=0.01) is True  # 4 reverted by timeout
    rig.tx.apply([c], origin="cli")  # 5
    assert rig.tx.rollback(to=2) == 2  # 5 rolled back
    entries = {e.generation: e for e in history.history(rig.store)}
    assert {n: e.outcome for n, e in entries.items()} == {
        1: "kept", 2: "in force", 3: "superseded by 4", 4: "reverted by timeout",
        5: "rolled back"}
    assert [entries[n].origin for n in (1, 2, 4, 5)] == ["ansible", "tui", "agent", "cli"]
    assert entries[2].current and not entries[1].current
    # the profiles' hashes: the same content gives the same hash and digest
    assert entries[3].content == entries[5].content != entries[4].content
    assert [f.name for f in entries[1].files] == ["profiles/00-a.toml"]
    assert entries[3].files[0].sha256 == entries[5].files[0].sha256
    assert json.loads(json.dumps(entries[4].to_json()))["outcome"] == "reverted by timeout"


def test_history_survives_flush_and_says_flushed(rig: Rig) -> None:
    rig.tx.apply([rig.profile("a", 80)])
    rig.tx.flush()
    assert rig.store.current() is None
    assert _outcomes(rig) == {1: "flushed"}


def test_show_and_diff_between_generations(rig: Rig) -> None:
    rig.tx.apply([rig.profile("a", 80)])
    rig.tx.apply([rig.profile("a", 443)])
    rec = history.show(rig.store, 1)
    assert rec.profiles[0][0] == "00-a.toml" and "ports = [80]" in rec.profiles[0][1]
    assert any(m["policy"] == "web" for m in rec.rules.values())
    d = history.diff(rig.store, 1, 2)
    assert "-  destination = { ports = [80] }" in d.profile_diff
    assert "+  destination = { ports = [443] }" in d.profile_diff
    assert [m["policy"] for _, m in d.rules_added] == ["web"]
    assert [m["policy"] for _, m in d.rules_removed] == ["web"]
    assert d.to_json()["plan"]["rules_added"][0]["summary"].endswith(" 443")
    same = history.diff(rig.store, 2, 2)
    assert same.empty and same.profile_diff == ()


def test_rollback_to_a_recorded_generation(rig: Rig) -> None:
    a, b, c = rig.profile("a", 80), rig.profile("b", 81), rig.profile("c", 82)
    for p in (a, b, c):
        rig.tx.apply([p])
    assert rig.tx.rollback(to=1) == 1
    assert rig.fake.holds == rig.planned(a) and rig.store.current() == 1
    assert _outcomes(rig)[3] == "rolled back"
    with pytest.raises(NothingToDo):
        rig.tx.rollback(to=1)
    with pytest.raises(NothingPending) as info:
        rig.tx.rollback(to=99)
    assert info.value.exit_code == ExitCode.NOTHING_PENDING and "1..3" in info.value.message
    assert rig.store.current() == 1


def test_an_old_meta_json_without_origin_content_or_outcome_reads(rig: Rig) -> None:
    rig.tx.apply([rig.profile("a", 80)])
    rig.tx.apply([rig.profile("a", 81)])
    path = rig.store.generation_dir(1) / "meta.json"
    data = json.loads(path.read_text())
    for key in ("origin", "content", "outcome", "expected", "note"):
        data.pop(key, None)
    path.write_text(json.dumps(data))
    entry = history.history(rig.store)[0]
    assert (entry.generation, entry.origin, entry.content, entry.outcome) == (1, "", "", "kept")
    assert entry.to_json()["origin"] is None


def test_show_of_an_unknown_generation_is_nothing_pending(rig: Rig) -> None:
    with pytest.raises(NothingPending):
        history.show(rig.store, 4)


def test_nets_file_copies_are_listed_by_size_and_hashed_only_when_asked(rig: Rig) -> None:
    nets = rig.work / "bad.txt"
    nets.write_text("192.0.2.0/24\n")
    rig.tx.apply([rig.profile("a", 80, nets_file="bad.txt")])
    nets.write_text("192.0.2.0/25\n")  # same size, other content
    rig.tx.apply([rig.profile("a", 81, nets_file="bad.txt")])
    listed = history.history(rig.store)[0].files
    copy = next(f for f in listed if f.name.startswith("nets/"))
    assert copy.sha256 is None and copy.size == 13 and copy.source == str(nets)
    shown = next(f for f in history.show(rig.store, 1).entry.files if f.name == copy.name)
    assert shown.sha256 is not None and len(shown.sha256) == 64
    d = history.diff(rig.store, 1, 2)
    changed = {name: (a, b) for name, a, b in d.files_changed}
    assert set(changed) == {copy.name, "profiles/00-a.toml"}
    assert None not in changed[copy.name] and len(set(changed[copy.name])) == 2
