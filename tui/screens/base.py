"""Base of the five main screens: header bars, body, footer; `show(state)` is
called by the app with the latest LiveState after every tick."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer

from ..widgets.topbar import NavBar, StateBar


class NwScreen(Screen):
    MODE = ""
    HELP = ""  # screen-specific help text for the `?` screen

    def compose(self) -> ComposeResult:
        self.app.register_screen(self)
        yield NavBar(self.MODE, id="nav")
        yield StateBar(id="statebar")
        yield from self.compose_body()
        yield Footer()

    def compose_body(self) -> ComposeResult:
        yield from ()

    def on_screen_resume(self) -> None:
        self.app.screen_resumed(self)

    def show(self, state) -> None:
        """Update from the app's LiveState (may be called before any report)."""

    def update_bars(self, interval: float, paused: bool, parts: list[tuple[str, str]]) -> None:
        # A screen counts as mounted a moment before its children are: the app's
        # one-second timer can land in between (seen as NoMatches under load).
        navs, states = self.query(NavBar), self.query(StateBar)
        if not navs or not states:
            return
        navs.first().update_nav(interval, paused)
        states.first().update_state(parts)

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        return self.app.guard.check_action(action)
