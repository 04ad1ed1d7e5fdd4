"""Selector resolution: which network sets and host endpoints a rule's
source/destination selector picks, and the ipsets that stand for them per family.

Per family a selector resolves to
  - nothing (no network set matches and no matching host endpoint has an address of
    the family): the match cannot be satisfied in that family;
  - exactly one network set and no host endpoint: that network set's hash:net;
  - only host endpoints: a small hash:net of their expected_ips;
  - anything else: a list:set over the network sets' hash:nets (plus the host set).
A network set's hash:net is emitted for both families even when it has no member of
one of them (an empty set is harmless and keeps names stable).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from nodewall.engine.plan.desired import Family, IpSetSpec
from nodewall.engine.plan.naming import hosts_set, list_set, netset_set
from nodewall.engine.profile.model import HostEndpoint, NetworkSet, Profile
from nodewall.engine.profile.selector import Selector, parse_selector

FAMILIES: tuple[Family, Family] = (4, 6)


def family_of(cidr: str) -> Family:
    return 6 if ":" in cidr else 4


def host_cidr(ip: str) -> str:
    return ip if "/" in ip else f"{ip}/{128 if ':' in ip else 32}"


@lru_cache(maxsize=4096)
def parse_cached(text: str) -> Selector:
    return parse_selector(text)


@dataclass(frozen=True)
class Selection:
    """What a selector picks among network sets and host endpoints."""

    network_sets: tuple[NetworkSet, ...]
    host_endpoints: tuple[HostEndpoint, ...]

    def is_empty(self) -> bool:
        return not self.network_sets and not self.host_endpoints

    def host_cidrs(self, family: Family) -> tuple[str, ...]:
        cidrs = {host_cidr(ip) for h in self.host_endpoints for ip in h.expected_ips
                 if family_of(ip) == family}
        return tuple(sorted(cidrs))


@dataclass(frozen=True)
class Resolution:
    """A selector resolved for one family."""

    set_name: str | None  # None: matches nothing in this family
    specs: tuple[IpSetSpec, ...] = ()  # every set the name needs (members first)


_HALVES = {"0.0.0.0/0": ("0.0.0.0/1", "128.0.0.0/1"), "::/0": ("::/1", "8000::/1")}


def set_members(nets: tuple[str, ...]) -> tuple[str, ...]:
    """Members for a hash:net set: a /0 cannot be one (the kernel refuses it), so it
    becomes its two /1 halves, which match exactly the same addresses (nets_file
    members get the same treatment in engine.nets.lines)."""
    return tuple(m for n in nets for m in _HALVES.get(n, (n,)))


def netset_spec(ns: NetworkSet, family: Family) -> IpSetSpec:
    return IpSetSpec(
        name=netset_set(ns.name, family), family=family, kind="hash:net",
        inline=set_members(tuple(n for n in ns.nets if family_of(n) == family)),
        files=(ns.nets_file.path,) if ns.nets_file is not None else (),
        expected_count=ns.count(family), origin=f"network set {ns.name}")


class SetResolver:
    """Resolves selectors against one profile's network sets and host endpoints."""

    def __init__(self, profile: Profile):
        self.profile = profile
        self._selections: dict[str, Selection] = {}

    def select(self, text: str) -> Selection:
        sel = self._selections.get(text)
        if sel is None:
            parsed = parse_cached(text)
            sel = Selection(
                tuple(n for n in self.profile.network_sets if parsed.matches(n.labels)),
                tuple(h for h in self.profile.host_endpoints if parsed.matches(h.labels)))
            self._selections[text] = sel
        return sel

    def resolve(self, text: str, family: Family) -> Resolution:
        sel = self.select(text)
        specs = [netset_spec(ns, family) for ns in sel.network_sets]
        cidrs = sel.host_cidrs(family)
        if cidrs:
            names = ", ".join(sorted({h.name for h in sel.host_endpoints}))
            specs.append(IpSetSpec(
                name=hosts_set(cidrs, family), family=family, kind="hash:net",
                inline=cidrs, expected_count=len(cidrs), origin=f"host endpoints {names}"))
        if not specs:
            return Resolution(None)
        if len(specs) == 1:
            return Resolution(specs[0].name, tuple(specs))
        members = tuple(sorted(s.name for s in specs))
        lst = IpSetSpec(name=list_set(members, family), family=family, kind="list:set",
                        members=members, expected_count=len(members),
                        origin=f"selector {parse_cached(text).canonical()}")
        return Resolution(lst.name, (*specs, lst))
