"""Fixtures for the TUI tests: a profile copied into a temp dir (the tests chdir
there so paths on screen are stable), the fake service, and pilot helpers."""
from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from nodewall.tui.app import make_app
from rich.console import Console

from .fakes import FakeClock, FakeService

DATA = Path(__file__).parent / "data"
SNAPSHOTS = Path(__file__).parent / "snapshots"


@pytest.fixture
def profile(tmp_path, monkeypatch) -> Path:
    shutil.copy(DATA / "redis-host.toml", tmp_path / "redis-host.toml")
    shutil.copy(DATA / "blocklist.txt", tmp_path / "blocklist.txt")  # its nets_file
    monkeypatch.chdir(tmp_path)
    return Path("redis-host.toml")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(clock, profile) -> FakeService:
    return FakeService(clock=clock, profile_path=str(profile))


@pytest.fixture
def new_app(fake, profile, clock):
    """new_app(**kwargs) -> NodewallApp on the fake; ticks only when a test says so."""
    def build(**kwargs):
        kwargs.setdefault("interval", 60)
        kwargs.setdefault("clock", clock)
        return make_app(lambda: fake, [profile], **kwargs)
    return build


async def settle(pilot) -> None:
    """Let workers finish and their messages be handled."""
    for _ in range(3):
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def tick(pilot, clock: FakeClock | None = None, dt: float = 1.0) -> None:
    """One refresh, as the interval timer would do it.  The app skips a tick while a
    status call is still in flight (a screen switch starts one too), so tick again
    until one is taken: the snapshot then always has the same history length."""
    # Connected, and no status call in flight: a report is stamped when the worker
    # runs, so one still pending would share the tick's time and add no rate.
    for _ in range(50):
        await settle(pilot)
        if pilot.app.client_ready and not pilot.app._status_busy:
            break
    if clock is not None:
        clock.advance(dt)
    await settle(pilot)
    for _ in range(20):
        skipped = pilot.app.skipped_ticks
        pilot.app.tick()
        await settle(pilot)
        if pilot.app.skipped_ticks == skipped:
            return
    raise AssertionError("the app skipped 20 refreshes in a row")


def screen_text(app) -> str:
    """The screen as plain text (what a tmux capture-pane shows)."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), record=True,
                      color_system=None, force_terminal=False, legacy_windows=False)
    console.print(app.screen._compositor.render_update(
        full=True, screen_stack=app._background_screens))
    lines = console.export_text().splitlines()
    return "\n".join(line.rstrip() for line in lines) + "\n"
