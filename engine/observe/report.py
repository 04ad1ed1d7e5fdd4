"""The status report: what `status --output json` prints and what the TUI shows.
Collected by engine.observe.status (kernel reads); this module is pure data."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from nodewall.engine.safety.results import PendingConfirm

SCHEMA = 1


@dataclass(frozen=True)
class InterfaceInfo:
    name: str
    index: int
    state: str  # "up" / "down" / "unknown"
    mtu: int
    addresses: tuple[str, ...]  # "10.0.0.1/24", "fd00::1/64"
    rx_bytes: int
    tx_bytes: int
    rx_packets: int
    tx_packets: int
    xdp_mode: str | None = None  # "native" / "generic" / "offload" / None
    xdp_prog_id: int | None = None
    xdp_prog_name: str | None = None
    xdp_owned: bool = False  # the attached program is one nodewall pinned (its record)
    host_endpoint: str | None = None  # host endpoint covering it ("*" ones included)


@dataclass(frozen=True)
class ConntrackCpu:
    cpu: int
    found: int = 0
    invalid: int = 0
    insert: int = 0
    insert_failed: int = 0
    drop: int = 0
    early_drop: int = 0
    error: int = 0
    search_restart: int = 0


@dataclass(frozen=True)
class ConntrackInfo:
    count: int
    max: int
    per_cpu: tuple[ConntrackCpu, ...] = ()

    @property
    def fill(self) -> float:
        return self.count / self.max if self.max else 0.0


@dataclass(frozen=True)
class RuleStats:
    id: str
    profile: str
    policy: str
    direction: str
    index: int
    action: str
    backend: str  # "raw" / "mangle" / "filter" / "xdp"
    packets: int
    bytes: int
    tier: str = ""
    summary: str = ""
    loc: str | None = None  # "file:line:col" of the TOML rule
    eval_order: int = -1  # its place in evaluation order (-1: unknown, older records)
    interface: str = ""  # the host endpoint's interface ("*" for all; "": none)
    chain: str = ""  # the kernel chain counted ("nw-fi-eth0"; "xdp:eth0" for XDP)


@dataclass(frozen=True)
class StatusReport:
    netns: str | None
    iptables_mode: str  # "legacy" / "nft" / "mixed" / "none": where other tools' rules are
    interfaces: tuple[InterfaceInfo, ...]
    conntrack: ConntrackInfo
    rules: tuple[RuleStats, ...]
    generation: int | None
    pending_confirm: PendingConfirm | None
    drift: tuple[str, ...]
    checks_age_s: float = 0.0  # how old drift and foreign warnings are (0: checked now)
    panic: bool = False
    timestamp: float = 0.0
    last_revert: dict[str, Any] | None = None  # an automatic revert not yet acknowledged
    quarantined: tuple[str, ...] = ()  # content digests the agent will not re-apply
    writes: str = "iptables-legacy (raw, mangle, filter), ipset, XDP"
    iptables_command: str = "unknown"  # what the host's `iptables` drives: legacy / nft
    packet_filter: str | None = None  # the generation's: "iptables" / "nftables"
    recommendation: str | None = None  # e.g. use nftables on an iptables-nft host
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["conntrack"] = {
            "count": self.conntrack.count,
            "max": self.conntrack.max,
            "per_cpu": [asdict(c) for c in self.conntrack.per_cpu],
        }
        return {"schema": SCHEMA, **data}
