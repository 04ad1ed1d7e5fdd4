"""The transaction layer over a fake dataplane (tests/helpers/fake_dataplane.py): a
state dir in tmp_path, profiles written on demand, and nothing that reaches the host:
interfaces always "exist", the scan for a dead apply's `ipset` processes finds none,
and the commit-confirm watcher is never started (its command line is recorded: the
watcher is the one process these code paths start, with subprocess.Popen).  Every
test here keeps the transaction lock in its tmp_path, not in the host's /run/nodewall
(where a real nodewall or another test run would share it)."""
from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from nodewall.engine.dataplane.orchestrator import Orchestrator
from nodewall.engine.safety import state_dir, transactions, validation
from nodewall.engine.safety.state_dir import StateStore
from nodewall.engine.safety.transactions import Transactions
from nodewall.engine.safety.validation import load_and_plan
from nodewall.engine.system import netns

from tests.helpers.fake_dataplane import FakeDataplane, Killed, fingerprint

ORIGINAL_IPSET_SCAN = transactions._ipset_children_here


@pytest.fixture(autouse=True)
def private_run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state_dir, "RUN_ROOT", tmp_path / "run")


def profile_text(port: int, *, backend: str = "iptables", nets_file: str | None = None,
                 interface: str = "eth9") -> str:
    """One host endpoint, an allow of tcp `port`; with `nets_file`, a deny of it."""
    lines = ["[settings]", f'backend = "{backend}"', 'failsafe_inbound = ["tcp:22"]',
             "failsafe_outbound = []",
             "[[host_endpoints]]", 'name = "h"', f'interface = "{interface}"',
             'labels = { role = "h" }',
             "[[policies]]", 'name = "web"', "order = 20", 'selector = "all()"',
             'types = ["ingress"]', "  [[policies.ingress]]", '  action = "allow"',
             '  protocol = "tcp"', f"  destination = {{ ports = [{port}] }}"]
    if nets_file:
        lines += ["[[network_sets]]", 'name = "bad"', 'labels = { list = "bad" }',
                  f'nets_file = "{nets_file}"',
                  "[[policies]]", 'name = "deny-bad"', "order = 10", 'selector = "all()"',
                  'types = ["ingress"]', "  [[policies.ingress]]", '  action = "deny"',
                  "  source = { selector = 'list == \"bad\"' }"]
    return "\n".join(lines) + "\n"


@dataclass
class FakePopen:
    """Stands in for the detached watcher: records how it would have been started."""

    calls: list[tuple[list[str], dict[str, Any]]] = field(default_factory=list)
    pid: int = os.getpid()  # alive: recover() leaves its pending confirm alone

    def __call__(self, cmd: list[str], **kw: Any) -> SimpleNamespace:
        self.calls.append((cmd, kw))
        return SimpleNamespace(pid=self.pid)


@dataclass
class Rig:
    root: Path  # the state dir
    work: Path  # where profiles are written
    fake: FakeDataplane
    tx: Transactions
    popen: FakePopen

    @property
    def store(self) -> StateStore:
        return self.tx.store

    def profile(self, name: str, port: int, **kw: Any) -> Path:
        path = self.work / f"{name}.toml"
        path.write_text(profile_text(port, **kw))
        return path

    def planned(self, path: Path, backend: str | None = None) -> frozenset[str]:
        """What the fake kernel holds once `path` is applied (without panic)."""
        return fingerprint(load_and_plan([path], backend=backend)[1])

    def restart(self) -> Transactions:
        """Another nodewall process on the same state dir and the same kernel."""
        self.tx = Transactions(StateStore(self.root), Orchestrator([self.fake]))
        return self.tx


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Rig:
    monkeypatch.setattr(validation, "interface_exists", lambda name: True)
    monkeypatch.setattr(transactions, "_ipset_children_here", list)
    popen = FakePopen()
    monkeypatch.setattr(subprocess, "Popen", popen)
    monkeypatch.setattr(netns, "current_name", lambda: None)
    work = tmp_path / "work"
    work.mkdir()
    fake = FakeDataplane()
    root = tmp_path / "state"
    return Rig(root, work, fake, Transactions(StateStore(root), Orchestrator([fake])), popen)


def die_at(monkeypatch: pytest.MonkeyPatch, obj: object, name: str, *,
           after: bool = False) -> None:
    """`obj.name` kills the process (raises Killed) on its next call: before doing
    anything, or `after` it did its work."""
    original: Callable[..., Any] = getattr(obj, name)

    def dying(*args: Any, **kw: Any) -> Any:
        if after:
            original(*args, **kw)
        raise Killed(name)

    monkeypatch.setattr(obj, name, dying)
