"""The exporter over the fake dataplane: a state dir in tmp_path, profiles written on
demand, nothing that reaches the host (as tests/unit/safety/conftest.py)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from nodewall.engine.safety import state_dir, transactions, validation
from nodewall.engine.system import netns

from tests.helpers.metrics_kit import CountingDataplane, MetricsRig, metrics_service
from tests.unit.safety.conftest import FakePopen, profile_text


@pytest.fixture
def mrig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MetricsRig:
    monkeypatch.setattr(state_dir, "RUN_ROOT", tmp_path / "run")
    monkeypatch.setattr(validation, "interface_exists", lambda name: True)
    monkeypatch.setattr(transactions, "_ipset_children_here", list)
    monkeypatch.setattr(subprocess, "Popen", FakePopen())
    monkeypatch.setattr(netns, "current_name", lambda: None)
    work = tmp_path / "work"
    work.mkdir()
    fake = CountingDataplane()
    return MetricsRig(metrics_service(tmp_path / "state", fake), fake, work)


def write_profile(rig: MetricsRig, name: str, port: int) -> Path:
    path = rig.work / f"{name}.toml"
    path.write_text(profile_text(port))
    return path
