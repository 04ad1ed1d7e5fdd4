"""Rules screen: sorting keeps the selection by rule id, `/` filter, enter jumps
to the TOML rule."""
from __future__ import annotations

import re
from dataclasses import replace

import pytest
from nodewall.engine.dataplane.rule_text import RenderedRule
from nodewall.tui.screens.profiles import ProfilesScreen
from nodewall.tui.screens.rules import HOLDING_DELAY, RulesScreen
from textual.widgets import DataTable, Static, TextArea

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
                              "b2:raw", "(engine)"]  # by rate, busiest first; the engine's rules folded
        await select(pilot, "a1:xdp")
        await pilot.press("s")  # packets
        await settle(pilot)
        assert app.screen.sort_key == "packets"
        assert selected(app) == "a1:xdp"
        await pilot.press("s", "s")  # bytes, then policy
        await settle(pilot)
        assert app.screen.sort_key == "policy"
        assert order(app)[0] == "a1:xdp" and selected(app) == "a1:xdp"
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
        assert len(order(app)) == 7  # six rules and the (engine) row


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
        await pilot.press("e")  # unfold the engine's rules
        await settle(pilot)
        await select(pilot, "zz:filter")  # the default deny has no TOML rule
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, RulesScreen)


async def test_engine_rows_fold_into_one_row(new_app, clock):
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await rules_screen(pilot, clock)
        text = screen_text(app)
        assert "+ (engine)" in text and "1 rules (e shows)" in text
        assert "(default-deny)" not in text
        await select(pilot, "(engine)")
        await pilot.press("enter")  # enter on the group row unfolds it too
        await settle(pilot)
        assert "zz:filter" in order(app) and "(default-deny)" in screen_text(app)
        await pilot.press("e")
        await settle(pilot)
        assert "zz:filter" not in order(app)


async def test_match_column_and_evaluation_order(new_app, clock):
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await rules_screen(pilot, clock)
        text = screen_text(app)
        assert "tcp from …ort 6379" in text  # the detail pane (d) has it all
        assert "from sele…= 'drop'" in text
        await pilot.press("e")
        while app.screen.sort_key != "order":
            await pilot.press("s")
        await settle(pilot)
        # xdp, raw, filter in turn; in a stage ingress before egress; policies by their
        # order (10 drop-blocklist, 20 redis, 100 ssh); the default deny last
        assert order(app)[:-1] == ["a1:xdp", "b2:xdp", "b2:raw", "c3:raw", "d4:filter",
                                   "e5:filter", "zz:filter"]


async def test_filter_without_a_match_leaves_no_stale_rows(new_app, clock):
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await rules_screen(pilot, clock)
        await pilot.press("slash", *"nosuchrule")
        await settle(pilot)
        assert order(app) == []
        text = screen_text(app)
        assert "0/7 rules" in text and "no rule matches" in text
        assert "redis-untracked" not in text
        await tick(pilot, clock)
        assert order(app) == []


async def test_filter_by_an_address_finds_the_rules_whose_networks_hold_it(new_app, clock):
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await rules_screen(pilot, clock)
        await pilot.press("slash", *"10.20.30.40")
        await settle(pilot)
        assert sorted(order(app)) == ["b2:raw", "b2:xdp"]  # source 10.0.0.0/8
        await pilot.press("escape", "slash", *"192.168.1.1")
        await settle(pilot)
        assert order(app) == []


async def test_detail_pane_shows_counters_and_the_toml(new_app, clock):
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await rules_screen(pilot, clock)
        await select(pilot, "c3:raw")
        await pilot.press("d")
        await settle(pilot)
        text = screen_text(app)
        assert "redis-untracked egress[0]  id c3  raw (untracked)" in text
        assert "[[policies.egress]]" in text and "source = { ports = [6379] }" in text


async def test_a_rule_shared_by_two_interfaces_has_a_row_each(new_app, fake, clock):
    fake.rules = [(replace(r, interface=iface, chain=f"nw-fi-{iface}"), step)
                  for r, step in fake.rules for iface in (("srv0", "srv1") if r.id == "d4"
                                                          else ("",))]
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await rules_screen(pilot, clock)
        assert {"d4:filter:nw-fi-srv0", "d4:filter:nw-fi-srv1"} <= set(order(app))
        table = app.screen.query_one("#rules", DataTable)
        row = order(app).index("d4:filter:nw-fi-srv1")
        # table, interface and chain in columns of their own
        assert [str(table.get_cell_at((row, c))).strip() for c in (3, 4, 5)] == \
            ["filter", "srv1", "fi"]
        assert re.search(r"in\[0\] .*filter +srv1 +fi +\d", screen_text(app))
        await select(pilot, "d4:filter:nw-fi-srv1")
        await pilot.press("d")
        await settle(pilot)
        assert "on interface srv1, chain nw-fi-srv1" in screen_text(app)
        # the kernel rule of this row's chain, read through the service in a worker
        # the pane holds it all; at 80x24 its 9 rows show the head and TOML first
        detail = str(app.screen.query_one("#rules-detail-text", Static).render())
        assert 'filter v4 nw-fi-srv1: -j ACCEPT -m comment --comment "nw:d4"' in detail
        assert "nw-fi-srv0:" not in detail
        await pilot.press("slash", *"srv1")
        await settle(pilot)
        assert order(app) == ["d4:filter:nw-fi-srv1"]  # the interface filters


