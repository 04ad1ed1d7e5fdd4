"""The parsed profile: frozen dataclasses, produced by engine.profile.loader and
consumed by engine.plan.  Field names are Calico's in snake_case (README, Profile reference).

Every object keeps the Loc of the TOML element it came from so that any later
semantic error (and the TUI's "jump to rule") can point at file:line:col.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from nodewall.engine.errors import Loc
from nodewall.engine.nets.scan import NetsFile

Action = Literal["allow", "deny", "log", "pass"]
Direction = Literal["ingress", "egress"]
Backend = Literal["auto", "iptables", "xdp", "nftables"]
# the packet filter under backend "auto"/"xdp" (XDP's backstop); "auto": see
# engine.safety.transactions.choose_packet_filter
PacketFilterChoice = Literal["auto", "iptables", "nftables"]
XdpMode = Literal["auto", "native", "generic"]

# Felix's defaults (FailsafeInboundHostPorts / FailsafeOutboundHostPorts).
DEFAULT_FAILSAFE_INBOUND = (
    "tcp:22", "udp:68", "tcp:179", "tcp:2379", "tcp:2380", "tcp:5473",
    "tcp:6443", "tcp:6666", "tcp:6667",
)
DEFAULT_FAILSAFE_OUTBOUND = (
    "udp:53", "udp:67", "tcp:179", "tcp:2379", "tcp:2380", "tcp:5473",
    "tcp:6443", "tcp:6666", "tcp:6667",
)

# Upper bound on members of one network set (per family); settings.max_set_entries
# may lower or raise it.  Felix crashes past 1,048,576; we go to 16M by default.
DEFAULT_MAX_SET_ENTRIES = 16 * 1024 * 1024


@dataclass(frozen=True)
class PortRange:
    first: int
    last: int  # == first for a single port

    def __str__(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}:{self.last}"


@dataclass(frozen=True)
class Failsafe:
    """One failsafe entry `proto:port[@cidr]`."""

    protocol: Literal["tcp", "udp"]
    port: int
    net: str | None  # normalized CIDR or None (= any)
    loc: Loc

    def __str__(self) -> str:
        return f"{self.protocol}:{self.port}" + (f"@{self.net}" if self.net else "")


@dataclass(frozen=True)
class Settings:
    backend: Backend = "auto"
    packet_filter: PacketFilterChoice = "auto"
    xdp_mode: XdpMode = "auto"
    failsafe_inbound: tuple[Failsafe, ...] = ()
    failsafe_outbound: tuple[Failsafe, ...] = ()
    max_set_entries: int = DEFAULT_MAX_SET_ENTRIES
    loc: Loc | None = None


@dataclass(frozen=True)
class HostEndpoint:
    name: str
    interface: str  # a name or "*"
    expected_ips: tuple[str, ...]  # normalized addresses (no prefix)
    labels: Mapping[str, str]
    loc: Loc
    interface_loc: Loc | None = None  # where `interface = ...` is written


@dataclass(frozen=True)
class NetworkSet:
    name: str
    labels: Mapping[str, str]
    nets: tuple[str, ...]  # inline, normalized CIDRs, v4 and v6 mixed
    nets_file: NetsFile | None
    loc: Loc

    def count(self, family: int) -> int:
        inline = sum(1 for n in self.nets if (":" in n) == (family == 6))
        if self.nets_file is None:
            return inline
        return inline + (self.nets_file.count_v6 if family == 6 else self.nets_file.count_v4)


@dataclass(frozen=True)
class EntityMatch:
    """`source` / `destination` of a rule."""

    nets: tuple[str, ...] = ()
    not_nets: tuple[str, ...] = ()
    selector: str | None = None  # Calico selector text (parsed again by the planner)
    not_selector: str | None = None
    ports: tuple[PortRange, ...] = ()
    not_ports: tuple[PortRange, ...] = ()
    loc: Loc | None = None

    def is_empty(self) -> bool:
        return not (self.nets or self.not_nets or self.selector or self.not_selector
                    or self.ports or self.not_ports)


@dataclass(frozen=True)
class IcmpMatch:
    type: int | None = None
    code: int | None = None


@dataclass(frozen=True)
class Rule:
    action: Action
    protocol: str | None = None  # "tcp" "udp" "icmp" "icmpv6" "sctp" "udplite" or "<number>"
    not_protocol: str | None = None
    icmp: IcmpMatch | None = None
    not_icmp: IcmpMatch | None = None
    ip_version: int | None = None  # 4, 6 or None (both)
    source: EntityMatch = field(default_factory=EntityMatch)
    destination: EntityMatch = field(default_factory=EntityMatch)
    loc: Loc | None = None


@dataclass(frozen=True)
class Policy:
    name: str
    order: float
    selector: str
    types: tuple[Direction, ...]
    do_not_track: bool
    pre_dnat: bool
    apply_on_forward: bool
    ingress: tuple[Rule, ...]
    egress: tuple[Rule, ...]
    profile: str  # the file it came from
    loc: Loc

    @property
    def tier(self) -> Literal["untracked", "prednat", "normal"]:
        if self.do_not_track:
            return "untracked"
        if self.pre_dnat:
            return "prednat"
        return "normal"


@dataclass(frozen=True)
class Profile:
    """All profile files of one apply, merged (names unique across files)."""

    files: tuple[str, ...]
    settings: Settings
    host_endpoints: tuple[HostEndpoint, ...]
    network_sets: tuple[NetworkSet, ...]
    policies: tuple[Policy, ...]  # sorted by (order, name)
    warnings: tuple[str, ...] = ()  # "file:line:col: warning: ..." lines
