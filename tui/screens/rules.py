"""Rules: every rule with its counters, rate and sparkline; sortable, filterable,
selection kept by rule id; enter opens the TOML rule it came from."""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.timer import Timer
from textual.widgets import DataTable, Input, Static

from .. import fmt, rulerows
from ..live import rule_key
from ..messages import HoldingReady, KernelTextReady
from ..widgets.table import NwTable
from .base import NwScreen

# no profile column (80 columns are tight): with several profiles the policy cell
# reads "profile:policy".  The action leads the match summary; bytes and the whole
# chain name are in the detail pane (d).  Columns are one space apart (no cell
# padding: nine columns fit 80).  column key -> its header.
COLUMNS = {"policy": "policy", "rule": "rule", "match": "match", "backend": "table",
           "iface": "iface", "chain": "chain", "packets": "pkts", "rate": "rate",
           "history": "hist"}
HOLDING_DELAY = 0.3  # seconds the address filter stays the same before the sets are asked
MATCH_WIDTH = 18
POLICY_WIDTH = 15
IFACE_WIDTH = 7
CHAIN_WIDTH = 6
HISTORY_WIDTH = 4
ENGINE_ROW = "(engine)"  # the one row the engine's rules fold into
# sort key name -> (key function(rule, state, ranks), descending by default)
SORTS = {
    "rate": (lambda r, s, k: (s.pps(r), r.packets), True),
    "packets": (lambda r, s, k: r.packets, True),
    "bytes": (lambda r, s, k: r.bytes, True),
    "policy": (lambda r, s, k: (r.profile, r.policy, r.direction, r.index), False),
    "backend": (lambda r, s, k: (r.backend, r.policy, r.direction, r.index), False),
    "order": (lambda r, s, k: rulerows.evaluation_key(r, k), False),
}
SORT_ORDER = tuple(SORTS)


def rule_text(rule) -> str:
    """What the `/` filter matches against."""
    fields = (rule.id, rule.profile, rule.policy, rule.direction, rule.action, rule.backend,
              rule.tier, rule.summary, rule.interface, rule.chain)
    return " ".join(fields).lower()




