"""Panic mode: drop everything except failsafe traffic, in the raw table, first.

While the marker `panic.json` sits in the state dir, every kernel write of the
transaction layer (apply, rollback, confirm timeout, recovery) goes through
overlay(): per family, the raw table gets two more chains

    nw-panic-in   -i lo ACCEPT, failsafe inbound ACCEPT (dst port), return traffic of
                  failsafe outbound ACCEPT (src port), (v6) ICMPv6 NDP/MLD ACCEPT, DROP
    nw-panic-out  the mirror for OUTPUT

and `-j nw-panic-in` / `-j nw-panic-out` as the FIRST rule of nw-PREROUTING /
nw-OUTPUT (created, with their hooks, when the profile has no raw rules).  So panic is
one more part of the desired state: it is applied with the same per-table atomic
commits, survives every apply while it is on, and `panic off` (or `flush`) is just a
write without it.  XDP runs before raw and only ever drops, so nothing it passes
escapes the panic chains.

The failsafe lists are those of the profile in place (Felix's defaults when nothing is
applied); the marker records the ones in force, for status and drift.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from nodewall.engine.dataplane.shape import ExpectedShape
from nodewall.engine.errors import Loc
from nodewall.engine.plan.desired import (
    Chain,
    ChainRule,
    DesiredState,
    Family,
    Hook,
    Match,
    RuleMeta,
    TableState,
    Target,
    XdpState,
)
from nodewall.engine.plan.rule_ids import synthetic_id
from nodewall.engine.profile.model import Failsafe, PortRange, Settings
from nodewall.engine.profile.objects import default_settings
from nodewall.engine.safety.state_dir import StateStore
from nodewall.engine.system.files import atomic_write_json

PANIC_IN = "nw-panic-in"
PANIC_OUT = "nw-panic-out"
MARKER = "panic.json"
NDP_TYPES = (130, 131, 132, 133, 134, 135, 136)
_TOPS = (("PREROUTING", "nw-PREROUTING", PANIC_IN, True), ("OUTPUT", "nw-OUTPUT", PANIC_OUT, False))
EMPTY = DesiredState(tables=(), ipsets=(), xdp=XdpState(), rules={})


@dataclass(frozen=True)
class PanicState:
    since: float
    inbound: tuple[tuple[str, int, str | None], ...]  # (protocol, port, net)
    outbound: tuple[tuple[str, int, str | None], ...]

    def failsafes(self) -> tuple[tuple[Failsafe, ...], tuple[Failsafe, ...]]:
        loc = Loc("(panic)")
        return (tuple(Failsafe(p, n, net, loc) for p, n, net in self.inbound),  # type: ignore[arg-type]
                tuple(Failsafe(p, n, net, loc) for p, n, net in self.outbound))  # type: ignore[arg-type]

    def describe(self) -> str:
        def fmt(entries) -> str:
            return ", ".join(f"{p}:{n}" + (f"@{net}" if net else "") for p, n, net in entries) \
                or "none"
        return f"failsafe inbound {fmt(self.inbound)}; outbound {fmt(self.outbound)}"


def state_from_settings(settings: Settings | None, since: float | None = None) -> PanicState:
    s = settings or default_settings("(felix defaults)")
    return PanicState(since or time.time(),
                      tuple((f.protocol, f.port, f.net) for f in s.failsafe_inbound),
                      tuple((f.protocol, f.port, f.net) for f in s.failsafe_outbound))


def read_marker(root: Path) -> PanicState | None:
    try:
        d = json.loads((root / MARKER).read_text())
        return PanicState(float(d["since"]),
                          tuple((str(p), int(n), net) for p, n, net in d["inbound"]),
                          tuple((str(p), int(n), net) for p, n, net in d["outbound"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        # A damaged marker must not switch panic off: fall back to Felix's defaults.
        return state_from_settings(None)


def write_marker(root: Path, state: PanicState) -> None:
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_json(root / MARKER, asdict(state), mode=0o600)


def clear_marker(root: Path) -> None:
    (root / MARKER).unlink(missing_ok=True)


# -- rules -------------------------------------------------------------------------

def _meta(rid: str, direction: str, action: str, tier: str, summary: str) -> RuleMeta:
    return RuleMeta(rid, "", "(panic)", direction, -1, action, tier, None,  # type: ignore[arg-type]
                    summary)


def _chain_rules(fs_own: tuple[Failsafe, ...], fs_other: tuple[Failsafe, ...],
                 family: Family, inbound: bool) -> tuple[list[ChainRule], dict[str, RuleMeta]]:
    direction = "ingress" if inbound else "egress"
    rules: list[ChainRule] = []
    metas: dict[str, RuleMeta] = {}
    accept, drop = Target("ACCEPT"), Target("DROP")

    def add(role: tuple[str, ...], match: Match, target: Target, action: str, tier: str,
            summary: str) -> None:
        rid = synthetic_id("panic", *role)
        rules.append(ChainRule(rid, match, target))
        metas[rid] = _meta(rid, direction, action, tier, summary)

    add(("lo", direction), Match(in_iface="lo") if inbound else Match(out_iface="lo"),
        accept, "allow", "failsafe", f"panic: accept loopback {direction}")
    for reverse, entries in ((False, fs_own), (True, fs_other)):
        for fs in entries:
            if fs.net is not None and (6 if ":" in fs.net else 4) != family:
                continue
            port = (PortRange(fs.port, fs.port),)
            remote_src = inbound  # the remote end is the source of what comes in
            m = Match(protocol=fs.protocol,
                      src_ports=port if reverse else (), dst_ports=() if reverse else port,
                      src_net=fs.net if remote_src else None,
                      dst_net=None if remote_src else fs.net)
            what = f"return traffic of failsafe {fs}" if reverse else f"failsafe {fs}"
            add(("failsafe", direction, "return" if reverse else "own", str(fs)), m, accept,
                "allow", "failsafe", f"panic: accept {what} {direction}")
    if family == 6:
        rid = synthetic_id("panic", "ndp", direction)
        rules += [ChainRule(rid, Match(protocol="icmpv6", icmp_type=t), accept) for t in NDP_TYPES]
        metas[rid] = _meta(rid, direction, "allow", "failsafe",
                           f"panic: accept ICMPv6 neighbour discovery/MLD {direction}")
    add(("drop", direction), Match(), drop, "deny", "default",
        f"panic: drop every other packet {direction}")
    return rules, metas


def panic_parts(state: PanicState) -> tuple[dict[Family, dict[str, list[ChainRule]]],
                                             dict[str, RuleMeta], dict[str, ChainRule]]:
    """Per family, {panic chain: rules}; the metas; {top chain: the jump rule}."""
    fs_in, fs_out = state.failsafes()
    chains: dict[Family, dict[str, list[ChainRule]]] = {}
    metas: dict[str, RuleMeta] = {}
    jumps: dict[str, ChainRule] = {}
    for family in (4, 6):
        per: dict[str, list[ChainRule]] = {}
        for _kc, top, chain, inbound in _TOPS:
            rules, m = _chain_rules(fs_in if inbound else fs_out, fs_out if inbound else fs_in,
                                    family, inbound)  # type: ignore[arg-type]
            per[chain] = rules
            metas.update(m)
            rid = synthetic_id("panic", "jump", chain)
            jumps[top] = ChainRule(rid, Match(), Target("JUMP", chain=chain))
            metas[rid] = _meta(rid, "ingress" if inbound else "egress", "jump", "default",
                               f"panic: everything through {chain}")
        chains[family] = per  # type: ignore[index]
    return chains, metas, jumps


def overlay(desired: DesiredState, state: PanicState) -> DesiredState:
    """`desired` plus the panic chains, jumped to first from raw PREROUTING/OUTPUT."""
    chains, metas, jumps = panic_parts(state)
    tables = [t for t in desired.tables if t.table != "raw"]
    for family in (4, 6):
        raw = desired.table(family, "raw") or TableState(family, "raw", (), ())  # type: ignore[arg-type]
        by_name = {c.name: c for c in raw.chains}
        hooks = {h.kernel_chain: h for h in raw.hooks}
        for kc, top, _chain, _inbound in _TOPS:
            old = by_name.get(top)
            by_name[top] = Chain(top, (jumps[top], *(old.rules if old else ())))
            hooks.setdefault(kc, Hook(kc, top))
        for name, rules in chains[family].items():  # type: ignore[index]
            by_name[name] = Chain(name, tuple(rules))
        tables.append(TableState(family, "raw", tuple(by_name.values()),  # type: ignore[arg-type]
                                 tuple(hooks.values())))
    return replace(desired, tables=tuple(tables), rules={**desired.rules, **metas})


def overlay_shape(expected: ExpectedShape, state: PanicState) -> ExpectedShape:
    """The recorded kernel shape of a generation as it is with panic on: the panic
    chains and their jumps first."""
    return expected.with_first(ExpectedShape.of(overlay(EMPTY, state), {}))


def expected_now(store: StateStore) -> ExpectedShape:
    """The kernel shape the recorded generation (plus panic, when on) should have;
    empty when nothing is applied (then every nw- object counts as drift)."""
    generation = store.current()
    expected = store.meta(generation).expected if generation is not None else ExpectedShape()
    panic = read_marker(store.root)
    return overlay_shape(expected, panic) if panic is not None else expected


def rule_metas(state: PanicState) -> dict[str, dict[str, Any]]:
    """{rule id: RuleMeta as dict} of the panic rules, for status counters."""
    _, metas, _ = panic_parts(state)
    out = {}
    for rid, m in metas.items():
        d = asdict(m)
        d["loc"] = None
        out[rid] = d
    return out
