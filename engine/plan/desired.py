"""DesiredState: what the kernel should hold, backend-neutral.

Produced by engine.plan.planner from a Profile (pure, no root), consumed by the
backends (engine.dataplane.iptables, .ipsets and .xdp) which observe the kernel,
diff and apply.

Rule identity: every rendered iptables rule carries the comment `nw:<rule_id>`.
A rule_id is a hash over the TOML rule's content, its policy, direction, the
resolved inputs of its rendering (ipset names, ...) and a duplicate index (see
engine.plan.rule_ids).  So equal id <=> equal rendered block, and the iptables backend
diffs chains as sequences of id blocks: unchanged rules keep their counters.
One TOML rule may render to several iptables rules (e.g. >15 ports, v4 + v6); they
share the id and their counters are summed.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from nodewall.engine.errors import Loc
from nodewall.engine.profile.model import Failsafe, PortRange

Family = Literal[4, 6]
TableName = Literal["raw", "mangle", "filter"]
PacketFilter = Literal["iptables", "nftables"]

# Packet-mark bits nodewall owns (set with --set-xmark bit/bit, other bits untouched).
MARK_ALLOW = 0x00800000  # accepted by pre-DNAT (mangle) policy

PREFIX = "nw-"  # chains and ipsets
COMMENT_PREFIX = "nw:"  # iptables comment "nw:<rule_id>"
HOOK_RULE_ID = "hook"  # comment of the one jump nodewall puts in each kernel chain


@dataclass(frozen=True)
class RuleMeta:
    """What a rule id means, for status, the TUI and counters."""

    rule_id: str
    profile: str  # profile file ("" for synthetic rules)
    policy: str  # policy name, or "(failsafe)", "(default-deny)", "(conntrack)", "(mark)",
    # "(untracked)", ...
    direction: Literal["ingress", "egress", "forward"]
    index: int  # index in the policy's ingress/egress list; -1 for synthetic rules
    action: str  # allow / deny / log / pass (synthetic: allow / deny)
    tier: Literal["untracked", "prednat", "normal", "failsafe", "default"]
    loc: Loc | None = None
    summary: str = ""  # one-line human description, e.g. "allow tcp from 10.0.0.0/8 to :6379"


@dataclass(frozen=True)
class Match:
    """Backend-neutral match, for one address family."""

    in_iface: str | None = None  # "eth0"; "!lo" means not lo
    out_iface: str | None = None
    protocol: str | None = None  # "tcp", "udp", "icmp", "icmpv6", "sctp", "udplite", "<num>"
    not_protocol: str | None = None
    src_net: str | None = None  # one CIDR
    not_src_net: str | None = None
    dst_net: str | None = None
    not_dst_net: str | None = None
    src_sets: tuple[str, ...] = ()  # ipset names; all must match (AND)
    not_src_sets: tuple[str, ...] = ()  # none may match
    dst_sets: tuple[str, ...] = ()
    not_dst_sets: tuple[str, ...] = ()
    src_ports: tuple[PortRange, ...] = ()  # at most 15 port slots (multiport limit)
    not_src_ports: tuple[PortRange, ...] = ()
    dst_ports: tuple[PortRange, ...] = ()
    not_dst_ports: tuple[PortRange, ...] = ()
    icmp_type: int | None = None  # with icmp_code; protocol must be icmp/icmpv6
    icmp_code: int | None = None
    not_icmp_type: int | None = None
    not_icmp_code: int | None = None
    ct_states: tuple[str, ...] = ()  # e.g. ("RELATED", "ESTABLISHED") or ("INVALID",)
    mark: tuple[int, int] | None = None  # (value, mask)


@dataclass(frozen=True)
class Target:
    kind: Literal["ACCEPT", "DROP", "RETURN", "JUMP", "GOTO", "LOG", "MARK", "NOTRACK"]
    chain: str | None = None  # JUMP / GOTO
    mark: tuple[int, int] | None = None  # MARK: (value, mask) for --set-xmark
    log_prefix: str | None = None  # LOG


@dataclass(frozen=True)
class ChainRule:
    rule_id: str
    match: Match
    target: Target


@dataclass(frozen=True)
class Chain:
    name: str  # always starts with "nw-"; at most 28 characters
    rules: tuple[ChainRule, ...]


@dataclass(frozen=True)
class Hook:
    """The single jump `-j <chain>` nodewall inserts at the top of a kernel chain."""

    kernel_chain: str  # PREROUTING, INPUT, OUTPUT, FORWARD
    chain: str  # nw- chain jumped to


@dataclass(frozen=True)
class TableState:
    family: Family
    table: TableName
    chains: tuple[Chain, ...]
    hooks: tuple[Hook, ...]


@dataclass(frozen=True)
class IpSetSpec:
    """One kernel ipset.  hash:net sets stream their members from `inline` and
    `files` (members of this family only); list:set sets hold other set names."""

    name: str  # "nw-..." at most 31 characters
    family: Family
    kind: Literal["hash:net", "list:set"]
    inline: tuple[str, ...] = ()  # CIDRs of this family
    files: tuple[Path, ...] = ()  # nets_files; lines of the other family are skipped
    members: tuple[str, ...] = ()  # list:set only: names of member sets
    expected_count: int = 0  # members of this family (sizes maxelem/hashsize)
    origin: str = ""  # network set name, or "rule <id> nets", for humans


@dataclass(frozen=True)
class XdpSetSource:
    """A source-address set for the XDP LPM tries; membership is one bit."""

    bit: int  # 0..63
    origin: str  # network set name or "rule <id> nets"
    inline: tuple[str, ...]  # CIDRs, both families
    files: tuple[Path, ...]
    count_v4: int
    count_v6: int


@dataclass(frozen=True)
class XdpRule:
    rule_id: str
    action: Literal["allow", "deny"]
    protocol: int | None  # IP protocol number (6, 17, 1, 58, ...) or None = any
    dst_ports: tuple[PortRange, ...]  # empty = any port
    src_bits: int  # the source must be in ANY of these sets (bitmask); 0 = any source
    family: Literal[0, 4, 6] = 0  # 0 = both


@dataclass(frozen=True)
class XdpInterface:
    iface: str
    rules: tuple[XdpRule, ...]  # in evaluation order; first match wins
    failsafe: tuple[Failsafe, ...]  # inbound failsafe, checked before the rules
    # Outbound failsafe entries whose RETURN traffic must pass before the rules, as the
    # raw chain accepts it first (match: protocol, SOURCE port == port, source in net).
    failsafe_return: tuple[Failsafe, ...] = ()


@dataclass(frozen=True)
class XdpState:
    mode: Literal["auto", "native", "generic"] = "auto"
    interfaces: tuple[XdpInterface, ...] = ()
    sets: tuple[XdpSetSource, ...] = ()
    # Untracked ingress rules that stay in raw only, with the reason (for diff/status).
    not_accelerated: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DesiredState:
    tables: tuple[TableState, ...]
    ipsets: tuple[IpSetSpec, ...]
    xdp: XdpState
    rules: Mapping[str, RuleMeta]  # rule_id -> meta, every id used above
    interfaces: tuple[str, ...] = ()  # named host-endpoint interfaces (may not exist yet)
    warnings: tuple[str, ...] = ()
    # Which packet filter holds tables and sets: "iptables" (legacy xtables + ipsets)
    # or "nftables" (one `table inet nodewall`); [settings] backend = "nftables".
    packet_filter: PacketFilter = "iptables"

    def table(self, family: Family, name: TableName) -> TableState | None:
        for t in self.tables:
            if t.family == family and t.table == name:
                return t
        return None
