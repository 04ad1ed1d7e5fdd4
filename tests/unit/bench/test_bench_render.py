"""bench/run.py renders results.md from rows without measuring: the goal table, each
section's table with its profile summary, and the hand-written profiles file at the end
(a render failing after a full run loses the run, so it is tested here)."""
from __future__ import annotations

from pathlib import Path

from bench import run
from bench.common import Row

META = {"date": "2026-01-01 00:00 UTC", "command": "make bench", "quick": False,
        "sections": ["tui", "small_apply"], "minutes": 1.0, "errors": {},
        "machine": {"cpu": "test", "cores": 2, "memory": "1 GiB", "kernel": "6.x",
                    "os": "Debian"}}


def _rows() -> list[Row]:
    return [Row("tui", "CPU per tick", "budget", 10.0, 24.0, "ms", goal=1.0,
                why="Textual redraw"),
            Row("small_apply", "example apply", "raw restores", 8.0, 258.0, "ms", goal=10.0)]


def test_results_hold_goals_sections_and_profiles(tmp_path: Path):
    out = tmp_path / "results.md"
    run.write_results(_rows(), META, [], out)
    text = out.read_text()
    goals = text.split("## Goals", 1)[1]
    assert "CPU per tick" in goals and "**missed**" in goals and "Textual redraw" in goals
    assert run.SECTION_PROFILES["tui"][0] in text  # the section's profile summary
    if run.PROFILES_MD.is_file():
        assert text.rstrip().endswith(run.PROFILES_MD.read_text().rstrip())


def test_readme_block_is_the_goal_rows(tmp_path: Path):
    summary = "\n".join(run.summary_md(_rows(), META))
    assert "`make bench` took 1.0 min" in summary
    assert "CPU per tick" in summary and "example apply" in summary
