"""Commit-confirm (issue 5, item 1) and locking (item 4), through the CLI in a
namespace."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from nodewall.engine.safety.state_dir import StateStore
from nodewall.engine.system import netns

from tests.conftest import IS_ROOT
from tests.helpers.safety_kit import fingerprint, nw, nw_cmd, status, until, write_profile

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(not IS_ROOT, reason="kernel test: needs root for namespaces")]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def two(netns_pair, tmp_path, request):
    """Two profiles on the packet filter `request.param` (default iptables)."""
    backend = getattr(request, "param", "iptables")
    a = write_profile(tmp_path, "a", iface="srv0", members=20, rules=2, variant=1,
                      backend=backend)
    b = write_profile(tmp_path, "b", iface="srv0", members=20, rules=2, variant=2,
                      backend=backend)
    return netns_pair.server, tmp_path / "state", a, b


BOTH = pytest.mark.parametrize("two", ["iptables", "nftables"], indirect=True)


@BOTH
def test_apply_whose_session_dies_in_the_confirm_window_is_rolled_back(two):
    ns, state, a, b = two
    nw(ns, state, "apply", str(a))
    fa = fingerprint(ns)
    # the operator's "SSH session": a shell in its own session that applies, then waits
    shell = subprocess.Popen(["bash", "-c", " ".join(nw_cmd(ns, state, "apply", str(b),
                                                            "--confirm-timeout", "4"))
                              + "; sleep 60"], start_new_session=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert until(lambda: StateStore(state).current() == 2
                      and StateStore(state).pending() is not None)
        report = status(ns, state)
        p = report["pending_confirm"]
        assert p["generation"] == 2 and p["previous_generation"] == 1
        assert 0 < p["seconds_left"] <= 4
        text = nw(ns, state, "status").stdout
        assert "PENDING CONFIRM: generation 2 reverts to 1" in text
        assert fingerprint(ns) != fa
    finally:  # the session dies: every process of it, at once
        os.killpg(shell.pid, signal.SIGKILL)
        shell.wait()
    watcher = StateStore(state).pending().watcher_pid
    assert watcher and _alive(watcher)  # detached: not part of the killed session
    assert until(lambda: StateStore(state).pending() is None)
    assert StateStore(state).current() == 1
    assert fingerprint(ns) == fa
    assert status(ns, state)["pending_confirm"] is None
    assert until(lambda: not _alive(watcher))
    out = nw(ns, state, "confirm", check=False)  # too late: nothing to confirm
    assert out.returncode == 6 and "nothing is waiting for confirmation" in out.stderr


@BOTH
def test_confirm_keeps_the_change(two):
    ns, state, a, b = two
    nw(ns, state, "apply", str(a))
    out = nw(ns, state, "apply", str(b), "--confirm-timeout", "2").stdout
    assert "confirm` within" in out and "reverts to generation 1" in out
    fb = fingerprint(ns)
    watcher = StateStore(state).pending().watcher_pid
    assert "kept generation 2" in nw(ns, state, "confirm").stdout
    assert until(lambda: not _alive(watcher))
    time.sleep(2.5)  # past the deadline: nothing reverts
    assert StateStore(state).current() == 2 and fingerprint(ns) == fb
    assert status(ns, state)["pending_confirm"] is None


def test_expired_confirm_without_watcher_reverts_at_next_command(two):
    """Belt and braces: the watcher itself killed (or a reboot) — the next command
    sees the expired, unconfirmed change and reverts it."""
    ns, state, a, b = two
    nw(ns, state, "apply", str(a))
    fa = fingerprint(ns)
    nw(ns, state, "apply", str(b), "--confirm-timeout", "1")
    os.kill(StateStore(state).pending().watcher_pid, signal.SIGKILL)
    time.sleep(3.5)  # deadline (1 s) + grace (2 s)
    out = nw(ns, state, "status", "--output", "json")
    assert "never confirmed: reverted to 1" in out.stderr
    assert json.loads(out.stdout)["generation"] == 1 and fingerprint(ns) == fa


def test_apply_on_top_of_unconfirmed_change_reverts_to_last_confirmed(two, tmp_path):
    ns, state, a, b = two
    c = write_profile(tmp_path, "c", iface="srv0", members=5, rules=1, variant=3)
    nw(ns, state, "apply", str(a))
    fa = fingerprint(ns)
    nw(ns, state, "apply", str(b), "--confirm-timeout", "30")
    nw(ns, state, "apply", str(c), "--confirm-timeout", "1.5")
    p = status(ns, state)["pending_confirm"]
    assert p["generation"] == 3 and p["previous_generation"] == 1
    assert until(lambda: StateStore(state).pending() is None)
    assert StateStore(state).current() == 1 and fingerprint(ns) == fa


# -- locking ------------------------------------------------------------------------

def _hold_lock(ns: str, state: Path) -> None:
    """Hold the state dir's lock from inside the namespace until `release` appears."""

    def hold():
        with StateStore(state).lock():
            with open(state / "held", "w"):
                pass
            while not (state / "release").exists():
                time.sleep(0.02)
    netns.run_in_netns(ns, hold)


