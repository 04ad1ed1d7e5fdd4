"""Builders for planner tests: Profile objects written by hand, plus helpers that
read a DesiredState back (chains as rendered iptables lines).  No tests here."""
from __future__ import annotations

from pathlib import Path

from nodewall.engine.dataplane.iptables.render import render_text
from nodewall.engine.errors import Loc
from nodewall.engine.nets.scan import NetsFile
from nodewall.engine.plan.desired import Chain, DesiredState, TableState
from nodewall.engine.profile.model import (
    EntityMatch,
    Failsafe,
    HostEndpoint,
    NetworkSet,
    Policy,
    PortRange,
    Profile,
    Settings,
)
from nodewall.engine.profile.model import Rule as PRule

LOC = Loc("test.toml", 1, 1)


def fs(text: str) -> Failsafe:
    proto, rest = text.split(":")
    port, _, net = rest.partition("@")
    return Failsafe(proto, int(port), net or None, LOC)  # type: ignore[arg-type]


def ports(*items: int | str) -> tuple[PortRange, ...]:
    out = []
    for i in items:
        if isinstance(i, str):
            a, b = i.split(":")
            out.append(PortRange(int(a), int(b)))
        else:
            out.append(PortRange(i, i))
    return tuple(out)


def hep(name: str = "uplink", iface: str = "eth0", ips: tuple[str, ...] = ("192.0.2.10",),
        **labels: str) -> HostEndpoint:
    return HostEndpoint(name, iface, ips, labels or {"hep": name}, LOC)


def netset(name: str, nets: tuple[str, ...] = (), labels: dict[str, str] | None = None,
           file: tuple[str, int, int] | None = None) -> NetworkSet:
    nf = None if file is None else NetsFile(Path(file[0]), file[1], file[2], LOC)
    return NetworkSet(name, labels or {"set": name}, nets, nf, LOC)


def rule(action: str = "allow", src: EntityMatch | None = None, dst: EntityMatch | None = None,
         line: int = 1, **kw) -> PRule:
    return PRule(action, source=src or EntityMatch(), destination=dst or EntityMatch(),  # type: ignore[arg-type]
                 loc=Loc("test.toml", line, 1), **kw)


def policy(name: str, ingress: tuple[PRule, ...] = (), egress: tuple[PRule, ...] = (),
           order: float = 100, selector: str = "all()", tier: str = "normal",
           forward: bool = False, types: tuple[str, ...] | None = None) -> Policy:
    if types is None:
        types = tuple(t for t, rs in (("ingress", ingress), ("egress", egress)) if rs) \
            or ("ingress",)
    return Policy(name, order, selector, types, tier == "untracked", tier == "prednat",  # type: ignore[arg-type]
                  forward or tier != "normal", ingress, egress, "test.toml", LOC)


def profile(*, heps=(), sets=(), policies=(), inbound=("tcp:22",), outbound=("udp:53",),
            backend: str = "auto", warnings: tuple[str, ...] = ()) -> Profile:
    settings = Settings(backend=backend,  # type: ignore[arg-type]
                        failsafe_inbound=tuple(fs(x) for x in inbound),
                        failsafe_outbound=tuple(fs(x) for x in outbound))
    return Profile(("test.toml",), settings, tuple(heps), tuple(sets),
                   tuple(sorted(policies, key=lambda p: (p.order, p.name))), warnings)


def table(d: DesiredState, family: int, name: str) -> TableState:
    t = d.table(family, name)  # type: ignore[arg-type]
    assert t is not None, f"no v{family} {name} table"
    return t


def chain(d: DesiredState, family: int, tname: str, cname: str) -> Chain:
    for c in table(d, family, tname).chains:
        if c.name == cname:
            return c
    raise AssertionError(f"no chain {cname} in v{family} {tname}: "
                         f"{[c.name for c in table(d, family, tname).chains]}")


def chain_names(d: DesiredState, family: int, tname: str) -> list[str]:
    return [c.name for c in table(d, family, tname).chains]


def lines(d: DesiredState, family: int, tname: str, cname: str) -> list[str]:
    """The chain's rules as iptables-save words, without the comment."""
    return [render_text(r, family, comment=False)  # type: ignore[arg-type]
            for r in chain(d, family, tname, cname).rules]


def ids(d: DesiredState, family: int, tname: str, cname: str) -> list[str]:
    return [r.rule_id for r in chain(d, family, tname, cname).rules]


def policy_ids(d: DesiredState, name: str, direction: str = "ingress") -> list[str]:
    """Rule ids of a policy's rules, by index."""
    metas = [m for m in d.rules.values() if m.policy == name and m.direction == direction]
    return [m.rule_id for m in sorted(metas, key=lambda m: m.index)]
