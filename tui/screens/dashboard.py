"""Dashboard: interfaces, conntrack gauge/history/per-CPU, busiest rules."""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Label, Static

from .. import fmt
from .base import NwScreen

CT_WARN = 0.8  # warn above 80 % full
CPU_FIELDS = ("insert_failed", "drop", "early_drop")
POLICY_W = 20  # policy names longer than this are clipped in the busiest-rules table
TOP_COLUMNS = ("policy", "rule", "via", "pkt/s", "what")  # "via": the backend
RATE_W = 6  # "999.9k": room for the widest rate, so the summary does not jitter


def conntrack_lines(state, width: int = 20) -> tuple[str, str | None]:
    """('count/max gauge' + newline + 'history' text, warning line or None)."""
    ct = state.report.conntrack
    line = (f"{ct.count}/{ct.max or '?'} {fmt.gauge(ct.fill, width)} {ct.fill:.1%}\n"
            f"history {fmt.sparkline(state.ct_history, 30, top=ct.max)}")
    warn = None
    if ct.max and ct.fill > CT_WARN:
        warn = (f"! conntrack {ct.fill:.0%} full: new flows drop when it fills; "
                "untrack busy flows (do_not_track)")
    return line, warn


class DashboardScreen(NwScreen):
    MODE = "dashboard"
    HELP = ("Which packet filter suits this host (when it is not the one in use);\n"
            "interfaces with rx/tx rates between ticks, XDP program and the host\n"
            "endpoint covering each; conntrack fill, history and per-CPU errors;\n"
            "the rules with the highest hit rate right now.")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._shown: dict[str, object] = {}  # what each widget shows: unchanged is not redrawn

    def _changed(self, widget_id: str, content: object) -> bool:
        """Whether `content` differs from what widget `widget_id` shows (and remember it):
        a tick that changes nothing on screen costs no layout and no redraw."""
        if self._shown.get(widget_id) == content:
            return False
        self._shown[widget_id] = content
        return True

    def _text(self, widget_id: str, text: str) -> Static:
        widget = self.query_one(f"#{widget_id}", Static)
        if self._changed(widget_id, text):
            widget.update(text)
        return widget

    def compose_body(self) -> ComposeResult:
        with Vertical(id="dash"):
            yield Static("", id="advice", classes="warn", markup=False)
            yield Label("Interfaces", classes="section", markup=False)
            yield DataTable(id="ifaces", cursor_type="row", show_cursor=False)
            yield Label("Conntrack", classes="section", markup=False)
            with Horizontal(id="ct-row"):
                with Vertical(id="ct-left"):
                    yield Static("waiting for the first report...", id="ct-gauge", markup=False)
                    yield Static("", id="ct-warn", markup=False)
                yield DataTable(id="ct-cpus", show_cursor=False)
            yield Label("Busiest rules", classes="section", markup=False)
            yield DataTable(id="top-rules", cursor_type="row", show_cursor=False)

    def on_mount(self) -> None:
        self.query_one("#ifaces", DataTable).add_columns(
            "iface", "state", "addresses", "rx/s", "tx/s", "XDP", "endpoint")
        self.query_one("#ct-cpus", DataTable).add_columns("cpu", "ins_fail", "drop", "e_drop")
        self.query_one("#top-rules", DataTable).add_columns(*TOP_COLUMNS)

    def show(self, state) -> None:
        report = state.report
        if report is None:
            return
        advice = self._text("advice",
                            f"! {report.recommendation}" if report.recommendation else "")
        advice.display = bool(report.recommendation)
        self._interfaces(state)
        line, warn = conntrack_lines(state)
        self._text("ct-gauge", line)
        self._text("ct-warn", warn or "").set_class(warn is not None, "alert")
        cpu_rows = [(str(c.cpu), *(str(getattr(c, f)) for f in CPU_FIELDS))  # numbers
                    for c in report.conntrack.per_cpu]
        if self._changed("ct-cpus", cpu_rows):
            cpus = self.query_one("#ct-cpus", DataTable)
            cpus.clear()
            for row in cpu_rows:
                cpus.add_row(*row)
        self._busiest(state)

    def _busiest(self, state) -> None:
        """The busiest rules, the profiles' own first (LiveState.busiest); the summary
        ("what") tells rules of one policy apart and gets the width that is left."""
        top = self.query_one("#top-rules", DataTable)
        rows = [(fmt.clip(r.policy, POLICY_W), fmt.rule_position(r.direction, r.index),
                 r.backend, fmt.rate(state.pps(r), ""), r.summary or r.action)
                for r in state.busiest(5)]
        width = top.size.width or self.app.size.width
        if not self._changed("top-rules", (rows, width)):
            return
        top.clear(columns=True)  # column widths only ever grow: start afresh
        top.add_columns(*TOP_COLUMNS)
        if not rows:
            return
        heads = TOP_COLUMNS
        used = sum(max(len(heads[i]), RATE_W if i == 3 else 0, *(len(row[i]) for row in rows))
                   for i in range(4)) + 2 * len(heads)  # cell padding: one space a side
        what_w = max(12, width - used)  # never wider than the screen (no h-scrollbar)
        for row in rows:
            top.add_row(*map(Text, (*row[:4], fmt.clip(row[4], what_w, middle=True))))

    def _interfaces(self, state) -> None:
        rows = [self._interface_row(state, i) for i in state.report.interfaces]
        if not self._changed("ifaces", rows):
            return
        table = self.query_one("#ifaces", DataTable)
        table.clear()
        for row in rows:
            table.add_row(*map(Text, row))

    @staticmethod
    def _interface_row(state, i) -> tuple[str, ...]:
        """One interface's cells: name, state, addresses, rx/s, tx/s, XDP, endpoint."""
        rate = state.iface_rates.get(i.name)
        addrs = i.addresses[0] if i.addresses else "-"
        if len(i.addresses) > 1:
            addrs += f" +{len(i.addresses) - 1}"
        xdp = "-"
        if i.xdp_mode:
            owner = "" if i.xdp_owned else " (foreign)"
            xdp = f"{i.xdp_mode} {i.xdp_prog_name or i.xdp_prog_id or ''}{owner}".strip()
        return (i.name, i.state, addrs, fmt.byte_rate(rate.rx_bps if rate else None),
                fmt.byte_rate(rate.tx_bps if rate else None), xdp, i.host_endpoint or "-")
