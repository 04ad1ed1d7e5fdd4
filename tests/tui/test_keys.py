"""Keys: no single keystroke keeps or reverts a pending apply (K / R, then y);
j / k move in tables; the TOML editor types nothing until enter starts editing,
so 1-5 and ? stay screen keys; ctrl+t switches Forms <-> TOML."""
from __future__ import annotations

import pytest
from nodewall.tui.screens.profiles import ProfilesScreen
from nodewall.tui.screens.rules import RulesScreen
from textual.widgets import DataTable, TabbedContent, TextArea

from .conftest import screen_text, settle, tick
from .test_apply import applied

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize("mode", ["1", "2", "3", "4", "5"])
async def test_no_single_key_keeps_or_reverts(new_app, fake, clock, mode):
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await applied(pilot, clock)
        await pilot.press(mode)
        await settle(pilot)
        for key in ("k", "r", "K", "n", "R", "escape", "y", "enter"):
            await pilot.press(key)  # n / escape answer the K / R questions with no
            await settle(pilot)
            if key in ("K", "R"):
                word = "Keep" if key == "K" else "Revert"
                assert f"{word} generation 2" in screen_text(app)
        assert "confirm" not in fake.calls and "rollback" not in fake.calls
        assert fake.pending is not None and app.pending is not None
        await pilot.press("K", "y")
        await settle(pilot)
        assert "confirm" in fake.calls and fake.pending is None


async def test_j_and_k_move_in_the_rules_table(new_app, clock):
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await tick(pilot, clock)
        await pilot.press("2")
        await tick(pilot, clock)
        assert isinstance(app.screen, RulesScreen)
        table = app.screen.query_one("#rules", DataTable)
        table.focus()
        assert table.cursor_row == 0
        await pilot.press("j", "j")
        assert table.cursor_row == 2
        await pilot.press("k")
        assert table.cursor_row == 1


async def test_editor_types_nothing_until_enter(new_app, profile, clock):
    original = profile.read_text()
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await tick(pilot, clock)
        await pilot.press("4")
        await settle(pilot)
        screen = app.screen
        editor = screen.query_one("#prof-editor", TextArea)
        editor.focus()
        await pilot.press("question_mark")
        await settle(pilot)
        assert "Global keys" in screen_text(app)
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("x", "i", "e")  # form keys: nothing on the TOML tab
        await settle(pilot)
        assert editor.text == original
        await pilot.press("enter")  # now editing: keys are text
        await settle(pilot)
        assert "EDITING" in screen_text(app)
        await pilot.press("1", "?")
        await settle(pilot)
        assert editor.text == "1?" + original and app.screen is screen
        await pilot.press("escape", "2")  # stop editing: 2 switches screens again
        await settle(pilot)
        assert isinstance(app.screen, RulesScreen)
        assert screen.query_one("#prof-editor", TextArea).text == "1?" + original


async def test_ctrl_t_switches_forms_and_toml(new_app, clock):
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await tick(pilot, clock)
        await pilot.press("4")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ProfilesScreen)
        tabs = screen.query_one("#prof-tabs", TabbedContent)
        assert tabs.active == "tab-toml"
        await pilot.press("ctrl+t")
        await settle(pilot)
        assert tabs.active == "tab-forms"
        await pilot.press("ctrl+t")
        await settle(pilot)
        assert tabs.active == "tab-toml"
        assert isinstance(app.focused, TextArea)


async def test_readonly_editor_never_starts_editing(new_app, profile, clock):
    app = new_app(readonly=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await tick(pilot, clock)
        await pilot.press("4")
        await settle(pilot)
        editor = app.screen.query_one("#prof-editor", TextArea)
        editor.focus()
        await pilot.press("enter", "a")
        await settle(pilot)
        assert "EDITING" not in screen_text(app) and editor.text == profile.read_text()


async def test_a_long_help_scrolls_instead_of_being_cut(new_app, clock):
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await tick(pilot, clock)
        await pilot.press("2", "question_mark")
        await settle(pilot)
        assert "escape closes" in screen_text(app)
        last = "jumps, default deny)."
        for _ in range(10):
            if last in screen_text(app):
                break
            await pilot.press("down")
            await settle(pilot)
        assert last in screen_text(app)  # the help's last lines reached by scrolling
