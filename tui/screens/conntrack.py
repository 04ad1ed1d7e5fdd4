"""Conntrack: totals by protocol and TCP state, top sources and destinations from
the engine's bounded sample (refreshed every few seconds, not every tick), and
untracked-flow hints for the busiest ports."""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid
from textual.widgets import DataTable, Static

from .base import NwScreen
from .dashboard import conntrack_lines


class ConntrackScreen(NwScreen):
    MODE = "conntrack"
    HELP = ("The count/max gauge updates every tick; the tables come from a bounded\n"
            "sample of the table (at most 2000 entries) refreshed every few seconds.\n"
            "Hints name the ports whose flows an untracked policy would keep out of\n"
            "conntrack.")

    def compose_body(self) -> ComposeResult:
        yield Static("waiting for the first report...", id="ctx-gauge", markup=False)
        yield Static("", id="ctx-warn", markup=False)
        yield Static("sample: not taken yet", id="ctx-meta", markup=False)
        with Grid(id="ctx-grid"):
            yield DataTable(id="ctx-proto", show_cursor=False)
            yield DataTable(id="ctx-states", show_cursor=False)
            yield DataTable(id="ctx-src", show_cursor=False)
            yield DataTable(id="ctx-dst", show_cursor=False)
        yield Static("", id="ctx-hints", markup=False)

    def on_mount(self) -> None:
        self.query_one("#ctx-proto", DataTable).add_columns("protocol", "entries")
        self.query_one("#ctx-states", DataTable).add_columns("tcp state", "entries")
        self.query_one("#ctx-src", DataTable).add_columns("top source", "entries")
        self.query_one("#ctx-dst", DataTable).add_columns("top destination", "entries")

    def show(self, state) -> None:
        if state.report is not None:
            line, warn = conntrack_lines(state, 30)
            self.query_one("#ctx-gauge", Static).update(line)
            warn_w = self.query_one("#ctx-warn", Static)
            warn_w.update(warn or "")
            warn_w.set_class(warn is not None, "alert")
        sample = getattr(self.app, "sample", None)
        if sample is not None:
            self.show_sample(sample)

    def show_sample(self, sample) -> None:
        more = " (table larger: truncated)" if sample.truncated else ""
        note = f"  {sample.note}" if sample.note else ""
        self.query_one("#ctx-meta", Static).update(
            f"sample: {sample.sampled} entries (limit {sample.limit}) via {sample.source}"
            f"{more}{note}")
        for wid, rows in (("#ctx-proto", sample.by_protocol), ("#ctx-states", sample.tcp_states),
                          ("#ctx-src", sample.top_sources),
                          ("#ctx-dst", sample.top_destinations)):
            table = self.query_one(wid, DataTable)
            table.clear()
            for name, count in rows:
                table.add_row(Text(str(name)), str(count))
        hints = [f"hint: {h.advice}" for h in sample.untracked_hints[:3]]
        if not hints and sample.top_dports:
            proto, port, n = sample.top_dports[0]
            hints = [f"busiest port: {proto}/{port} ({n} entries); no untracking needed yet"]
        self.query_one("#ctx-hints", Static).update("\n".join(hints))
