"""A fake engine Service for TUI tests: real StatusReport / PlanPreview /
ApplyResult / ConntrackSample objects, deterministic counters, an injectable clock,
and a record of which thread made every call (the UI thread must make none)."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

import tomlkit
from nodewall.engine.dataplane.preview import PlanPreview
from nodewall.engine.dataplane.rule_text import RenderedRule
from nodewall.engine.errors import InputError, InputErrors, Loc
from nodewall.engine.observe.conntrack import ConntrackSample, UntrackedHint
from nodewall.engine.observe.report import (
    ConntrackCpu,
    ConntrackInfo,
    InterfaceInfo,
    RuleStats,
    StatusReport,
)
from nodewall.engine.profile.model import Profile, Settings
from nodewall.engine.safety.results import ApplyResult, PendingConfirm
from tomlkit.exceptions import ParseError

ACTIONS = ("allow", "deny", "log", "pass")


class FakeClock:
    def __init__(self, start: float = 1_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_rules(profile: str = "redis-host.toml") -> list[tuple[RuleStats, int]]:
    """(rule, packets added per status call)."""
    base = [
        ("a1", "drop-blocklist", "ingress", 0, "deny", "xdp", 50, 6),
        ("b2", "redis-untracked", "ingress", 0, "allow", "xdp", 400, 20),
        ("c3", "redis-untracked", "egress", 0, "allow", "raw", 380, 25),
        ("d4", "ssh-and-icmp", "ingress", 0, "allow", "filter", 2, 7),
        ("e5", "ssh-and-icmp", "ingress", 1, "allow", "filter", 9, 3),
        ("b2", "redis-untracked", "ingress", 0, "allow", "raw", 1, 1),  # XDP's raw backstop
    ]
    lines = {"a1": 28, "b2": 39, "c3": 45, "d4": 55, "e5": 60}  # data/redis-host.toml
    summaries = {"a1": "deny from selector list == 'drop'",
                 "b2": "allow tcp from 10.0.0.0/8 to port 6379",
                 "c3": "allow tcp from port 6379",
                 "d4": "allow tcp to ports 22,8000:8080", "e5": "allow icmp"}
    out = []
    for rid, pol, direc, idx, act, backend, step, start in base:
        out.append((RuleStats(
            id=rid, profile=profile, policy=pol, direction=direc, index=idx, action=act,
            backend=backend, packets=start * 10, bytes=start * 1000,
            tier="untracked" if backend in ("xdp", "raw") else "normal",
            summary=summaries[rid], loc=f"PROFILE:{lines[rid]}:3"), step))
    out.append((RuleStats(id="zz", profile="", policy="(default-deny)", direction="ingress",
                          index=-1, action="deny", backend="filter", packets=0, bytes=0,
                          tier="default", summary="default deny ingress"), 0))
    return out


@dataclass
class FakeService:
    clock: FakeClock = field(default_factory=FakeClock)
    is_root: bool = True
    netns: str = "nwt-fake"
    ct_count: int = 1200
    ct_max: int = 65536
    generation: int | None = 1
    pending: PendingConfirm | None = None
    profile_path: str = "redis-host.toml"
    calls: list = field(default_factory=list)
    threads: list = field(default_factory=list)
    status_gate: threading.Event | None = None  # when set, status() blocks until it is set
    reverted_by_watcher: int = 0
    recommendation: str | None = None  # StatusReport.recommendation
    rules: list = field(default_factory=list)
    ticks: int = 0
    panic: bool = False
    drift: tuple = ()
    last_revert: dict | None = None  # StatusReport.last_revert

    def __post_init__(self):
        if not self.rules:
            self.rules = make_rules()
        self.set_profile_path(self.profile_path)

    def set_profile_path(self, path: str) -> None:
        self.rules = [(replace(r, loc=r.loc.replace("PROFILE", path) if r.loc else None), s)
                      for r, s in self.rules]

    def _record(self, name: str) -> None:
        self.calls.append(name)
        self.threads.append(threading.current_thread())

    # -- Service API ------------------------------------------------------------------
    def status(self, *, checks_max_age: float = 0.0) -> StatusReport:
        self._record("status")
        if self.status_gate is not None:
            self.status_gate.wait(10)
        if self.pending is not None and self.clock() >= self.pending.deadline:
            self.generation = self.pending.previous_generation  # the detached watcher
            self.pending = None
            self.reverted_by_watcher += 1
        self.ticks += 1
        self.rules = [(replace(r, packets=r.packets + s, bytes=r.bytes + 100 * s), s)
                      for r, s in self.rules]
        pending = self.pending
        if pending is not None:
            pending = replace(pending, seconds_left=max(0.0, pending.deadline - self.clock()))
        return StatusReport(
            netns=self.netns, iptables_mode="legacy",
            interfaces=(
                InterfaceInfo("lo", 1, "up", 65536, ("127.0.0.1/8", "::1/128"),
                              1000 * self.ticks, 1000 * self.ticks, 10, 10),
                InterfaceInfo("srv0", 2, "up", 1500, ("10.77.0.1/24", "fd77::1/64"),
                              50_000 * self.ticks, 20_000 * self.ticks, 100, 80,
                              xdp_mode="native", xdp_prog_id=42, xdp_prog_name="nw_xdp",
                              xdp_owned=True, host_endpoint="uplink"),
            ),
            conntrack=ConntrackInfo(self.ct_count, self.ct_max, (
                ConntrackCpu(0, insert=100, insert_failed=0, drop=0, early_drop=0),
                ConntrackCpu(1, insert=90, insert_failed=3, drop=1, early_drop=2))),
            rules=tuple(r for r, _ in self.rules),
            generation=self.generation, pending_confirm=pending,
            timestamp=self.clock(), recommendation=self.recommendation, panic=self.panic,
            drift=self.drift, last_revert=self.last_revert)

    def conntrack_sample(self, limit: int = 2000) -> ConntrackSample:
        self._record("conntrack_sample")
        hint = UntrackedHint("tcp", 6379, 900, 0.75, 400)
        return ConntrackSample(
            sampled=1200, limit=limit, truncated=False, source="procfs",
            by_protocol=(("tcp", 1100), ("udp", 90), ("icmp", 10)),
            tcp_states=(("ESTABLISHED", 700), ("TIME_WAIT", 400)),
            top_sources=(("10.77.0.2", 1000), ("10.77.0.9", 150)),
            top_destinations=(("10.77.0.1", 1150),),
            top_dports=(("tcp", 6379, 900), ("udp", 53, 80)),
            untracked_hints=(hint,))

    def validate(self, paths, texts=None) -> Profile:
        self._record("validate")
        errors = []
        for path in paths:
            text = (texts or {}).get(str(path)) or Path(path).read_text()
            try:
                tomlkit.parse(text)
            except ParseError as exc:
                errors.append(InputError(Loc(str(path), exc.line, exc.col),
                                         f"TOML syntax: {exc}"))
                continue
            for n, line in enumerate(text.splitlines(), start=1):
                key, sep, value = line.partition("=")
                if sep and key.strip() == "action":
                    word = value.split("#")[0].strip().strip("\"'")
                    if word not in ACTIONS:
                        col = line.index(word) + 1 if word in line else 1
                        errors.append(InputError(Loc(str(path), n, col),
                                                 f"unknown action '{word}'"))
        if errors:
            raise InputErrors(errors)
        return Profile(files=tuple(str(p) for p in paths), settings=Settings(),
                       host_endpoints=(), network_sets=(), policies=())

    def rendered_rule(self, rule_id: str) -> list[RenderedRule]:
        """Each row of the id as a kernel rule in its chain (filter v4)."""
        self._record("rendered_rule")
        return [RenderedRule(r.backend, 4, r.chain or "nw-fi-:all",
                             f'-j ACCEPT -m comment --comment "nw:{rule_id}"')
                for r, _ in self.rules if r.id == rule_id]

    def explain(self, src: str, dst: str, *, iface=None, direction="ingress",
                out_iface=None):
        """The engine's own walk over the profile's plan (this fake applies nothing)."""
        from nodewall.engine.explain.packet import parse_packet
        from nodewall.engine.explain.walk import explain
        from nodewall.engine.plan.planner import plan
        from nodewall.engine.profile.loader import load_profiles
        self._record("explain")
        desired = plan(load_profiles([Path(self.profile_path)]))
        packet = parse_packet(src, dst, iface=iface or desired.interfaces[0],
                              direction=direction, out_iface=out_iface)
        return explain(desired, packet, generation=self.generation)

    def acknowledge_revert(self):
        self._record("acknowledge_revert")
        notice, self.last_revert = self.last_revert, None
        return notice

    def history_lines(self, *, files: bool = True) -> list[str]:
        """The engine's own table over two made-up generations."""
        from nodewall.engine.safety.history import HistoryEntry, history_lines
        self._record("history")
        return history_lines([HistoryEntry(n, 1_700_000_000.0 + 60 * n, origin, (self.profile_path,),
                             "iptables", f"c{n}", outcome, (), n == self.generation)
                for n, origin, outcome in ((1, "cli", "kept"),
                                           (2, "tui", "reverted by timeout"))],
                             files=files)

    def rules_holding(self, address: str) -> frozenset[str]:
        """The engine's own answer (engine.explain.holding over the profile's plan),
        told in this fake's rule ids (same policy, direction and index)."""
        import ipaddress

        from nodewall.engine.explain.holding import rules_holding
        from nodewall.engine.plan.planner import plan
        from nodewall.engine.profile.loader import load_profiles
        self._record("rules_holding")
        desired = plan(load_profiles([Path(self.profile_path)]))
        real = {(m.policy, m.direction, m.index) for rid in
                rules_holding(desired, ipaddress.ip_address(address))
                if (m := desired.rules[rid])}
        return frozenset(r.id for r, _ in self.rules
                         if (r.policy, r.direction, r.index) in real)

    def diff(self, paths) -> PlanPreview:
        self._record("diff")
        return PlanPreview(
            lines=("+ nw-raw-pre: -s 10.0.0.0/8 -p tcp --dport 6379 -j NOTRACK (b2)",
                   "- nw-fil-in: -p tcp --dport 23 -j ACCEPT (old)"),
            rules_added=1, rules_removed=1, xdp=(("b2", "xdp"), ("c3", "raw only: egress")))

    def apply(self, paths, *, confirm_timeout: float | None, origin: str = "cli") -> ApplyResult:
        self._record("apply")
        previous = self.generation
        self.generation = (self.generation or 0) + 1
        pending = None
        if confirm_timeout is not None:
            pending = PendingConfirm(self.generation, previous,
                                     self.clock() + confirm_timeout, confirm_timeout)
        self.pending = pending
        return ApplyResult(self.generation, True, self.diff(paths), 0.05, pending)

    def confirm(self) -> None:
        self._record("confirm")
        self.pending = None

    def rollback(self, pending_generation: int | None = None) -> int | None:
        self._record("rollback")
        if self.pending is not None:
            self.generation = self.pending.previous_generation
        elif self.generation and self.generation > 1:
            self.generation -= 1
        self.pending = None
        return self.generation

    def set_panic(self, on: bool) -> None:
        self._record("panic on" if on else "panic off")
        self.panic = on
