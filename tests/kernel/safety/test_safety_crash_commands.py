"""Crash atomicity of the other kernel-changing commands (issue 15): `kill -9` (of the
whole process group) at random points of `panic on`, `panic off`, `rollback`, `flush`
and of the confirm watcher's revert, with the XDP backend (the deny accelerated, its
raw backstop and ipset behind it).  The FIRST next command (`status`) completes or
undoes the interrupted one (exit 0, no journal left), and the kernel then holds
exactly the state before or after the command — XDP maps and program included —
and the state dir (generation, panic, pending confirm) says which.  A watcher killed
mid-revert is gone: the revert must be finished."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import IS_ROOT
from tests.helpers.crash_kit import kernel_fingerprint, kill_group, wait_for
from tests.helpers.safety_kit import nw, nw_cmd, write_profile

pytestmark = [pytest.mark.kernel, pytest.mark.slow,
              pytest.mark.skipif(not IS_ROOT, reason="kernel test: needs root for namespaces")]

KILLS = 5  # per command
MEMBERS = 2_000
COMMANDS = {"panic-on": ("panic", "on"), "panic-off": ("panic", "off"),
            "rollback": ("rollback",), "flush": ("flush",)}


class Node:
    """One namespace, two profiles (a, b) and the kernel fingerprints of the states
    the commands move between."""

    def __init__(self, ns: str, state: Path, a: Path, b: Path):
        self.ns, self.state, self.a, self.b = ns, state, a, b
        self.journal = state / "journal.json"
        self.fps: dict[str, str] = {}
        self.now = "nothing"  # the state last seen

    def run(self, *args: str) -> None:
        nw(self.ns, self.state, *args)

    def sources(self) -> list[str] | None:
        current = (self.state / "current").read_text().strip()
        if not current:
            return None
        meta = self.state / "generations" / current / "meta.json"
        return json.loads(meta.read_text())["sources"]

    def learn(self) -> None:
        """The fingerprints of: nothing, a, a in panic, b (over a)."""
        self.fps["nothing"] = kernel_fingerprint(self.ns)
        self.run("apply", str(self.a))
        self.fps["a"] = kernel_fingerprint(self.ns)
        self.run("panic", "on")
        self.fps["a+panic"] = kernel_fingerprint(self.ns)
        self.run("panic", "off")
        self.run("apply", str(self.b))
        self.fps["b"] = kernel_fingerprint(self.ns)
        self.now = "b"
        assert len(set(self.fps.values())) == 4

    def held(self) -> str | None:
        fp = kernel_fingerprint(self.ns)
        return next((name for name, f in self.fps.items() if f == fp), None)

    def bring_to(self, name: str) -> None:
        """From the state last seen (self.now) to `name` (a, a+panic, or b over a)
        with commands that are not killed."""
        step = {("a", "a+panic"): ("panic", "on"), ("a+panic", "a"): ("panic", "off"),
                ("nothing", "a"): ("apply", str(self.a)), ("b", "a"): ("apply", str(self.a)),
                ("a", "b"): ("apply", str(self.b))}
        for _ in range(3):  # through a when there is no direct step
            if self.now == name:
                return
            hop = name if (self.now, name) in step else "a"
            self.run(*step[(self.now, hop)])
            self.now = hop
        raise AssertionError(f"cannot bring the node from {self.now} to {name}")


# action -> (state before, states allowed after the interrupted command + recovery)
CASES = {
    "panic-on": ("a", {"a", "a+panic"}),
    "panic-off": ("a+panic", {"a", "a+panic"}),
    "rollback": ("b", {"a", "b"}),
    "flush": ("a", {"a", "nothing"}),
    "confirm-revert": ("a", {"a"}),  # a watcher killed mid-revert: finished at once
}


def _state_agrees(node: Node, held: str, report: dict) -> None:
    assert report["panic"] == (held == "a+panic"), "panic flag disagrees"
    assert report["pending_confirm"] is None, "a pending confirm is left"
    want = {"nothing": None, "a": [str(node.a)], "a+panic": [str(node.a)],
            "b": [str(node.b)]}[held]
    assert node.sources() == want, f"the state dir says {node.sources()}, kernel: {held}"


def _start(node: Node, action: str) -> tuple[subprocess.Popen | None, int]:
    """Start the command (or, for confirm-revert, an apply of b whose watcher reverts
    it a second later); returns the process to kill (None: the watcher, by pid)."""
    if action != "confirm-revert":
        proc = subprocess.Popen(nw_cmd(node.ns, node.state, *COMMANDS[action]),
                                start_new_session=True, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        return proc, proc.pid
    node.run("apply", str(node.b), "--confirm-timeout", "1")
    pending = json.loads((node.state / "pending.json").read_text())
    return None, pending["watcher_pid"]


def _poll(cond, limit: float = 60.0) -> bool:
    """Poll `cond` every 2 ms (a revert is short) for up to `limit` seconds."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.002)
    return False


