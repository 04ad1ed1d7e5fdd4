"""Transactions.recover over the fake dataplane: a process killed at each step of an
apply (the next one puts the kernel at the old or the new generation, never a mix),
interrupted flush / rollback / panic / confirm-timeout journals, an expired confirm
whose watcher is gone, recover_if_idle, and the wait for a dead apply's `ipset`."""
from __future__ import annotations

import os
import time
from dataclasses import replace

import pytest
from nodewall.engine.errors import KernelError
from nodewall.engine.plan.desired import DesiredState, XdpState
from nodewall.engine.safety import panic, transactions
from nodewall.engine.safety.state_dir import Journal, Pending

from tests.helpers.fake_dataplane import Killed, chain_names

from .conftest import ORIGINAL_IPSET_SCAN, Rig, die_at

MIXED = DesiredState(tables=(), ipsets=(), xdp=XdpState(), rules={})  # a half-written kernel


def _dead_pid() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def _two_generations(rig: Rig):
    a, b = rig.profile("a", 80), rig.profile("b", 443)
    rig.tx.apply([a])
    return a, b


# (object, method, after): where `nodewall apply b` is killed, on top of generation 1
# (the order: journal, generation files, meta, kernel, current)
BEFORE_CURRENT = [
    pytest.param("store", "write_journal", True, id="journal-written-nothing-recorded"),
    pytest.param("store", "write_meta", True, id="recorded-kernel-untouched"),
    pytest.param("store", "set_current", False, id="kernel-written-current-not"),
]


@pytest.mark.parametrize("where,method,after", BEFORE_CURRENT)
def test_killed_before_current_is_set_goes_back(rig: Rig, monkeypatch: pytest.MonkeyPatch,
                                                where: str, method: str, after: bool) -> None:
    a, b = _two_generations(rig)
    with monkeypatch.context() as m:
        die_at(m, rig.store if where == "store" else rig.fake, method, after=after)
        with pytest.raises(Killed):
            rig.tx.apply([b])
    store = rig.store
    assert store.journal() is not None and store.current() == 1
    assert store.generation_dir(2).exists() == (method != "write_journal")
    message = rig.restart().recover()
    assert message == f"recovered an interrupted apply (pid {os.getpid()}): back at generation 1"
    assert rig.fake.holds == rig.planned(a)
    assert store.current() == 1 and store.journal() is None and store.generations() == [1]
    assert not store.generation_dir(2).exists()


