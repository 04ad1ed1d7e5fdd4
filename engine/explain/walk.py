"""Walk one packet through a DesiredState in the kernel's evaluation order.

Ingress: XDP on the interface (failsafe, then the accelerated rules: deny drops,
allow passes on), raw PREROUTING, mangle PREROUTING, filter INPUT.  Egress: raw
OUTPUT, filter OUTPUT.  Forwarded: XDP on the interface it arrives on, raw and mangle
PREROUTING, filter FORWARD (the host endpoints' forward chains, for policies with
apply_on_forward).  In each table the hook chain is followed as the kernel does
(JUMP returns, GOTO returns to the caller's caller, MARK and NOTRACK go on, ACCEPT
ends the table, DROP ends everything).  The packet is a new connection's first packet:
conntrack state NEW (UNTRACKED after a NOTRACK), no mark until nodewall sets one.

The deciding rule: the DROP that ended it, or the ACCEPT in filter; when filter
accepts because an untracked or pre-DNAT policy allowed the packet earlier (conntrack
state UNTRACKED, or the mark), that earlier policy rule decides.  A forwarded packet
nodewall allows RETURNs to the rest of the kernel's FORWARD chain: the policy rule that
returned it decides.  When failsafe decides, the walk is repeated without
failsafe rules: the rule that would have denied the packet is named (failsafe
overrides it)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from nodewall.engine.dataplane.nftables.render import chain_name as nft_chain_name
from nodewall.engine.explain.match import match_packet
from nodewall.engine.explain.members import (
    SetHit,
    SetIndex,
    in_net,
    lookup_source,
)
from nodewall.engine.explain.packet import Packet
from nodewall.engine.plan.desired import (
    ChainRule,
    DesiredState,
    RuleMeta,
    TableState,
    XdpInterface,
    XdpRule,
)
from nodewall.engine.plan.xdp import protocol_number

Verdict = Literal["allow", "deny"]
Outcome = Literal["ACCEPT", "DROP", "RETURN"]
MAX_DEPTH = 8  # nodewall's chains nest at most three deep
FAILSAFE = "(failsafe)"
# filter rules accepting what raw (UNTRACKED) or mangle (the mark) already allowed
ALREADY_ALLOWED = frozenset({"(mark)", "(untracked)"})
NO_ENDPOINT = "(no host endpoint)"
STAGES: dict[str, tuple[tuple[str, str], ...]] = {
    "ingress": (("raw", "PREROUTING"), ("mangle", "PREROUTING"), ("filter", "INPUT")),
    "egress": (("raw", "OUTPUT"), ("filter", "OUTPUT")),
    "forward": (("raw", "PREROUTING"), ("mangle", "PREROUTING"), ("filter", "FORWARD")),
}


@dataclass(frozen=True)
class RuleRef:
    """A rule by id, with what the plan recorded about it."""

    id: str | None
    policy: str
    summary: str = ""
    action: str = ""
    profile: str = ""
    direction: str = ""
    index: int = -1
    loc: str | None = None

    @classmethod
    def of(cls, rule_id: str, meta: RuleMeta | None) -> RuleRef:
        if meta is None:
            return cls(rule_id, "(unknown)")
        return cls(rule_id, meta.policy, meta.summary, meta.action, meta.profile,
                   meta.direction, meta.index, str(meta.loc) if meta.loc else None)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "policy": self.policy, "summary": self.summary,
                "action": self.action, "profile": self.profile, "direction": self.direction,
                "index": self.index, "loc": self.loc}


@dataclass(frozen=True)
class Step:
    """One rule that took the packet, where, and what it did."""

    stage: str  # "xdp", "raw", "mangle", "filter"
    chain: str  # the chain as the packet filter names it
    rule: RuleRef
    action: str  # ACCEPT, DROP, RETURN, JUMP nw-x, GOTO nw-x, MARK, NOTRACK, LOG, PASS
    because: tuple[str, ...] = ()
    hits: tuple[SetHit, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"stage": self.stage, "chain": self.chain, "rule": self.rule.to_json(),
                "action": self.action, "because": list(self.because),
                "set_members": [h.to_json() for h in self.hits]}


@dataclass(frozen=True)
class Explanation:
    packet: Packet
    packet_filter: str
    verdict: Verdict
    stage: str | None  # where it was decided; None: no nodewall chain took the packet
    rule: RuleRef
    path: tuple[Step, ...]
    overrides: Step | None = None  # the deny failsafe overrode
    generation: int | None = None

    def text_lines(self, *, verdict_first: bool = False) -> list[str]:
        """The explanation for humans (the CLI's text output, the TUI's dialog): the
        packet, the path, the verdict; `verdict_first` puts the verdict (and
        failsafe's note) right under the packet, before the path."""
        head = f"{self.packet.describe()}   (generation {self.generation}, {self.packet_filter})"
        path = self._path_lines()
        answer = self._verdict_lines()
        return [head, *answer, *path] if verdict_first else [head, *path, *answer]

    def _path_lines(self) -> list[str]:
        lines = []
        for i, step in enumerate(self.path, 1):
            r = step.rule
            lines.append(f"  {i:>2}. {step.stage:<6} {step.chain:<26} {step.action:<24} "
                         f"{r.policy} {r.summary}")
            lines += [f"        {why}" for why in step.because]
        if not self.path:
            lines.append("  (no nodewall rule takes this packet)")
        return lines

    def _verdict_lines(self) -> list[str]:
        where = f" at {self.stage}" if self.stage else ""
        rid = f" [{self.rule.id}]" if self.rule.id else ""
        verdict = (f"verdict: {self.verdict.upper()}{where} by {self.rule.policy}{rid} "
                   f"{self.rule.summary}")
        lines = [verdict]
        if self.overrides is not None:
            o = self.overrides
            lines.append(f"note: failsafe overrides a deny: without failsafe, {o.rule.policy} "
                         f"[{o.rule.id}] ({o.rule.summary}) would drop it at {o.stage}")
        return lines

    def to_json(self) -> dict[str, Any]:
        p = self.packet
        return {"schema": 1, "generation": self.generation,
                "packet": {"src": str(p.src), "dst": str(p.dst), "protocol": p.protocol,
                           "src_port": p.src_port, "dst_port": p.dst_port, "iface": p.iface,
                           "out_iface": p.out_iface, "icmp_type": p.icmp_type,
                           "icmp_code": p.icmp_code, "direction": p.direction,
                           "text": p.describe()},
                "packet_filter": self.packet_filter, "verdict": self.verdict,
                "stage": self.stage, "rule": self.rule.to_json(),
                "failsafe_overrides": None if self.overrides is None
                else self.overrides.to_json(),
                "path": [s.to_json() for s in self.path]}


@dataclass
class _Walk:
    desired: DesiredState
    packet: Packet
    sets: SetIndex
    skip_failsafe: bool = False
    mark: int = 0
    ct_state: str = "NEW"
    path: list[Step] = field(default_factory=list)
    jumps: list[Step] = field(default_factory=list)
    marked_by: Step | None = None
    returned_by: Step | None = None  # the last policy rule that RETURNed the packet

    def ref(self, rule_id: str) -> RuleRef:
        return RuleRef.of(rule_id, self.desired.rules.get(rule_id))

    def chain_label(self, ts: TableState, name: str) -> str:
        if self.desired.packet_filter == "nftables":
            return nft_chain_name(ts.family, ts.table, name)
        return f"{ts.table} {name}"

    # ---------------------------------------------------------------- iptables / nft
    def table(self, ts: TableState, kernel_chain: str) -> tuple[Outcome, Step | None]:
        hook = next((h for h in ts.hooks if h.kernel_chain == kernel_chain), None)
        if hook is None:
            return "RETURN", None
        return self.chain(ts, hook.chain, 0)

    def chain(self, ts: TableState, name: str, depth: int) -> tuple[Outcome, Step | None]:
        chain = next((c for c in ts.chains if c.name == name), None)
        if chain is None or depth > MAX_DEPTH:
            return "RETURN", None
        for rule in chain.rules:
            outcome = self.rule(ts, name, rule, depth)
            if outcome is not None:
                return outcome
        return "RETURN", None

    def rule(self, ts: TableState, name: str, rule: ChainRule,
             depth: int) -> tuple[Outcome, Step | None] | None:
        ref = self.ref(rule.rule_id)
        if self.skip_failsafe and ref.policy == FAILSAFE:
            return None
        result = match_packet(rule.match, self.packet, self.mark, self.sets, self.ct_state)
        if not result.matched:
            return None
        t = rule.target
        action = f"{t.kind} {t.chain}" if t.chain else t.kind
        step = Step(ts.table, self.chain_label(ts, name), ref, action,
                    tuple(result.because), tuple(result.hits))
        self.path.append(step)
        if t.kind == "RETURN" and not ref.policy.startswith("("):
            self.returned_by = step
        if t.kind in ("ACCEPT", "DROP", "RETURN"):
            return t.kind, step  # type: ignore[return-value]
        if t.kind == "MARK" and t.mark is not None:
            self.mark = (self.mark & ~t.mark[1]) | t.mark[0]
        if t.kind == "NOTRACK":
            self.ct_state = "UNTRACKED"
        if t.kind in ("MARK", "NOTRACK") and self.marked_by is None and self.jumps:
            self.marked_by = self.jumps[-1]
        if t.kind in ("JUMP", "GOTO") and t.chain:
            self.jumps.append(step)
            outcome = self.chain(ts, t.chain, depth + 1)
            self.jumps.pop()
            if t.kind == "GOTO" or outcome[0] != "RETURN":
                return outcome
        return None

    # ---------------------------------------------------------------- XDP
    def xdp(self, xi: XdpInterface) -> Step | None:
        """The XDP verdict step when XDP drops the packet, else None (passed on)."""
        p = self.packet
        for fs, reverse in ([(f, False) for f in xi.failsafe]
                            + [(f, True) for f in xi.failsafe_return]):
            port = p.src_port if reverse else p.dst_port
            if self.skip_failsafe or protocol_number(fs.protocol) != p.protocol \
                    or port != fs.port:
                continue
            if fs.net is not None and not in_net(p.src, fs.net):
                continue
            kind = "failsafe return traffic" if reverse else "failsafe"
            self.path.append(Step("xdp", xi.iface, RuleRef(f"xdp-failsafe:{fs}", FAILSAFE,
                                                           f"{kind} {fs}", "allow"), "PASS"))
            return None
        for rule in xi.rules:
            hit = self.xdp_rule_hit(rule)
            if hit is False:
                continue
            step = Step("xdp", xi.iface, self.ref(rule.rule_id),
                        "DROP" if rule.action == "deny" else "PASS",
                        (f"source {p.src} in {hit.describe()}",) if hit else (),
                        (hit,) if hit else ())
            self.path.append(step)
            return step if rule.action == "deny" else None
        return None

    def xdp_rule_hit(self, rule: XdpRule) -> SetHit | None | bool:
        """False: no match; None: match without a source set; SetHit: the member."""
        p = self.packet
        if rule.family not in (0, p.family):
            return False
        if rule.protocol is not None and rule.protocol != p.protocol:
            return False
        if rule.dst_ports and not any(r.first <= (p.dst_port if p.dst_port is not None
                                                  else -1) <= r.last
                                      for r in rule.dst_ports):
            return False
        if not rule.src_bits:
            return None
        for source in self.desired.xdp.sets:
            if rule.src_bits & (1 << source.bit):
                hit = lookup_source(source.origin, source.inline, source.files, p.src)
                if hit is not None:
                    return hit
        return False

    # ---------------------------------------------------------------- the whole path
    def run(self) -> tuple[Verdict, str | None, Step | None]:
        p = self.packet
        if p.direction in ("ingress", "forward"):
            xi = next((x for x in self.desired.xdp.interfaces if x.iface == p.iface), None)
            if xi is not None:
                dropped = self.xdp(xi)
                if dropped is not None:
                    return "deny", "xdp", dropped
        for table, kernel_chain in STAGES[p.direction]:
            ts = self.desired.table(p.family, table)  # type: ignore[arg-type]
            if ts is None:
                continue
            self.returned_by = None
            outcome, step = self.table(ts, kernel_chain)
            if outcome == "DROP":
                return "deny", table, step
            if outcome == "ACCEPT" and table == "filter":
                if step is not None and step.rule.policy in ALREADY_ALLOWED and self.marked_by:
                    return "allow", self.marked_by.stage, self.marked_by
                return "allow", table, step
        if p.direction == "forward" and self.returned_by is not None \
                and self.returned_by.stage == "filter":
            return "allow", self.returned_by.stage, self.returned_by
        return "allow", None, None


def explain(desired: DesiredState, packet: Packet, *, generation: int | None = None,
            sets: SetIndex | None = None) -> Explanation:
    """The path of `packet` through `desired`, the verdict and the rule deciding it."""
    index = sets if sets is not None else SetIndex(desired.ipsets)
    walk = _Walk(desired, packet, index)
    verdict, stage, step = walk.run()
    rule = step.rule if step is not None else RuleRef(None, NO_ENDPOINT,
                                                      "no nodewall chain takes this packet: "
                                                      "the kernel's own rules decide")
    overrides = None
    if step is not None and rule.policy == FAILSAFE:
        without = _Walk(desired, packet, index, skip_failsafe=True)
        other_verdict, _stage, other = without.run()
        if other_verdict == "deny" and other is not None:
            overrides = other
    return Explanation(packet, desired.packet_filter, verdict, stage, rule,
                       tuple(walk.path), overrides, generation)

