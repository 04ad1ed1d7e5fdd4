"""StateStore: lock exclusivity and messages, generations, journal, pending, prune."""
from __future__ import annotations

import os
import time

import pytest
from nodewall.engine.errors import LockBusy
from nodewall.engine.safety.state_dir import GenerationMeta, Journal, Pending, StateStore


def _gen(store: StateStore, n: int) -> None:
    store.generation_dir(n).mkdir(parents=True, exist_ok=True)
    store.write_meta(GenerationMeta(n, time.time(), [f"p{n}.toml"], "profile", {}))


def test_lock_is_exclusive_and_no_wait_names_the_holder(tmp_path):
    store = StateStore(tmp_path / "s")
    other = StateStore(tmp_path / "s")
    with store.lock():
        with pytest.raises(LockBusy) as info, other.lock(wait=False):
            pass
        text = info.value.render()
        assert f"(pid {os.getpid()})" in text and "hint:" in text
    with other.lock(wait=False):  # released
        pass


def test_lock_in_a_child_process_makes_us_wait_with_a_message(tmp_path):
    store = StateStore(tmp_path / "s")
    store.ensure()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        with store.lock():
            os.write(w, b"x")
            time.sleep(0.5)
        os._exit(0)
    os.read(r, 1)
    messages: list[str] = []
    with store.lock(on_wait=messages.append):
        pass
    os.waitpid(pid, 0)
    assert messages and f"(pid {pid})" in messages[0] and "waiting" in messages[0]


def test_generations_current_journal_pending(tmp_path):
    store = StateStore(tmp_path / "s")
    assert store.current() is None and store.generations() == [] and store.journal() is None
    _gen(store, 1)
    _gen(store, 2)
    (store.generation_dir(3)).mkdir()  # prepared, never recorded
    assert store.generations() == [1, 2] and store.next_generation() == 4
    store.set_current(2)
    assert store.current() == 2
    store.set_current(None)
    assert store.current() is None
    j = Journal(target=2, previous=1, pid=7, started=1.0, action="apply")
    store.write_journal(j)
    assert store.journal() == j
    store.clear_journal()
    assert store.journal() is None
    p = Pending(generation=2, previous=None, deadline=time.time() + 30, watcher_pid=9)
    store.write_pending(p)
    assert store.pending() == p and 29 < store.pending().seconds_left <= 30
    store.clear_pending()
    assert store.pending() is None


def test_prune_keeps_current_and_pending_previous(tmp_path):
    store = StateStore(tmp_path / "s")
    for n in range(1, 16):
        _gen(store, n)
    store.generation_dir(16).mkdir()  # leftover without meta
    store.set_current(15)
    store.write_pending(Pending(generation=15, previous=2, deadline=time.time() + 5))
    store.prune(keep=3)
    assert store.generations() == [2, 13, 14, 15]
    assert not store.generation_dir(16).exists()
