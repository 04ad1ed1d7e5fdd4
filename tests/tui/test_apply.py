"""Apply flow: diff preview -> apply with a confirm timeout -> keep / revert /
the engine's watcher reverting at the deadline; read-only and non-root."""
from __future__ import annotations

import pytest
from nodewall.tui.screens.apply import ApplyScreen

from .conftest import screen_text, settle, tick

pytestmark = pytest.mark.asyncio


async def applied(pilot, clock) -> None:
    await tick(pilot, clock)
    await pilot.press("5")
    await settle(pilot)
    assert isinstance(pilot.app.screen, ApplyScreen)
    await pilot.press("d")
    await settle(pilot)
    text = screen_text(pilot.app)
    assert "rules +1 -1" in text and "-j NOTRACK (b2)" in text
    assert "XDP: 1 of 2 untracked rules in XDP" in text and "c3: raw only: egress" in text
    await pilot.press("a")
    await settle(pilot)
    assert "Unless you keep them (K) within 30s" in screen_text(pilot.app)
    await pilot.press("y")
    await settle(pilot)


async def test_apply_then_keep(new_app, fake, clock):
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await applied(pilot, clock)
        assert fake.calls.count("apply") == 1 and fake.pending is not None
        assert "KEEP generation 2? K keep / R revert  30s" in screen_text(app)
        clock.advance(12)
        app.second()
        await settle(pilot)
        assert "R revert  18s" in screen_text(app)
        await pilot.press("1")  # the countdown follows to every screen
        assert "R revert  18s" in screen_text(app)
        await pilot.press("K", "y")
        await settle(pilot)
        assert "confirm" in fake.calls and fake.pending is None and fake.generation == 2
        text = screen_text(app)
        assert "KEEP" not in text and "generation 2 kept" in text and "gen 2" in text


async def test_apply_then_revert(new_app, fake, clock):
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await applied(pilot, clock)
        await pilot.press("R", "y")
        await settle(pilot)
        assert "rollback" in fake.calls and fake.generation == 1
        assert "changes reverted" in screen_text(app) and "gen 1" in screen_text(app)


async def test_countdown_runs_out_and_the_watcher_reverts(new_app, fake, clock):
    app = new_app(confirm_timeout=10)
    async with app.run_test(size=(80, 24)) as pilot:
        await tick(pilot, clock)
        await pilot.press("5", "t")  # 10 s -> 30 s
        await settle(pilot)
        assert app.confirm_timeout == 30
        app.confirm_timeout = 10
        await pilot.press("d")
        await settle(pilot)
        await pilot.press("a", "y")
        await settle(pilot)
        assert "R revert  10s" in screen_text(app)
        clock.advance(10.5)  # past the deadline: the (fake) detached watcher reverts
        app.second()
        await settle(pilot)
        text = screen_text(app)
        assert "reverted to generation 1 (confirm timeout)" in text
        assert "KEEP" not in text
        assert fake.reverted_by_watcher == 1
        assert "rollback" not in fake.calls  # the TUI never rolls back a second time
        await pilot.press("R", "y")  # nothing pending: revert is not available
        await settle(pilot)
        assert "rollback" not in fake.calls


async def test_readonly_flag_disables_apply_keep_revert(new_app, fake, clock):
    app = new_app(readonly=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await tick(pilot, clock)
        await pilot.press("5", "d")
        await settle(pilot)
        assert "rules +1 -1" in screen_text(app)  # the preview still works
        await pilot.press("a", "y")
        await settle(pilot)
        assert "apply" not in fake.calls
        assert "READ-ONLY (--readonly)" in screen_text(app)


async def test_non_root_starts_read_only_and_still_shows_status(new_app, fake, clock):
    fake.is_root = False
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await tick(pilot, clock)
        text = screen_text(app)
        assert "READ-ONLY (not root: showing what can be read)" in text
        assert "srv0" in text
        assert app.guard.readonly
        await pilot.press("5", "d", "a", "y")
        await settle(pilot)
        assert "apply" not in fake.calls


async def test_quit_asks_while_changes_are_pending(new_app, fake, clock):
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await applied(pilot, clock)
        await pilot.press("q")
        await settle(pilot)
        text = screen_text(app)
        assert "generation 2 waits for keep" in text and "Quit anyway?" in text
        await pilot.press("n")
        await settle(pilot)
        assert app.is_running
        await pilot.press("q", "y")
        await settle(pilot)
    assert fake.pending is not None  # quitting leaves the decision to the watcher
