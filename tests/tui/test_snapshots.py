"""Plain-text snapshots of every screen at 80x24 (what tmux capture-pane shows).
Everything an operator must notice is text here, so NO_COLOR and 16-colour
terminals lose nothing.  Refresh after a deliberate change with
NODEWALL_UPDATE_SNAPSHOTS=1 and review the diff."""
from __future__ import annotations

import os

import pytest
from textual.widgets import TabbedContent

from .conftest import SNAPSHOTS, screen_text, settle, tick

pytestmark = pytest.mark.asyncio
UPDATE = os.environ.get("NODEWALL_UPDATE_SNAPSHOTS") == "1"


def check(name: str, text: str) -> None:
    path = SNAPSHOTS / f"{name}.txt"
    if UPDATE:
        path.write_text(text)
    assert path.exists(), f"no snapshot {path.name}: run with NODEWALL_UPDATE_SNAPSHOTS=1"
    assert text == path.read_text(), f"screen differs from {path.name}:\n{text}"


async def three_ticks(pilot, clock) -> None:
    for _ in range(3):
        await tick(pilot, clock)


async def test_snapshot_screens(new_app, fake, clock):
    fake.ct_count, fake.ct_max = 56_000, 65_536  # 85 %: the warning shows
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await three_ticks(pilot, clock)
        check("dashboard", screen_text(app))
        await pilot.press("2")
        await tick(pilot, clock)
        check("rules", screen_text(app))
        await pilot.press("3")
        await settle(pilot)
        check("conntrack", screen_text(app))
        await pilot.press("4")
        await settle(pilot)
        check("profiles-toml", screen_text(app))
        app.screen.query_one("#prof-tabs", TabbedContent).active = "tab-forms"
        await settle(pilot)
        check("profiles-forms", screen_text(app))
        await pilot.press("5", "d")
        await settle(pilot)
        check("apply-diff", screen_text(app))
        await pilot.press("a", "y")
        await settle(pilot)
        check("apply-pending", screen_text(app))
        await pilot.press("question_mark")
        await settle(pilot)
        check("help-apply", screen_text(app))


async def test_snapshot_readonly_banner(new_app, fake, clock):
    fake.is_root = False
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await three_ticks(pilot, clock)
        check("dashboard-not-root", screen_text(app))