def _until_journal(node: Node, proc: subprocess.Popen | None) -> bool:
    if proc is not None:
        return wait_for(node.journal, proc)
    pending = node.state / "pending.json"
    return _poll(lambda: node.journal.exists() or not pending.exists()) and \
        node.journal.exists()


def _finish(proc: subprocess.Popen | None, pid: int, kill: bool) -> None:
    if proc is not None:
        if kill:
            kill_group(proc)
        else:
            assert proc.wait(timeout=120) == 0
        return
    if kill:  # the watcher runs in a session of its own (we started it, through apply)
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_kill9_during_each_command_leaves_before_or_after(netns_pair, tmp_path):
    ns, state = netns_pair.server, tmp_path / "state"
    a, b = (write_profile(tmp_path, name, iface="srv0", members=MEMBERS, rules=20,
                          variant=variant, backend="xdp", untracked=True)
            for name, variant in (("a", 1), ("b", 2)))
    node = Node(ns, state, a, b)
    node.learn()
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    mid = {}
    for action in CASES:
        mid[action] = _kill_at_random_points(node, action, rng, f"seed {seed}")
    print(f"seed {seed}: kills that landed mid-transaction (of {KILLS}): {mid}")
    assert sum(mid.values()) > 0, "no kill landed while a journal existed"


def _kill_at_random_points(node: Node, action: str, rng: random.Random, seed: str) -> int:
    """KILLS kills of `action`, each followed by the checks; returns how many landed
    while the command's journal existed."""
    before, allowed = CASES[action]
    # a reference run, not killed: how long the kernel work takes once journaled
    node.bring_to(before)
    proc, pid = _start(node, action)
    assert _until_journal(node, proc)
    t0 = time.monotonic()
    _finish(proc, pid, kill=False)
    assert _poll(lambda: not node.journal.exists() and
                 not (node.state / "pending.json").exists())
    work = time.monotonic() - t0
    node.now = node.held()

    mid = 0
    for i in range(KILLS):
        node.bring_to(before)
        proc, pid = _start(node, action)
        if i % 3 == 0:  # now and then before the command journals anything
            time.sleep(rng.uniform(0, 0.3))
        elif _until_journal(node, proc):
            time.sleep(rng.uniform(0, work))
        _finish(proc, pid, kill=True)
        mid += node.journal.exists()

        where = f"kill {i} of {action} ({seed})"
        first = nw(node.ns, node.state, "status", "--output", "json", check=False)
        assert first.returncode == 0, f"{where}: the first recovery failed:\n{first.stderr}"
        assert not node.journal.exists(), f"{where}: journal left:\n{first.stderr}"
        held = node.held()
        assert held in allowed, f"{where}: the kernel holds {held or 'a mix'}"
        node.now = held
        report = json.loads(first.stdout)
        assert report["drift"] == [], f"{where}: drift after the first recovery"
        _state_agrees(node, held, report)
    return mid


def test_status_fails_when_the_recovery_cannot_finish(netns_pair, tmp_path):
    """A first recovery that cannot finish is an error (exit 1, the reason on stderr),
    not a status that looks fine while the journal waits."""
    ns, state = netns_pair.server, tmp_path / "state"
    nw(ns, state, "apply", str(write_profile(tmp_path, "a", iface="srv0", rules=2)))
    for copy in (state / "generations" / "1" / "profiles").glob("*.toml"):
        copy.write_text(copy.read_text() + "\n[settings\n")  # the copy no longer loads
    (state / "journal.json").write_text(json.dumps(
        {"target": 2, "previous": 1, "pid": 1, "started": 0.0, "action": "apply"}))
    out = nw(ns, state, "status", check=False)
    assert out.returncode == 1, out.stderr
    assert "an interrupted apply (pid 1) could not be finished" in out.stderr
    assert "Traceback" not in out.stderr