async def address_settled(pilot) -> None:
    """The filter left alone long enough for the sets to be asked, and the answer in."""
    await pilot.pause(HOLDING_DELAY + 0.1)
    await settle(pilot)


async def test_filter_by_an_address_finds_the_rules_whose_sets_hold_it(new_app, fake, clock):
    """The set members count (the engine's membership lookup, asked in a worker): an
    address of the blocklist's nets_file, reached through the selector list ==
    "drop", finds drop-blocklist's rule, though no CIDR is written in it."""
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await rules_screen(pilot, clock)
        await pilot.press("slash", *"198.51.100.7")  # a line of blocklist.txt
        await address_settled(pilot)
        assert order(app) == ["a1:xdp"]
        assert fake.calls.count("rules_holding") == 1  # not one per address typed on the way
        await pilot.press("escape", "slash", *"203.0.113.9")  # the set's inline nets
        await address_settled(pilot)
        assert order(app) == ["a1:xdp"]
        await pilot.press("escape", "slash", *"198.51.100.200")  # beyond the /25
        await address_settled(pilot)
        assert order(app) == []
        assert fake.calls.count("rules_holding") == 3  # .2 and .20 on the way: not asked
        assert "no rule matches" in screen_text(app)


async def test_detail_pane_scrolls_to_the_kernel_rules_at_80x24(new_app, fake, clock):
    fake.rules = [(replace(r, interface="srv0", chain="nw-fi-srv0"), step)
                  for r, step in fake.rules]
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await rules_screen(pilot, clock)
        await select(pilot, "b2:xdp:nw-fi-srv0")
        await pilot.press("d")
        await settle(pilot)
        kernel_line = 'nw-fi-srv0: -j ACCEPT -m comment --comment "nw:b2"'
        assert "[[policies.ingress]]" in screen_text(app)
        assert kernel_line not in screen_text(app)  # below the pane's 10 rows
        await pilot.press("tab")  # into the pane
        assert app.focused is app.screen.query_one("#rules-detail")
        await pilot.press("end")
        await settle(pilot)
        text = screen_text(app)
        assert kernel_line in text and "kernel:" in text
        # a kernel rule longer than the screen wraps: its end is on screen too
        long_rule = ("-s 10.0.0.0/8 -p tcp -m multiport --dports 6379,6380,6381,6382,6383 "
                     '-m comment --comment "nw:b2" -j nw-untracked-allow TAIL-END')
        fake.rendered_rule = lambda rid: [RenderedRule("raw", 4, "nw-fi-srv0", long_rule)]
        app.screen._kernel_text.clear()
        app.screen._detail()
        await settle(pilot)
        await pilot.press("end")
        await settle(pilot)
        assert "TAIL-END" in screen_text(app) and "--dports" in screen_text(app)
        await pilot.press("home")
        await settle(pilot)
        assert "redis-untracked ingress[0]  id b2" in screen_text(app)


async def test_an_xdp_rule_on_two_interfaces_has_a_row_each(new_app, fake, clock):
    """The XDP program counts per interface (status chain "xdp:IF"): two rows, each
    with its interface and its own packets."""
    fake.rules = [(replace(r, interface=iface, chain=f"xdp:{iface}",
                           packets=r.packets + (1000 if iface == "srv1" else 0)), step)
                  for r, step in fake.rules
                  for iface in (("srv0", "srv1") if (r.id, r.backend) == ("a1", "xdp")
                                else ("",))]
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await rules_screen(pilot, clock)
        table = app.screen.query_one("#rules", DataTable)
        cells = {}
        for key in ("a1:xdp:xdp:srv0", "a1:xdp:xdp:srv1"):
            row = order(app).index(key)
            cells[key] = [str(table.get_cell_at((row, c))).strip() for c in (3, 4, 5, 6)]
        assert cells["a1:xdp:xdp:srv0"][:3] == ["xdp", "srv0", "xdp"]
        assert cells["a1:xdp:xdp:srv1"][:3] == ["xdp", "srv1", "xdp"]
        assert cells["a1:xdp:xdp:srv0"][3] != cells["a1:xdp:xdp:srv1"][3]  # own counters
