"""Dashboard, navigation, ticks and the worker discipline."""
from __future__ import annotations

import threading

import pytest
from nodewall.tui.screens.dashboard import DashboardScreen
from textual.widgets import DataTable

from .conftest import screen_text, settle, tick

pytestmark = pytest.mark.asyncio


async def test_dashboard_shows_interfaces_rates_conntrack_and_busiest(new_app, fake, clock):
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await tick(pilot, clock)
        await tick(pilot, clock, dt=2)
        assert isinstance(app.screen, DashboardScreen)
        text = screen_text(app)
        assert "srv0" in text and "native nw_xdp" in text and "uplink" in text
        assert "24.4kB/s" in text  # 50,000 bytes over 2 s, between two ticks
        assert "1200/65536" in text and "conntrack 80%" not in text
        top = app.screen.query_one("#top-rules", DataTable)
        assert [str(top.get_row_at(i)[0]) for i in range(2)] == ["redis-untracked"] * 2
        assert "netns nwt-fake" in text and "gen 1" in text


async def test_conntrack_warning_above_80_percent(new_app, fake, clock):
    fake.ct_count, fake.ct_max = 900, 1000
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await tick(pilot, clock)
        assert "! conntrack 90% full" in screen_text(app)
        fake.ct_count = 500
        await tick(pilot, clock)
        assert "! conntrack" not in screen_text(app)


async def test_dashboard_recommends_nftables_on_an_iptables_nft_host(new_app, fake, clock):
    app = new_app()
    async with app.run_test(size=(100, 24)) as pilot:
        await tick(pilot, clock)
        assert "nftables recommended" not in screen_text(app)
        fake.recommendation = "this host's `iptables` is iptables-nft"
        await tick(pilot, clock)
        text = screen_text(app)
        assert "! this host's `iptables` is iptables-nft" in text
        assert "nftables recommended" in text
        fake.recommendation = None
        await tick(pilot, clock)
        assert "iptables-nft" not in screen_text(app)


async def test_engine_is_never_called_on_the_ui_thread(new_app, fake, clock):
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        for key in "12345":
            await pilot.press(key)
            await tick(pilot, clock)
        await pilot.press("d")  # diff on the apply screen
        await settle(pilot)
    assert {"status", "diff", "validate", "conntrack_sample"} <= set(fake.calls)
    assert threading.main_thread() not in fake.threads


async def test_a_slow_kernel_skips_ticks_instead_of_piling_up(new_app, fake, clock):
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await tick(pilot, clock)
        before = fake.calls.count("status")
        gate = fake.status_gate = threading.Event()
        assert app.request_status() is True
        for _ in range(5):
            assert app.request_status() is False  # previous still running: skipped
            await pilot.press("2")  # the UI stays responsive meanwhile
            await pilot.press("1")
        assert isinstance(app.screen, DashboardScreen)
        gate.set()
        await settle(pilot)
        assert fake.calls.count("status") == before + 1
        assert app.request_status() is True
        await settle(pilot)


async def test_interval_keys_and_pause(new_app, fake, clock):
    app = new_app(interval=2)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("plus")
        assert app.interval == 1
        await pilot.press("minus", "minus")
        assert app.interval == 4
        await pilot.press("p")
        assert app.paused and "PAUSED" in screen_text(app)
        before = fake.calls.count("status")
        await tick(pilot, clock)
        assert fake.calls.count("status") == before
        await pilot.press("p")
        await tick(pilot, clock)
        assert fake.calls.count("status") == before + 1


async def test_help_palette_and_quit(new_app, fake):
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        assert "Global keys" in screen_text(app)
        await pilot.press("escape")
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert {"Go to rules", "Diff profiles", "Apply profiles"} <= set(titles)
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert type(app.screen).__name__ == "CommandPalette"
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0


async def test_ctrl_q_goes_through_the_same_checks(new_app, fake, clock):
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await tick(pilot, clock)
        app.buffers[next(iter(app.buffers))].set_text("# edited\n")
        await pilot.press("ctrl+q")
        await settle(pilot)
        assert "unsaved edits in redis-host.toml" in screen_text(app)
        await pilot.press("y")
        await settle(pilot)
    assert app.return_code == 0
