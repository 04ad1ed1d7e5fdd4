"""Commit-confirm and rollback over the fake dataplane: arming the watcher, an apply on
top of a pending one, confirm, the watcher reverting at its deadline, rollback to the
previous generation or the pending one's, and `rollback --to` (pending_generation)."""
from __future__ import annotations

import sys
import time

import pytest
from nodewall.engine.errors import NodewallError
from nodewall.engine.safety.state_dir import Pending
from nodewall.engine.system import netns

from .conftest import Rig


def _a_then_pending_b(rig: Rig, timeout: float = 30):
    a, b = rig.profile("a", 80), rig.profile("b", 443)
    rig.tx.apply([a])
    res = rig.tx.apply([b], confirm_timeout=timeout)
    return a, b, res


def test_apply_with_confirm_arms_a_detached_watcher(rig: Rig) -> None:
    _, _, res = _a_then_pending_b(rig)
    pc = res.pending_confirm
    assert pc is not None and (pc.generation, pc.previous_generation) == (2, 1)
    assert 29 < pc.seconds_left <= 30 and abs(pc.deadline - time.time() - 30) < 1
    pending = rig.store.pending()
    assert pending is not None and pending.watcher_pid == rig.popen.pid
    assert (pending.generation, pending.previous, pending.deadline) == (2, 1, pc.deadline)
    [(cmd, kw)] = rig.popen.calls
    assert cmd[:2] == [sys.executable, "-m"] and cmd[2].startswith("nodewall.engine.cli")
    assert cmd[3:] == ["--state-dir", str(rig.root), "_confirm-watcher", "--generation", "2"]
    assert kw["start_new_session"] and kw["close_fds"]


def test_the_watcher_is_told_the_namespace(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netns, "current_name", lambda: "lab1")
    rig.restart().apply([rig.profile("a", 80)], confirm_timeout=30)
    [(cmd, _)] = rig.popen.calls
    assert cmd[-5:] == ["--netns", "lab1", "_confirm-watcher", "--generation", "1"]


def test_confirm_makes_even_an_unchanged_apply_a_generation(rig: Rig) -> None:
    a = rig.profile("a", 80)
    rig.tx.apply([a])
    res = rig.tx.apply([a], confirm_timeout=30)
    assert (res.generation, res.changed) == (2, True)
    assert res.pending_confirm is not None and res.pending_confirm.previous_generation == 1


def test_a_timed_apply_on_top_of_a_pending_one_reverts_to_the_last_kept(rig: Rig) -> None:
    _a_then_pending_b(rig)
    res = rig.tx.apply([rig.profile("c", 8080)], confirm_timeout=300)
    pc = res.pending_confirm
    assert pc is not None and (pc.generation, pc.previous_generation) == (3, 1)
    assert pc.seconds_left > 200 and len(rig.popen.calls) == 2
    pending = rig.store.pending()
    assert pending is not None and (pending.generation, pending.previous) == (3, 1)
    assert rig.tx.rollback() == 1  # back to the last confirmed generation
    assert rig.store.pending() is None


def test_confirm_keeps_the_generation(rig: Rig) -> None:
    _, b, _ = _a_then_pending_b(rig)
    assert rig.tx.confirm() == 2
    assert rig.store.pending() is None and rig.store.current() == 2
    assert rig.fake.holds == rig.planned(b)
    with pytest.raises(NodewallError, match="nothing is waiting for confirmation"):
        rig.tx.confirm()
    assert rig.tx.watch_confirm(2) is False  # the watcher then has nothing to do


def test_the_watcher_reverts_at_the_deadline(rig: Rig) -> None:
    a, _, _ = _a_then_pending_b(rig, timeout=0.1)
    applies = rig.fake.applies
    t0 = time.monotonic()
    assert rig.restart().watch_confirm(2, poll=0.01) is True
    assert time.monotonic() - t0 < 5
    assert rig.fake.holds == rig.planned(a) and rig.fake.applies == applies + 1
    store = rig.store
    assert store.current() == 1 and store.pending() is None and store.journal() is None
    assert store.generations() == [1, 2]