def test_killed_while_writing_the_kernel_goes_back(rig: Rig,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = _two_generations(rig)
    with monkeypatch.context() as m:
        die_at(m, rig.fake, "apply", after=True)  # the kernel holds b, or a part of it
        die_at(m, rig.tx, "_restore")  # and nothing after that runs
        with pytest.raises(Killed):
            rig.tx.apply([b])
    assert rig.fake.holds == rig.planned(b)
    assert "back at generation 1" in (rig.restart().recover() or "")
    assert rig.fake.holds == rig.planned(a) and rig.store.generations() == [1]


def test_killed_after_current_is_set_completes_the_apply(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    _, b = _two_generations(rig)
    with monkeypatch.context() as m:
        die_at(m, rig.store, "clear_journal")
        with pytest.raises(Killed):
            rig.tx.apply([b])
    assert rig.store.current() == 2 and rig.store.journal() is not None
    applies = rig.fake.applies
    message = rig.restart().recover()
    assert message == (f"recovered an interrupted apply (pid {os.getpid()}): "
                       "completed: generation 2")
    assert rig.fake.applies == applies + 1 and rig.fake.holds == rig.planned(b)
    assert rig.store.current() == 2 and rig.store.journal() is None


def test_the_next_command_recovers_first(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    _, b = _two_generations(rig)
    with monkeypatch.context() as m:
        die_at(m, rig.store, "write_journal", after=True)
        with pytest.raises(Killed):
            rig.tx.apply([b])
    res = rig.restart().apply([b])
    assert (res.generation, res.changed) == (2, True)
    assert rig.fake.holds == rig.planned(b) and rig.store.journal() is None


def test_an_interrupted_flush_is_completed(rig: Rig) -> None:
    _two_generations(rig)
    rig.store.write_journal(Journal(target=0, previous=1, pid=4242, started=time.time(),
                                    action="flush"))
    rig.fake.kernel = MIXED
    assert rig.restart().recover() == "recovered an interrupted flush (pid 4242): flushed"
    assert rig.fake.kernel is None and rig.store.current() is None
    assert rig.store.journal() is None


def test_an_interrupted_flush_that_fails_again_is_reported_not_retried(rig: Rig) -> None:
    _two_generations(rig)
    rig.store.write_journal(Journal(target=0, previous=1, pid=4242, started=time.time(),
                                    action="flush"))
    rig.fake.fail("flush")
    message = rig.restart().recover()
    assert message == ("recovered an interrupted flush (pid 4242): flushed, except: "
                       "fake flush failed")
    assert rig.store.current() is None and rig.store.journal() is None


def test_an_interrupted_rollback_is_completed(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = _two_generations(rig)
    rig.tx.apply([b])
    with monkeypatch.context() as m:
        die_at(m, rig.fake, "apply")
        with pytest.raises(Killed):
            rig.tx.rollback()
    journal = rig.store.journal()
    assert journal is not None and (journal.action, journal.previous) == ("rollback", 1)
    assert "interrupted rollback" in (rig.restart().recover() or "")
    assert rig.fake.holds == rig.planned(a) and rig.store.current() == 1
    assert rig.store.generations() == [1, 2]  # a rollback forgets no generation


def test_an_interrupted_panic_switch_is_completed(rig: Rig,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    _two_generations(rig)
    with monkeypatch.context() as m:
        die_at(m, rig.fake, "apply")
        with pytest.raises(Killed):
            rig.tx.set_panic(True)
    assert rig.restart().recover() == (f"recovered an interrupted panic (pid {os.getpid()}): "
                                       "panic on at generation 1")
    assert {panic.PANIC_IN, panic.PANIC_OUT} <= chain_names(rig.fake.kernel)
    assert rig.store.journal() is None


def test_an_interrupted_confirm_timeout_is_completed(rig: Rig) -> None:
    a, b = _two_generations(rig)
    rig.tx.apply([b], confirm_timeout=30)
    rig.store.write_journal(Journal(target=2, previous=1, pid=4242, started=time.time(),
                                    action="confirm-timeout"))
    rig.store.write_pending(Pending(generation=2, previous=1, deadline=time.time() - 10,
                                    watcher_pid=_dead_pid()))
    rig.store.set_current(1)  # the watcher got as far as the restore
    rig.fake.kernel = MIXED
    message = rig.restart().recover()
    assert message == ("recovered an interrupted confirm-timeout (pid 4242): back at "
                       "generation 1; generation 2 was never confirmed: reverted to 1")
    assert rig.fake.holds == rig.planned(a) and rig.store.pending() is None


def test_a_recovery_that_fails_keeps_the_journal_and_says_what_to_do(rig: Rig) -> None:
    _two_generations(rig)
    rig.store.write_journal(Journal(target=2, previous=1, pid=4242, started=time.time(),
                                    action="apply"))
    rig.fake.fail("apply")
    with pytest.raises(KernelError) as info:
        rig.restart().recover()
    assert info.value.message == ("an interrupted apply (pid 4242) could not be finished: "
                                  "fake apply failed")
    assert "nodewall flush" in (info.value.hint or "")
    assert rig.store.journal() is not None
    assert "back at generation 1" in (rig.tx.recover() or "")  # it works the next time


# -- an expired commit-confirm whose watcher is gone ----------------------------------

def _expired_pending_b(rig: Rig, *, watcher_gone: bool):
    """Generation 2 waits for confirmation since 10 s ago; its watcher runs (this
    process stands in for it) or is gone."""
    a, b = _two_generations(rig)
    rig.tx.apply([b], confirm_timeout=30)
    pending = rig.store.pending()
    assert pending is not None
    pending = replace(pending, deadline=time.time() - 10)
    if watcher_gone:
        pending = replace(pending, watcher_pid=_dead_pid())
    rig.store.write_pending(pending)
    return a, b


def test_recover_reverts_an_expired_confirm_whose_watcher_is_gone(rig: Rig) -> None:
    a, _ = _expired_pending_b(rig, watcher_gone=True)
    message = rig.restart().recover()
    assert message == "generation 2 was never confirmed: reverted to 1"
    assert rig.fake.holds == rig.planned(a) and rig.store.current() == 1
    assert rig.store.pending() is None and rig.store.journal() is None


def test_recover_leaves_an_expired_confirm_to_its_running_watcher(rig: Rig) -> None:
    _, b = _expired_pending_b(rig, watcher_gone=False)
    assert rig.restart().recover() is None
    assert rig.store.pending() is not None and rig.fake.holds == rig.planned(b)


def test_recover_if_idle(rig: Rig) -> None:
    assert rig.tx.recover_if_idle() is None and not rig.root.exists()  # nothing to do
    _two_generations(rig)
    rig.store.write_journal(Journal(target=0, previous=1, pid=4242, started=time.time(),
                                    action="flush"))
    other = rig.restart()
    with rig.store.lock():  # another transaction runs: leave it to that one
        assert other.recover_if_idle() is None
    assert rig.store.journal() is not None
    assert "flushed" in (other.recover_if_idle() or "")
    assert rig.store.journal() is None


# -- a dead apply's `ipset restore` ----------------------------------------------------

def test_ipset_processes_of_this_namespace_are_waited_for(
        monkeypatch: pytest.MonkeyPatch) -> None:
    procfs = transactions.procfs
    me, here, elsewhere, other_tool = os.getpid(), 101, 102, 103
    names = {here: "ipset", elsewhere: "ipset", other_tool: "iptables", me: "ipset"}
    monkeypatch.setattr(procfs, "pids", lambda: [me, here, elsewhere, other_tool])
    monkeypatch.setattr(procfs, "command_name", names.get)
    monkeypatch.setattr(procfs, "namespace_id", lambda pid, kind: (
        (0, 2) if pid == elsewhere else (0, 1)))
    assert ORIGINAL_IPSET_SCAN() == [here]
    monkeypatch.setattr(procfs, "namespace_id", lambda pid, kind: None)
    assert ORIGINAL_IPSET_SCAN() == []  # no /proc/self/ns: nothing to wait for

    scans: list[float] = []
    monkeypatch.setattr(transactions, "_ipset_children_here",
                        lambda: scans.append(time.monotonic()) or [here])
    t0 = time.monotonic()
    transactions.wait_for_orphans(timeout=0.12)
    assert 0.1 <= time.monotonic() - t0 < 5 and len(scans) >= 2
    monkeypatch.setattr(transactions, "_ipset_children_here", list)
    t0 = time.monotonic()
    transactions.wait_for_orphans(timeout=10)  # returns at once when none is left
    assert time.monotonic() - t0 < 5
