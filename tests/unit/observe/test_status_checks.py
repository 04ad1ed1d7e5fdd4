"""The status tick's checks: drift and foreign objects are the expensive reads, so a
status call with a maximum age reuses the last ones for the same generation within
that age, and runs them again after it (or when the generation changed).  A call
without a maximum age (`nodewall status`, `--output json`) always checks afresh."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from nodewall.engine.dataplane.iptables.mode import IptablesMode
from nodewall.engine.dataplane.shape import Drift, ExpectedShape
from nodewall.engine.service import Service

from tests.helpers.metrics_kit import CountingDataplane, metrics_service
from tests.unit.safety.conftest import profile_text


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CheckedDataplane(CountingDataplane):
    """Counts its drift and foreign checks and its reads; reports one foreign rule."""

    def __init__(self) -> None:
        super().__init__()
        self.drift_checks = 0
        self.foreign_checks = 0
        self.observes = 0

    def observe(self) -> Any:
        self.observes += 1
        return super().observe()

    def drift(self, expected: ExpectedShape, observed: Any) -> list[Drift]:
        self.drift_checks += 1
        return super().drift(expected, observed)

    def foreign(self, observed: Any) -> list[str]:
        self.foreign_checks += 1
        return ["a rule of another tool jumps to nw-fi-eth0"]


def _service(tmp_path: Path) -> tuple[Service, CheckedDataplane, Clock]:
    fake = CheckedDataplane()
    svc = metrics_service(tmp_path / "state", fake)
    # the host's iptables mode is not what these tests look at (and reading it needs root)
    svc.kernel.iptables_mode = lambda: IptablesMode("none", "nft", 0, 0, 0)  # type: ignore[method-assign]
    clock = Clock()
    svc.checks.clock = clock
    return svc, fake, clock


def test_tick_reuses_checks_within_the_interval_and_reruns_them_after(tmp_path: Path):
    svc, fake, clock = _service(tmp_path)
    fake.drifted = [Drift("chain", "nw-fi-eth0", "is missing")]
    first = svc.status(checks_max_age=5.0)
    assert (fake.drift_checks, fake.foreign_checks) == (1, 1)
    assert first.checks_age_s == 0.0
    assert first.drift == ("chain nw-fi-eth0 is missing",)

    fake.drifted = []  # the kernel changed, but the tick may show the last checks
    clock.now += 3.0
    again = svc.status(checks_max_age=5.0)
    assert (fake.drift_checks, fake.foreign_checks) == (1, 1)
    assert again.drift == first.drift
    assert again.checks_age_s == 3.0
    assert "foreign: a rule of another tool jumps to nw-fi-eth0" in again.warnings
    assert fake.observes == 2  # the counters are read on every tick

    clock.now += 2.5  # 5.5 s after the checks: they run again
    later = svc.status(checks_max_age=5.0)
    assert (fake.drift_checks, fake.foreign_checks) == (2, 2)
    assert later.drift == () and later.checks_age_s == 0.0


def test_plain_status_checks_every_call(tmp_path: Path):
    svc, fake, _clock = _service(tmp_path)
    svc.status(checks_max_age=5.0)
    svc.status()
    svc.status()
    assert (fake.drift_checks, fake.foreign_checks) == (3, 3)
    assert svc.status().checks_age_s == 0.0


def test_a_new_generation_is_checked_at_once(tmp_path: Path):
    svc, fake, _clock = _service(tmp_path)
    assert svc.status(checks_max_age=5.0).generation is None
    profile = tmp_path / "a.toml"
    profile.write_text(profile_text(80))
    assert svc.apply([profile]).generation == 1
    checks = fake.drift_checks
    report = svc.status(checks_max_age=5.0)
    assert report.generation == 1 and report.checks_age_s == 0.0
    assert fake.drift_checks == checks + 1
