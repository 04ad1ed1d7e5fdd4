"""Conntrack screen: the sample is refreshed every few seconds, not every tick."""
from __future__ import annotations

import pytest

from .conftest import screen_text, settle, tick

pytestmark = pytest.mark.asyncio


async def test_sample_tables_hints_and_cadence(new_app, fake, clock):
    app = new_app(sample_every=5)
    async with app.run_test(size=(80, 24)) as pilot:
        await tick(pilot, clock)
        assert "conntrack_sample" not in fake.calls  # only sampled on its screen
        await pilot.press("3")
        await settle(pilot)
        text = screen_text(app)
        assert "sample: 1200 entries (limit 2000) via procfs" in text
        assert "ESTABLISHED" in text and "10.77.0.2" in text and "10.77.0.1" in text
        assert "hint: tcp/6379 holds 900 sampled entries (75%)" in text
        for _ in range(3):  # ticks and seconds within the sampling period
            clock.advance(1)
            await tick(pilot)
            app.second()
            await settle(pilot)
        assert fake.calls.count("conntrack_sample") == 1
        clock.advance(3)
        app.second()
        await settle(pilot)
        assert fake.calls.count("conntrack_sample") == 2