def test_second_apply_waits_or_fails_with_no_wait(two):
    ns, state, a, _b = two
    holder = threading.Thread(target=_hold_lock, args=(ns, state), daemon=True)
    holder.start()
    assert until(lambda: (state / "held").exists())
    busy = nw(ns, state, "apply", "--no-wait", str(a), check=False)
    assert busy.returncode == 4  # lock busy
    assert "another nodewall transaction is running here (pid" in busy.stderr
    assert "hint:" in busy.stderr
    waiting = subprocess.Popen(nw_cmd(ns, state, "apply", str(a)), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    line = waiting.stderr.readline()  # printed while it waits
    assert "waiting for another nodewall transaction (pid" in line
    assert waiting.poll() is None and StateStore(state).current() is None
    (state / "release").touch()
    holder.join(timeout=30)
    assert waiting.wait(timeout=60) == 0 and StateStore(state).current() == 1


def test_two_applies_at_once_serialize(two):
    ns, state, a, b = two
    procs = [subprocess.Popen(nw_cmd(ns, state, "apply", "--output", "json", str(p)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for p in (a, b)]
    results = [(p.wait(timeout=120), p.communicate()) for p in procs]
    assert [rc for rc, _ in results] == [0, 0], results
    gens = sorted(json.loads(out)["generation"] for _, (out, _err) in results)
    assert gens == [1, 2]
    last = [str(p) for p, (_, (out, _e)) in zip((a, b), results)
            if json.loads(out)["generation"] == 2]
    meta = json.loads((state / "generations" / "2" / "meta.json").read_text())
    assert meta["sources"] == last
    report = status(ns, state)
    assert report["generation"] == 2 and report["drift"] == []
    nw(ns, state, "apply", last[0])  # the kernel is exactly the last one
    assert status(ns, state)["generation"] == 2


def test_late_revert_of_a_pending_apply_does_not_roll_back_further(two, tmp_path):
    """The TUI's revert names the pending generation: once the watcher has reverted it,
    a revert arriving a moment later is refused instead of undoing generation 1 too."""
    from nodewall.engine.errors import NodewallError
    from nodewall.engine.service import Service
    from nodewall.engine.system.netns import run_in_netns

    ns, state, a, b = two
    nw(ns, state, "apply", str(a))
    fa = fingerprint(ns)
    nw(ns, state, "apply", str(b), "--confirm-timeout", "1")
    assert until(lambda: StateStore(state).pending() is None)  # the watcher reverted
    assert StateStore(state).current() == 1

    def late_revert() -> str:
        try:
            Service(netns=ns, state_dir=state).rollback(pending_generation=2)
        except NodewallError as exc:
            return exc.message
        return "rolled back"

    assert "no longer pending" in run_in_netns(ns, late_revert)
    assert StateStore(state).current() == 1 and fingerprint(ns) == fa