def test_the_watcher_of_another_generation_does_nothing(rig: Rig) -> None:
    _, b, _ = _a_then_pending_b(rig, timeout=0.05)
    assert rig.tx.watch_confirm(7, poll=0.01) is False
    assert rig.fake.holds == rig.planned(b) and rig.store.pending() is not None


def test_the_watcher_does_not_revert_a_generation_no_longer_in_place(rig: Rig) -> None:
    a, _, _ = _a_then_pending_b(rig)
    rig.tx.rollback()  # the pending apply was rolled back by hand: pending cleared
    assert rig.tx.watch_confirm(2, poll=0.01) is False
    # a pending record left for a generation that is not current: just cleared
    rig.store.write_pending(Pending(generation=2, previous=1, deadline=time.time() - 1))
    applies = rig.fake.applies
    assert rig.tx.watch_confirm(2, poll=0.01) is True
    assert rig.fake.applies == applies and rig.store.pending() is None
    assert rig.fake.holds == rig.planned(a)


# -- rollback ------------------------------------------------------------------------

def test_rollback_walks_back_the_generations_then_flushes(rig: Rig) -> None:
    a, b, c = (rig.profile(n, p) for n, p in (("a", 80), ("b", 443), ("c", 8080)))
    for p in (a, b, c):
        rig.tx.apply([p])
    assert rig.tx.rollback() == 2 and rig.fake.holds == rig.planned(b)
    assert rig.tx.rollback() == 1 and rig.fake.holds == rig.planned(a)
    assert rig.tx.rollback() is None
    assert rig.fake.kernel is None and rig.fake.flushes == 1
    assert rig.store.current() is None and rig.store.journal() is None
    with pytest.raises(NodewallError, match="nothing has been applied; nothing to roll back"):
        rig.tx.rollback()
    assert rig.store.generations() == [1, 2, 3]


def test_rollback_of_a_pending_apply_returns_to_its_previous(rig: Rig) -> None:
    a, _, _ = _a_then_pending_b(rig)
    assert rig.tx.rollback(pending_generation=2) == 1  # `rollback --to` of the TUI/CLI
    assert rig.fake.holds == rig.planned(a) and rig.store.pending() is None


@pytest.mark.parametrize("then", ["confirmed", "reverted", "other"])
def test_rollback_of_a_pending_apply_no_longer_pending_refuses(rig: Rig, then: str) -> None:
    _a_then_pending_b(rig, timeout=0.05 if then == "reverted" else 30)
    generation = 2
    if then == "confirmed":
        rig.tx.confirm()
    elif then == "reverted":
        assert rig.tx.watch_confirm(2, poll=0.01)
    else:
        generation = 1
    before = (rig.fake.holds, rig.store.current())
    with pytest.raises(NodewallError) as info:
        rig.tx.rollback(pending_generation=generation)
    assert info.value.message == (f"generation {generation} is no longer pending (it was "
                                  "kept, or reverted at its deadline); nothing was rolled back")
    assert (rig.fake.holds, rig.store.current()) == before


def test_an_automatic_revert_leaves_one_syslog_line(rig: Rig, monkeypatch) -> None:
    # no syslog daemon on this machine (no /dev/log): the libc call is recorded instead
    from nodewall.engine.safety import confirm
    lines: list[tuple[int, str]] = []
    monkeypatch.setattr(confirm.syslog, "syslog", lambda prio, msg: lines.append((prio, msg)))
    _a_then_pending_b(rig, timeout=0.1)
    assert rig.restart().watch_confirm(2, poll=0.01) is True
    assert len(lines) == 1
    prio, msg = lines[0]
    assert prio == confirm.syslog.LOG_WARNING
    assert msg.startswith("generation 2 was reverted to generation 1 at ")
    assert msg.endswith("its confirm timeout expired")
