"""What the screens show, kept between ticks: the latest StatusReport plus rates
computed between consecutive reports and short histories for sparklines.

Pure (no Textual): the app feeds it one report per tick from a worker's message."""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from nodewall.engine.observe.report import RuleStats, StatusReport

HISTORY = 60  # samples kept per series (sparklines show the tail)


@dataclass(frozen=True)
class IfaceRate:
    rx_bps: float | None  # bytes per second; None until two samples exist
    tx_bps: float | None


@dataclass(frozen=True)
class RuleRate:
    pps: float | None  # packets per second
    bps: float | None  # bytes per second


def rule_key(rule: RuleStats) -> str:
    """Rows are (rule id, backend[, chain]): an XDP rule and its raw backstop share the
    id, and a rule shared by two host endpoints has a row per endpoint chain."""
    base = f"{rule.id}:{rule.backend}"
    return f"{base}:{rule.chain}" if rule.chain else base


def is_policy_rule(rule: RuleStats) -> bool:
    """A rule written in a profile (an untracked, pre-DNAT or normal policy's rule),
    not one the engine adds (failsafe, default deny, conntrack, marks: index -1)."""
    return rule.index >= 0 and not rule.policy.startswith("(")


def _delta_rate(now: int, before: int | None, dt: float) -> float | None:
    if before is None or dt <= 0:
        return None
    if now < before:  # counter reset (rule re-created, new generation): restart
        return None
    return (now - before) / dt


class LiveState:
    def __init__(self, history: int = HISTORY):
        self.history = history
        self.report: StatusReport | None = None
        self.time: float | None = None
        self.iface_rates: dict[str, IfaceRate] = {}
        self.rule_rates: dict[str, RuleRate] = {}
        self.rule_history: dict[str, deque[float]] = {}
        self.ct_history: deque[float] = deque(maxlen=history)
        self.ticks = 0

    def update(self, report: StatusReport, now: float) -> None:
        """Take the next report; `now` is used when the report has no timestamp."""
        t = report.timestamp or now
        prev, prev_t = self.report, self.time
        dt = (t - prev_t) if prev_t is not None else 0.0
        self._interfaces(report, prev, dt)
        self._rules(report, prev, dt)
        self.ct_history.append(float(report.conntrack.count))
        self.report, self.time = report, t
        self.ticks += 1

    def _interfaces(self, report: StatusReport, prev: StatusReport | None, dt: float) -> None:
        before = {i.name: i for i in prev.interfaces} if prev else {}
        rates = {}
        for iface in report.interfaces:
            old = before.get(iface.name)
            rates[iface.name] = IfaceRate(
                _delta_rate(iface.rx_bytes, old.rx_bytes if old else None, dt),
                _delta_rate(iface.tx_bytes, old.tx_bytes if old else None, dt))
        self.iface_rates = rates

    def _rules(self, report: StatusReport, prev: StatusReport | None, dt: float) -> None:
        before = {rule_key(r): r for r in prev.rules} if prev else {}
        rates, history = {}, {}
        for rule in report.rules:
            key = rule_key(rule)
            old = before.get(key)
            rr = RuleRate(_delta_rate(rule.packets, old.packets if old else None, dt),
                          _delta_rate(rule.bytes, old.bytes if old else None, dt))
            rates[key] = rr
            series = self.rule_history.get(key) or deque(maxlen=self.history)
            if rr.pps is not None:
                series.append(rr.pps)
            history[key] = series
        self.rule_rates, self.rule_history = rates, history  # gone rules are dropped

    def pps(self, rule: RuleStats) -> float:
        rr = self.rule_rates.get(rule_key(rule))
        return rr.pps if rr and rr.pps is not None else 0.0

    def busiest(self, n: int = 5) -> list[RuleStats]:
        """Rules with the highest hit rate now (ties: most packets overall), the
        profiles' own rules first: policy rules that matched anything, then the
        engine-internal ones (failsafe, conntrack, marks...) that matched, then idle
        policy rules - the internal rules only fill space the policy rules leave."""
        if self.report is None:
            return []

        def rank(r: RuleStats) -> tuple:
            group = (0 if r.packets else 2) if is_policy_rule(r) else (1 if r.packets else 3)
            return (group, -self.pps(r), -r.packets, rule_key(r))
        return sorted(self.report.rules, key=rank)[:n]