class RulesScreen(NwScreen):
    MODE = "rules"
    HELP = ("Columns: table (xdp, raw, mangle, filter), iface (the host endpoint's\n"
            "interface: a rule shared by two has a row each), chain (nodewall's\n"
            "chain without nw- and the interface: fi = nw-fi-IF, filter input).\n"
            "s cycles the sort (rate, packets, bytes, policy, backend, order = the\n"
            "kernel's evaluation order), S reverses.  / filters by words (policy,\n"
            "action, table, interface, chain, id, match) or by an address: the rules\n"
            "whose CIDRs or sets (network sets, nets_files) hold it; escape clears.\n"
            "e shows / folds the engine's rules (failsafe, conntrack, marks, endpoint\n"
            "jumps, default deny).  d: detail pane (counters, the TOML, the kernel\n"
            "rules); tab moves into it, arrows / pgup / pgdn scroll it.  enter opens\n"
            "the editor at the TOML rule (on the (engine) row: unfolds it).")
    BINDINGS: ClassVar[list] = [
        Binding("s", "cycle_sort", "Sort"),
        Binding("S", "reverse_sort", "Reverse", show=False),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("e", "toggle_engine", "Engine rows"),
        Binding("d", "toggle_detail", "Detail"),
    ]

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.sort_key = "rate"
        self.descending = True
        self.filter_text = ""
        self.selected_id: str | None = None
        self.show_engine = False
        self._order: list[str] | None = None  # None: rebuild on the next show
        self._state = None
        self._kernel_text: dict[str, list[str]] = {}  # rule id -> its kernel rules
        # address -> ids of the rules whose networks hold it (None: being looked up)
        self._holding: dict[str, frozenset[str]] = {}  # the engine's answers, this generation
        self._holding_asked: set[str] = set()  # addresses a worker was started for
        self._holding_timer: Timer | None = None

    def compose_body(self) -> ComposeResult:
        yield Static("", id="rules-info", markup=False)
        yield NwTable(id="rules", cursor_type="row", zebra_stripes=True)
        with VerticalScroll(id="rules-detail", classes="hidden"):
            yield Static("", id="rules-detail-text", markup=False)
        yield Input(placeholder="filter: words or an address (escape clears)", id="rules-filter",
                    classes="hidden", compact=True)

    def on_mount(self) -> None:
        table = self.query_one("#rules", DataTable)
        table.cell_padding = 0
        for key, label in COLUMNS.items():
            table.add_column(f"{label} ", key=key)

    # -- data -------------------------------------------------------------------------
    def _matches(self, rule) -> bool:
        addr = rulerows.as_address(self.filter_text)
        if addr is not None:
            return rule.id in (self._holding_ids(str(addr)) or ()) \
                or rulerows.contains(rule, addr, self._toml(rule))
        return all(w in rule_text(rule) for w in self.filter_text.lower().split())

    def _holding_ids(self, address: str) -> frozenset[str] | None:
        """The engine's answer for `address` (its sets' members); None until it answers
        (the CIDRs written in the rules filter then).  Asked in a worker once the
        filter has stayed the same for HOLDING_DELAY s (not for every address typed
        on the way to it)."""
        if address not in self._holding and address not in self._holding_asked:
            if self._holding_timer is not None:
                self._holding_timer.stop()
            self._holding_timer = self.set_timer(HOLDING_DELAY, self._ask_holding)
        return self._holding.get(address)

    def _ask_holding(self) -> None:
        addr = rulerows.as_address(self.filter_text) if self.filter_text else None
        report = self._state.report if self._state is not None else None
        if addr is not None and str(addr) not in self._holding_asked and report is not None:
            self._holding_asked.add(str(addr))
            self._look_up_holding(str(addr), report.generation)

    @work(thread=True, group="rules-holding", exit_on_error=False)
    def _look_up_holding(self, address: str, generation: int | None) -> None:
        try:
            ids = frozenset(self.app.client.rules_holding(address))
        except Exception:  # noqa: BLE001 - the written CIDRs still filter
            ids = frozenset()
        self.post_message(HoldingReady(address, ids, generation))

    def on_holding_ready(self, msg: HoldingReady) -> None:
        report = self._state.report if self._state is not None else None
        if report is None or report.generation != msg.generation:
            return  # asked of a generation no longer in force: the next filter asks again
        self._holding[msg.address] = msg.ids
        if self.filter_text and str(rulerows.as_address(self.filter_text)) == msg.address:
            self._order = None
            self.show(self._state)

    def _toml(self, rule) -> str:
        return rulerows.rule_toml(rule, lambda path: self.app.buffer_for(Path(path)).text)

    def _ranks(self) -> dict[str, int]:
        return rulerows.policy_ranks(b.text for b in self.app.buffers.values())

    def sorted_rules(self, state) -> list:
        """Every rule the filter keeps, in the chosen order (engine rows included)."""
        if state is None or state.report is None:
            return []
        rules = list(state.report.rules)
        if self.filter_text:
            rules = [r for r in rules if self._matches(r)]
        keyfn, _ = SORTS[self.sort_key]
        ranks = self._ranks() if self.sort_key == "order" else {}
        tie = sorted(rules, key=lambda r: (r.profile, r.policy, r.direction, r.index,
                                           rule_key(r)))
        return sorted(tie, key=lambda r: keyfn(r, state, ranks), reverse=self.descending)

    def visible_rules(self, state) -> list:
        rules = self.sorted_rules(state)
        return rules if self.show_engine else [r for r in rules
                                               if not rulerows.is_engine_rule(r)]

    def show(self, state) -> None:
        if state is not None and state.report is not None and (
                self._state is None or self._state.report is None
                or self._state.report.generation != state.report.generation):
            self._kernel_text.clear()  # another generation: its rules render anew
            self._holding.clear()
            self._holding_asked.clear()
        self._state = state
        table = self.query_one("#rules", DataTable)
        every = self.sorted_rules(state)
        engine = [r for r in every if rulerows.is_engine_rule(r)]
        rules = every if self.show_engine else [r for r in every if r not in engine]
        profiles = {r.profile for r in state.report.rules if r.profile} if every else set()
        rows = {rule_key(r): self._row(r, state, len(profiles) > 1) for r in rules}
        if engine:
            rows[ENGINE_ROW] = self._engine_row(engine)
        order = [rule_key(r) for r in rules] + ([ENGINE_ROW] if engine else [])
        if order == self._order:
            for rid in order:
                for col, value in zip(COLUMNS, rows[rid], strict=True):
                    table.update_cell(rid, col, value)
        else:
            table.clear()  # also when nothing matches: no stale rows
            for rid in order:
                table.add_row(*rows[rid], key=rid)
            self._order = order
            self._restore_selection(table)
        self._info(state, len(every))
        self._detail()

    def _info(self, state, shown: int) -> None:
        total = len(state.report.rules) if state and state.report else 0
        arrow = "v" if self.descending else "^"
        count = f"{shown}/{total} rules" if self.filter_text else f"{total} rules"
        filt = f"  filter: {self.filter_text!r}" if self.filter_text else ""
        if self.filter_text and not shown:
            filt += ": no rule matches"
        addr = rulerows.as_address(self.filter_text) if self.filter_text else None
        if addr is not None and self._holding_ids(str(addr)) is None:
            filt += " (looking in the sets...)"
        self.query_one("#rules-info", Static).update(
            f"{count}  sorted by {self.sort_key} {arrow}{filt}")

    def _engine_row(self, engine: list) -> tuple[Text, ...]:
        sign = "-" if self.show_engine else "+"
        packets = sum(r.packets for r in engine)
        hint = "e folds" if self.show_engine else "e shows"
        cells = (f"{sign} {ENGINE_ROW}", "", f"{len(engine)} rules ({hint})", "", "", "",
                 fmt.human(packets), "", "")
        return tuple(Text(f"{c} ") for c in cells)

    @staticmethod
    def _row(rule, state, many_profiles: bool) -> tuple[Text, ...]:
        rr = state.rule_rates.get(rule_key(rule))
        policy = rule.policy
        if many_profiles and rule.profile:
            policy = f"{Path(rule.profile).stem}:{rule.policy}"
        cells = (fmt.clip(policy, POLICY_WIDTH), fmt.rule_position(rule.direction, rule.index),
                 fmt.clip(rulerows.match_text(rule) if rule.summary else rule.action,
                          MATCH_WIDTH, middle=True),
                 rule.backend, fmt.clip(rule.interface, IFACE_WIDTH, middle=True),
                 fmt.clip(rulerows.short_chain(rule), CHAIN_WIDTH, middle=True),
                 fmt.human(rule.packets), fmt.rate(rr.pps if rr else None, ""),
                 fmt.sparkline(state.rule_history.get(rule_key(rule), ()), HISTORY_WIDTH))
        return tuple(Text(f"{c} ") for c in cells)  # names are data, never markup

    def _restore_selection(self, table: DataTable) -> None:
        if not self._order:
            return
        if self.selected_id in self._order:
            table.move_cursor(row=self._order.index(self.selected_id))
        else:
            table.move_cursor(row=min(table.cursor_row, len(self._order) - 1))

    def selected_rule(self):
        if self._state is None or self._state.report is None:
            return None
        return next((r for r in self._state.report.rules
                     if rule_key(r) == self.selected_id), None)

    def _detail(self) -> None:
        if self.query_one("#rules-detail").has_class("hidden"):
            return
        box = self.query_one("#rules-detail-text", Static)
        rule = self.selected_rule()
        if rule is None:
            box.update("(no rule selected)")
            return
        head = (f"{rule.policy} {rule.direction}[{rule.index}]  id {rule.id}  "
                f"{rule.backend} ({rule.tier})  {fmt.human(rule.packets)} pkts "
                f"{fmt.human_bytes(rule.bytes)}")
        if rule.chain:
            head += f"\non interface {rule.interface or '-'}, chain {rule.chain}"
        toml = self._toml(rule) or "(made by the engine: no TOML)"
        box.update(f"{head}\n{rule.summary}\n{rule.loc or ''}\n{toml}\n"
                   f"{self._kernel_lines(rule)}")

    def _kernel_lines(self, rule) -> str:
        """The kernel rules of the selected id (read once, in a worker)."""
        lines = self._kernel_text.get(rule.id)
        if lines is None:
            self._kernel_text[rule.id] = ["(reading the kernel rules...)"]
            self._read_kernel_text(rule.id)
            lines = self._kernel_text[rule.id]
        mine = [ln for ln in lines if not rule.chain or f" {rule.chain}:" in ln] or lines
        return "kernel:\n" + "\n".join(f"  {ln}" for ln in mine)

    @work(thread=True, group="kernel-text", exit_on_error=False)
    def _read_kernel_text(self, rule_id: str) -> None:
        try:
            lines = [r.line() for r in self.app.client.rendered_rule(rule_id)]
            self.post_message(KernelTextReady(rule_id, lines or ["(not in the applied plan)"]))
        except Exception as exc:  # noqa: BLE001 - shown to the operator
            self.post_message(KernelTextReady(rule_id, [f"(unreadable: {exc})"]))

    def on_kernel_text_ready(self, msg: KernelTextReady) -> None:
        self._kernel_text[msg.rule_id] = msg.lines
        self._detail()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "rules" and event.row_key.value in (self._order or ()):
            self.selected_id = event.row_key.value
            self._detail()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id != "rules" or self._state is None:
            return
        if event.row_key.value == ENGINE_ROW:
            self.action_toggle_engine()
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
        self._order = None  # force a rebuild in the new order
        self.show(self._state)

    def action_toggle_engine(self) -> None:
        self.show_engine = not self.show_engine
        self._order = None
        self.show(self._state)

    def action_toggle_detail(self) -> None:
        box = self.query_one("#rules-detail", VerticalScroll)
        box.toggle_class("hidden")
        if box.has_class("hidden") and box.has_focus:
            self.query_one("#rules", DataTable).focus()
        self._detail()

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
        self._order = None
        self.show(self._state)
