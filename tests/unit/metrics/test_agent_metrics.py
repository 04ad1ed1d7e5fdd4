"""The agent's passes feed nodewall_applies_total{result} and the apply-duration
histogram, and its last pass decides /readyz."""
from __future__ import annotations

from pathlib import Path

from nodewall.engine.safety.agent import OUTCOMES

from tests.helpers.metrics_kit import MetricsRig, value

from .conftest import write_profile


def _agent(mrig: MetricsRig, profiles: Path):
    exporter = mrig.exporter(agent=True)
    agent = mrig.service.agent(profiles, on_pass=exporter.agent.observe)
    agent.log = lambda message: None
    return exporter, agent


def test_passes_are_counted_by_outcome_and_applies_timed(mrig: MetricsRig) -> None:
    profiles = mrig.work / "profiles"
    profiles.mkdir()
    exporter, agent = _agent(mrig, profiles)
    text = exporter.text()
    assert {value(text, "nodewall_applies_total", result=o) for o in OUTCOMES} == {0}
    assert value(text, "nodewall_apply_duration_seconds_count") == 0
    ready = exporter.readiness()
    assert not ready.ready and "has not finished a reconcile pass" in ready.reason

    assert agent.reconcile_once().outcome == "bad_input"  # an empty directory
    ready = exporter.readiness()
    assert not ready.ready and "the last reconcile pass was bad_input" in ready.reason

    (profiles / "a.toml").write_text(write_profile(mrig, "a", 80).read_text())
    assert agent.reconcile_once().outcome == "applied"
    assert agent.reconcile_once().outcome == "unchanged"
    (profiles / "a.toml").write_text("[settings\n")
    assert agent.reconcile_once().outcome == "bad_input"

    text = exporter.text()
    assert value(text, "nodewall_applies_total", result="applied") == 1
    assert value(text, "nodewall_applies_total", result="unchanged") == 1
    assert value(text, "nodewall_applies_total", result="bad_input") == 2
    assert value(text, "nodewall_applies_total", result="failed") == 0
    # the empty directory never reached an apply; the three others did
    assert value(text, "nodewall_apply_duration_seconds_count") == 3
    assert value(text, "nodewall_apply_duration_seconds_bucket", le="+Inf") == 3
    assert value(text, "nodewall_generation") == 1

    (profiles / "a.toml").write_text(write_profile(mrig, "a", 80).read_text())
    agent.reconcile_once()
    assert exporter.readiness().ready


def test_a_failed_apply_is_counted_as_failed(mrig: MetricsRig) -> None:
    profiles = mrig.work / "profiles"
    profiles.mkdir()
    (profiles / "a.toml").write_text(write_profile(mrig, "a", 80).read_text())
    exporter, agent = _agent(mrig, profiles)
    mrig.fake.fail("verify")
    result = agent.reconcile_once()
    assert (result.outcome, result.exit_code) == ("failed", 1) and result.apply_s is not None
    text = exporter.text()
    assert value(text, "nodewall_applies_total", result="failed") == 1
    assert value(text, "nodewall_apply_duration_seconds_count") == 1
    assert "the last reconcile pass was failed" in exporter.readiness().reason


def test_the_standalone_exporter_has_no_apply_metrics(mrig: MetricsRig) -> None:
    text = mrig.exporter().text()
    assert value(text, "nodewall_apply_duration_seconds_count") is None
    assert value(text, "nodewall_applies_total", result="applied") is None
