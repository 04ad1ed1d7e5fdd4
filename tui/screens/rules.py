"""Rules: every rule with its counters, rate and sparkline; sortable, filterable,
selection kept by rule id; enter opens the TOML rule it came from."""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Input, Static

from .. import fmt
from ..live import rule_key
from ..widgets.table import NwTable
from .base import NwScreen

# no profile column (80 columns are tight): with several profiles the policy cell
# reads "profile:policy"
COLUMNS = ("policy", "rule", "action", "backend", "packets", "bytes", "rate", "history")
# sort key name -> (key function(rule, state), descending by default)
SORTS = {
    "rate": (lambda r, s: (s.pps(r), r.packets), True),
    "packets": (lambda r, s: r.packets, True),
    "bytes": (lambda r, s: r.bytes, True),
    "policy": (lambda r, s: (r.profile, r.policy, r.direction, r.index), False),
    "backend": (lambda r, s: (r.backend, r.policy, r.direction, r.index), False),
}
SORT_ORDER = tuple(SORTS)


def rule_text(rule) -> str:
    """What the `/` filter matches against."""
    fields = (rule.id, rule.profile, rule.policy, rule.direction, rule.action, rule.backend,
              rule.tier, rule.summary)
    return " ".join(fields).lower()


class RulesScreen(NwScreen):
    MODE = "rules"
    HELP = ("s cycles the sort column (rate, packets, bytes, policy, backend), S reverses.\n"
            "/ filters by any text (policy, action, backend, id, summary); escape clears.\n"
            "enter opens the profile editor at the TOML rule the row came from.")
    BINDINGS: ClassVar[list] = [
        Binding("s", "cycle_sort", "Sort"),
        Binding("S", "reverse_sort", "Reverse", show=False),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.sort_key = "rate"
        self.descending = True
        self.filter_text = ""
        self.selected_id: str | None = None
        self._order: list[str] = []
        self._state = None

    def compose_body(self) -> ComposeResult:
        yield Static("", id="rules-info", markup=False)
        yield NwTable(id="rules", cursor_type="row", zebra_stripes=True)
        yield Input(placeholder="filter rules (escape clears)", id="rules-filter",
                    classes="hidden", compact=True)

    def on_mount(self) -> None:
        table = self.query_one("#rules", DataTable)
        for col in COLUMNS:
            table.add_column(col, key=col)

    # -- data -------------------------------------------------------------------------
    def visible_rules(self, state) -> list:
        if state is None or state.report is None:
            return []
        rules = list(state.report.rules)
        if self.filter_text:
            words = self.filter_text.lower().split()
            rules = [r for r in rules if all(w in rule_text(r) for w in words)]
        keyfn, _ = SORTS[self.sort_key]
        tie = sorted(rules, key=lambda r: (r.profile, r.policy, r.direction, r.index,
                                           rule_key(r)))
        return sorted(tie, key=lambda r: keyfn(r, state), reverse=self.descending)

    def show(self, state) -> None:
        self._state = state
        table = self.query_one("#rules", DataTable)
        rules = self.visible_rules(state)
        order = [rule_key(r) for r in rules]
        profiles = {r.profile for r in state.report.rules if r.profile} if rules else set()
        rows = {rule_key(r): self._row(r, state, len(profiles) > 1) for r in rules}
        if order == self._order:
            for rid in order:
                for col, value in zip(COLUMNS, rows[rid]):
                    table.update_cell(rid, col, value)
        else:
            table.clear()
            for rid in order:
                table.add_row(*rows[rid], key=rid)
            self._order = order
            self._restore_selection(table)
        total = len(state.report.rules) if state and state.report else 0
        arrow = "v" if self.descending else "^"
        shown = f"{len(order)}/{total} rules" if self.filter_text else f"{total} rules"
        filt = f"  filter: {self.filter_text!r}" if self.filter_text else ""
        self.query_one("#rules-info", Static).update(
            f"{shown}  sorted by {self.sort_key} {arrow}{filt}")

    @staticmethod
    def _row(rule, state, many_profiles: bool) -> tuple[Text, ...]:
        rr = state.rule_rates.get(rule_key(rule))
        policy = rule.policy
        if many_profiles and rule.profile:
            policy = f"{Path(rule.profile).stem}:{rule.policy}"
        cells = (policy, fmt.rule_position(rule.direction, rule.index), rule.action,
                 rule.backend, fmt.human(rule.packets), fmt.human_bytes(rule.bytes),
                 fmt.rate(rr.pps if rr else None, ""),
                 fmt.sparkline(state.rule_history.get(rule_key(rule), ()), 8))
        return tuple(Text(c) for c in cells)  # names are data, never markup

    def _restore_selection(self, table: DataTable) -> None:
        if not self._order:
            return
        if self.selected_id in self._order:
            table.move_cursor(row=self._order.index(self.selected_id))
        else:
            table.move_cursor(row=min(table.cursor_row, len(self._order) - 1))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "rules" and event.row_key.value in self._order:
            self.selected_id = event.row_key.value

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id != "rules" or self._state is None:
            return
        rule = next((r for r in self._state.report.rules
                     if rule_key(r) == event.row_key.value), None)
        if rule is not None:
            self.app.open_rule_source(rule)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        key = str(event.column_key.value)
        if key in SORTS:
            self._set_sort(key, not self.descending if key == self.sort_key else SORTS[key][1])

    # -- actions -------------------------------------------------------------------------
    def _set_sort(self, key: str, descending: bool) -> None:
        self.sort_key, self.descending = key, descending
        self._order = []  # force a rebuild in the new order
        self.show(self._state)

    def action_cycle_sort(self) -> None:
        nxt = SORT_ORDER[(SORT_ORDER.index(self.sort_key) + 1) % len(SORT_ORDER)]
        self._set_sort(nxt, SORTS[nxt][1])

    def action_reverse_sort(self) -> None:
        self._set_sort(self.sort_key, not self.descending)

    def action_filter(self) -> None:
        box = self.query_one("#rules-filter", Input)
        box.remove_class("hidden")
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#rules-filter", Input)
        box.value = ""
        box.add_class("hidden")
        self._apply_filter("")
        self.query_one("#rules", DataTable).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "rules-filter":
            self._apply_filter(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "rules-filter":
            if not event.value:
                event.input.add_class("hidden")
            self.query_one("#rules", DataTable).focus()

    def _apply_filter(self, text: str) -> None:
        self.filter_text = text.strip()
        self._order = []
        self.show(self._state)
