"""Small operator items: the conntrack history on the table's scale, the drift
view, the Apply screen's fresh start, panic and rollback from the palette."""
from __future__ import annotations

import pytest
from nodewall.tui.messages import TextReady
from nodewall.tui.screens.apply import ApplyScreen

from .conftest import screen_text, settle, tick
from .test_apply import applied

pytestmark = pytest.mark.asyncio


async def test_conntrack_history_is_on_the_tables_scale(new_app, fake, clock):
    fake.ct_count, fake.ct_max = 7, 262_144
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        for _ in range(3):
            await tick(pilot, clock)
        line = next(ln for ln in screen_text(app).splitlines() if "history " in ln)
        assert "▁▁▁" in line and "█" not in line


async def test_drift_view_names_each_object(new_app, fake, clock):
    fake.drift = ("chain nw-fil-in: rule 3 changed", "ipset nw-blocklist-v4: missing")
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await tick(pilot, clock)
        assert "drift: 2" in screen_text(app)
        await pilot.press("D")
        await settle(pilot)
        text = screen_text(app)
        assert "Drift: 2 object(s) differ from generation 1" in text
        assert "- chain nw-fil-in: rule 3 changed" in text
        assert "- ipset nw-blocklist-v4: missing" in text


async def test_apply_screen_shows_the_plan_and_drops_old_messages(new_app, fake, clock):
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await tick(pilot, clock)
        await pilot.press("5")
        await settle(pilot)
        assert isinstance(app.screen, ApplyScreen)
        text = screen_text(app)
        assert "rules +1 -1" in text and "-j NOTRACK (b2)" in text  # no d pressed
        assert fake.calls.count("diff") == 1
        await pilot.press("a", "y")
        await settle(pilot)
        await pilot.press("K", "y")
        await settle(pilot)
        assert "applied generation 2" in screen_text(app)
        await pilot.press("1", "5")
        await settle(pilot)
        text = screen_text(app)
        assert "applied generation 2" not in text  # last visit's message
        assert fake.calls.count("diff") == 3  # a plan for the apply, then one per visit


async def test_palette_panic_on_and_off_and_rollback(new_app, fake, clock):
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await tick(pilot, clock)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Panic on" in titles and "Rollback" in titles and "Show drift" in titles
        app.action_ask_panic(True)
        await settle(pilot)
        assert "Panic ON?" in screen_text(app)
        await pilot.press("n")
        await settle(pilot)
        assert "panic on" not in fake.calls
        app.action_ask_panic(True)
        await settle(pilot)
        await pilot.press("y")
        await tick(pilot, clock)
        assert fake.panic and "PANIC MODE" in screen_text(app)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Panic off" in titles and "Panic on" not in titles
        app.action_ask_panic(False)
        await settle(pilot)
        await pilot.press("y")
        await tick(pilot, clock)
        assert not fake.panic and "PANIC MODE" not in screen_text(app)
        fake.generation = 3
        await tick(pilot, clock)
        app.action_ask_rollback()
        await settle(pilot)
        assert "Roll back generation 3?" in screen_text(app)
        await pilot.press("y")
        await tick(pilot, clock)
        assert fake.generation == 2 and "gen 2" in screen_text(app)


async def test_palette_rollback_while_pending_asks_to_revert(new_app, fake, clock):
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await applied(pilot, clock)
        app.action_ask_rollback()
        await settle(pilot)
        assert "Revert generation 2 now?" in screen_text(app)


async def test_readonly_palette_offers_no_panic_or_rollback(new_app, fake, clock):
    app = new_app(readonly=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await tick(pilot, clock)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Panic on" not in titles and "Rollback" not in titles
        app.action_ask_panic(True)
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert "panic on" not in fake.calls


async def _palette(pilot, title: str) -> None:
    await pilot.press("ctrl+p")
    await settle(pilot)
    await pilot.press(*title)
    await settle(pilot)
    await pilot.press("enter")
    await settle(pilot)


async def test_palette_explains_a_packet(new_app, fake, clock):
    """The same walk as `nodewall explain`: the blocklisted source still reaches
    failsafe :22, and the dialog says which deny failsafe overrode."""
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await tick(pilot, clock)
        await _palette(pilot, "Explain a packet")
        await pilot.press(*"203.0.113.7 192.0.2.10:22/tcp eth0", "enter")
        await settle(pilot)
        text = screen_text(app)
        assert "verdict: ALLOW at filter by (failsafe)" in text
        assert "failsafe overrides a deny" in text and "drop-blocklist" in text
        assert "explain" in fake.calls
        box = app.screen.query_one("#explain-packet")
        box.value = ""
        await pilot.press(*"203.0.113.7 192.0.2.10/icmp eth0", "enter")
        await settle(pilot)
        text = screen_text(app)  # the profile accelerates the blocklist: XDP drops it
        assert "icmp type 8 code 0 203.0.113.7" in text
        assert "verdict: DENY at xdp by drop-blocklist" in text
        box.value = ""
        await pilot.press(*"nonsense", "enter")
        await settle(pilot)
        assert "write SRC DST" in screen_text(app)
        # a slow answer to an earlier packet arrives late: the last packet's stays
        app.screen.post_message(TextReady(["verdict: STALE"], request=1))
        await settle(pilot)
        assert "write SRC DST" in screen_text(app) and "STALE" not in screen_text(app)


async def test_palette_shows_the_history(new_app, fake, clock):
    fake.generation = 2
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await tick(pilot, clock)
        await _palette(pilot, "History")
        text = screen_text(app)
        assert "reverted by timeout" in text and "* " in text
        await pilot.press("escape")
        await settle(pilot)
        assert "reverted by timeout" not in screen_text(app)


async def test_an_automatic_revert_shows_until_acknowledged(new_app, fake, clock):
    """A revert the TUI did not see happen (the CLI's apply timed out) is on the state
    line until acknowledged from the palette, as `nodewall ack` does."""
    fake.last_revert = {"generation": 3, "reverted_to": 2, "at": 1.0,
                        "reason": "confirm-timeout", "content": "c3"}
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await tick(pilot, clock)
        assert "REVERTED gen 3 -> 2 (confirm timed out)" in screen_text(app)
        await tick(pilot, clock)
        assert "REVERTED gen 3" in screen_text(app)  # stays until acknowledged
        await _palette(pilot, "Acknowledge revert")
        await tick(pilot, clock)
        assert "acknowledge_revert" in fake.calls
        assert "REVERTED" not in screen_text(app)
