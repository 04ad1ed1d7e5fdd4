"""Rules screen: sorting keeps the selection by rule id, `/` filter, enter jumps
to the TOML rule."""
from __future__ import annotations

import pytest
from nodewall.tui.screens.profiles import ProfilesScreen
from nodewall.tui.screens.rules import RulesScreen
from textual.widgets import DataTable, TextArea

from .conftest import screen_text, settle, tick

pytestmark = pytest.mark.asyncio


def order(app) -> list[str]:
    table = app.screen.query_one("#rules", DataTable)
    return [table.coordinate_to_cell_key((i, 0)).row_key.value for i in range(table.row_count)]


def selected(app) -> str:
    table = app.screen.query_one("#rules", DataTable)
    return table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value


async def select(pilot, key: str) -> None:
    """Put the cursor on a row with the arrow keys."""
    table = pilot.app.screen.query_one("#rules", DataTable)
    delta = order(pilot.app).index(key) - table.cursor_row
    await pilot.press(*(["down"] * delta if delta > 0 else ["up"] * -delta))
    await settle(pilot)
    assert selected(pilot.app) == key


async def rules_screen(pilot, clock):
    await tick(pilot, clock)
    await pilot.press("2")
    await tick(pilot, clock)
    assert isinstance(pilot.app.screen, RulesScreen)


async def test_sort_keys_keep_the_selection_by_rule_id(new_app, clock):
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await rules_screen(pilot, clock)
        assert order(app) == ["b2:xdp", "c3:raw", "a1:xdp", "e5:filter", "d4:filter",
                              "b2:raw", "zz:filter"]  # by rate, busiest first
        await select(pilot, "a1:xdp")
        await pilot.press("s")  # packets
        await settle(pilot)
        assert app.screen.sort_key == "packets"
        assert selected(app) == "a1:xdp"
        await pilot.press("s", "s")  # bytes, then policy
        await settle(pilot)
        assert app.screen.sort_key == "policy"
        assert order(app)[0] == "zz:filter" and order(app)[1] == "a1:xdp" and selected(app) == "a1:xdp"
        await pilot.press("S")  # reversed
        await settle(pilot)
        assert order(app)[-2] == "a1:xdp" and selected(app) == "a1:xdp"
        await tick(pilot, clock)  # a refresh does not move it either
        assert selected(app) == "a1:xdp"
        assert "sorted by policy v" in screen_text(app)  # policy sorts up; S flipped it


async def test_selection_survives_reordering_by_rate(new_app, fake, clock):
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await rules_screen(pilot, clock)
        await select(pilot, "c3:raw")
        # d4 suddenly gets the most hits: the order changes, the selection does not
        fake.rules = [(r, 10_000 if r.id == "d4" else s) for r, s in fake.rules]
        await tick(pilot, clock)
        assert order(app)[0] == "d4:filter"
        assert selected(app) == "c3:raw"


async def test_filter(new_app, clock):
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await rules_screen(pilot, clock)
        await pilot.press("slash")
        await pilot.press(*"ssh")
        await settle(pilot)
        assert sorted(order(app)) == ["d4:filter", "e5:filter"]
        assert "2/7 rules" in screen_text(app)
        await pilot.press("enter")  # keeps the filter, back to the table
        await tick(pilot, clock)
        assert sorted(order(app)) == ["d4:filter", "e5:filter"]
        await pilot.press("escape")
        await settle(pilot)
        assert len(order(app)) == 7


async def test_enter_opens_the_toml_rule(new_app, clock):
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await rules_screen(pilot, clock)
        await select(pilot, "c3:raw")  # redis-untracked egress[0], line 45 col 3
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ProfilesScreen)
        editor = app.screen.query_one("#prof-editor", TextArea)
        assert editor.cursor_location == (44, 2)
        assert editor.document.get_line(44).strip().startswith("[[policies.egress]]")
        assert editor.has_focus


async def test_rule_without_source_location_stays_put(new_app, clock):
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await rules_screen(pilot, clock)
        await select(pilot, "zz:filter")  # the default deny has no TOML rule
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, RulesScreen)
