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


def _drop_rows(xdp_1m: float) -> tuple[Row, dict]:
    plain = Row("droprate", "1,000,000 entries: xdp vs raw+ipset", "raw+ipset", 1e6, 1.2e6,
                "drops/s/core", goal=3.0, higher_is_better=True, n=1_000_000,
                extra={"ceiling_pps": 6e6, "sources": 4096})
    receiver = {n: Row("droprate", f"{n:,} entries: xdp vs raw+ipset, receiver's cost only",
                       "raw+ipset", 1.3e6, value, "drops/s/core", goal=3.0,
                       higher_is_better=True, n=n)
                for n, value in ((1, 5.8e7), (1_000_000, xdp_1m))}
    return plain, receiver


def test_droprate_miss_names_the_grown_xdp_cost_when_the_receiver_row_misses_too():
    plain, receiver = _drop_rows(xdp_1m=1.6e6)  # 625 ns a packet at 1M
    why = run._droprate_why(plain, receiver, 4096)
    assert "17 ns at 1, 625 ns at 1,000,000 entries" in why and "4,096 sources" in why


def test_droprate_miss_names_the_injector_when_the_receiver_row_meets_the_goal():
    plain, receiver = _drop_rows(xdp_1m=5e6)
    assert "injector's own cost" in run._droprate_why(plain, receiver, 4096)
