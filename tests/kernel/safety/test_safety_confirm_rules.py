"""Commit-confirm means what it says (issue 15): a reverted change never comes back by
itself (quarantine), a plain apply during a pending confirm is refused and a timed
apply supersedes it explicitly, a pending change whose watcher is gone (a reboot, a
kill, a reused PID) is reverted at once, and every revert leaves a trace."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import replace

import pytest
from nodewall.engine.safety.state_dir import StateStore

from tests.conftest import IS_ROOT
from tests.helpers.safety_kit import fingerprint, nw, status, until, write_profile

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(not IS_ROOT, reason="kernel test: needs root for namespaces")]


@pytest.fixture
def node(netns_pair, tmp_path):
    """A namespace, its state dir, and an agent directory D holding x.toml (content A)."""
    d = tmp_path / "profiles"
    write_profile(d, "x", iface="srv0", members=8, rules=1, variant=1)
    return netns_pair.server, tmp_path / "state", d


def _change(d) -> None:
    """Edit D/x.toml in place (content B)."""
    write_profile(d, "x", iface="srv0", members=8, rules=2, variant=2)


def test_agent_never_reapplies_a_change_the_confirm_timeout_reverted(node):
    ns, state, d = node
    nw(ns, state, "agent", "--profiles", str(d), "--once")
    fa = fingerprint(ns)
    _change(d)
    nw(ns, state, "apply", str(d / "x.toml"), "--confirm-timeout", "2")
    assert until(lambda: StateStore(state).pending() is None)  # the watcher reverted
    assert StateStore(state).current() == 1 and fingerprint(ns) == fa
    agent = nw(ns, state, "agent", "--profiles", str(d), "--once", check=False)
    assert agent.returncode == 1, agent.stderr
    assert "keeping generation 1" in agent.stderr and "reverted automatically" in agent.stderr
    report = status(ns, state)
    assert report["generation"] == 1 and fingerprint(ns) == fa
    assert report["last_revert"]["generation"] == 2 and report["quarantined"]
    assert any(w.startswith("REVERTED: generation 2") for w in report["warnings"])
    assert "reverted: confirm-timeout" in (state / "generations/2/meta.json").read_text()
    # The same content under another path and name is the same content.
    other = d.parent / "elsewhere"
    other.mkdir()
    shutil.copy(d / "x.toml", other / "y.toml")
    shutil.copy(d / "x-nets.txt", other / "x-nets.txt")
    again = nw(ns, state, "agent", "--profiles", str(other), "--once", check=False)
    assert again.returncode == 1 and "keeping generation 1" in again.stderr
    # An operator's explicit apply lifts the quarantine; ack clears the notice.
    nw(ns, state, "apply", str(d / "x.toml"))
    assert status(ns, state)["quarantined"] == []
    assert nw(ns, state, "agent", "--profiles", str(d), "--once").returncode == 0
    assert "acknowledged: generation 2" in nw(ns, state, "ack").stdout
    assert status(ns, state)["last_revert"] is None


def test_plain_apply_during_a_pending_confirm_is_refused(node, tmp_path):
    ns, state, d = node
    a = d / "x.toml"
    b = write_profile(tmp_path / "b", "b", iface="srv0", members=4, rules=1, variant=3)
    c = write_profile(tmp_path / "c", "c", iface="srv0", members=4, rules=1, variant=4)
    nw(ns, state, "apply", str(a))
    nw(ns, state, "apply", str(b), "--confirm-timeout", "60")
    plain = nw(ns, state, "apply", str(b), check=False)
    assert plain.returncode == 1 and "waits for confirmation" in plain.stderr
    assert status(ns, state)["pending_confirm"]["generation"] == 2
    out = nw(ns, state, "apply", str(c), "--confirm-timeout", "60", "--output", "json")
    result = json.loads(out.stdout)
    assert result["superseded_generation"] == 2
    assert result["pending_confirm"]["previous_generation"] == 1  # the last confirmed
    nw(ns, state, "rollback")
    assert status(ns, state)["generation"] == 1


def test_reboot_with_a_pending_confirm_boots_into_the_last_kept_generation(node):
    """The watcher dies (as at a reboot) and the kernel loses nodewall's rules: the boot
    command reverts at once instead of waiting for a confirm nobody can give."""
    ns, state, d = node
    nw(ns, state, "agent", "--profiles", str(d), "--once")
    fa = fingerprint(ns)
    _change(d)
    nw(ns, state, "apply", str(d / "x.toml"), "--confirm-timeout", "120")
    os.kill(StateStore(state).pending().watcher_pid, signal.SIGKILL)
    boot = nw(ns, state, "agent", "--profiles", str(d), "--once", check=False)
    assert "never confirmed: reverted to 1" in boot.stderr, boot.stderr
    assert boot.returncode == 1 and "keeping generation 1" in boot.stderr
    assert StateStore(state).pending() is None and fingerprint(ns) == fa
    assert status(ns, state)["last_revert"]["reason"] == "watcher-gone"


def test_a_reused_watcher_pid_does_not_keep_an_expired_change(node, tmp_path):
    ns, state, d = node
    b = write_profile(tmp_path / "b", "b", iface="srv0", members=4, rules=1, variant=3)
    nw(ns, state, "apply", str(d / "x.toml"))
    fa = fingerprint(ns)
    nw(ns, state, "apply", str(b), "--confirm-timeout", "1")
    store = StateStore(state)
    pending = store.pending()
    os.kill(pending.watcher_pid, signal.SIGKILL)
    impostor = subprocess.Popen(["sleep", "60"])  # a live process with another identity
    try:
        store.write_pending(replace(pending, watcher_pid=impostor.pid))
        time.sleep(1.2)
        confirm = nw(ns, state, "confirm", check=False)
        assert confirm.returncode == 6 and "nothing is waiting" in confirm.stderr
        assert "reverted" in confirm.stderr
        assert status(ns, state)["generation"] == 1 and fingerprint(ns) == fa
    finally:
        impostor.kill()
        impostor.wait()
