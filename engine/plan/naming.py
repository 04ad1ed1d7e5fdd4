"""Names of the chains and ipsets nodewall owns.

Every name starts with "nw-" (engine.plan.desired.PREFIX).  Limits: iptables chain names
at most 28 characters, ipset names at most 31.  Set names stay at most 27 characters
so that a backend may derive temporary names (for create + swap) with a short suffix.

Chains
    nw-PREROUTING, nw-INPUT, nw-OUTPUT, nw-FORWARD    the one jump from each kernel chain
    nw-<kind>-<ifname>     per host endpoint: kind rfi/rto (raw in/out), mfi (mangle in),
                           fi/fo (filter in/out), ffi/ffo (filter forward in/out)
    nw-<kind>-:all         the same for the interface = "*" endpoint.  Linux interface
                           names cannot contain ':' (nor '/' or whitespace), so this can
                           never collide with the chain of a real interface.
    nw-untracked-allow, nw-prednat-allow              mark + (notrack +) accept

Sets (always with a short hash, so that sanitising or truncating never makes two
different inputs share a name)
    nw-n<fam>-<netset name, sanitised, <=14>-<6 hex>   a network set (stable per name)
    nw-l<fam>-<12 hex>      list:set of a selector's matches (hash of its members)
    nw-h<fam>-<12 hex>      hash:net of host endpoints' expected_ips (hash of the IPs)
    nw-<role><fam>-<rule id>   several CIDRs written inline in one rule; role is
                           sn / sx / dn / dx (source nets / source not_nets / dest ...)
    nw-t-<12 hex>          a temporary set of a load (create + swap)

Ownership: the prefix alone claims nothing.  A chain or set is nodewall's only when its
whole name is one this module makes (owned_chain_name / owned_set_name: the exact
grammar above, set names ending in their hash); the iptables dataplane also wants an
`nw:<id>` comment in a non-empty chain.  Anything else called `nw-…` is foreign and
left alone.
"""
from __future__ import annotations

import hashlib
import re
from typing import Literal

from nodewall.engine.plan.desired import PREFIX

MAX_CHAIN = 28
ALL_IFACES = "*"
XDP_CHAIN_PREFIX = "xdp:"
ALL_SUFFIX = ":all"

ChainKind = Literal["rfi", "rto", "mfi", "fi", "fo", "ffi", "ffo"]
NetsRole = Literal["sn", "sx", "dn", "dx"]

UNTRACKED_ALLOW = "nw-untracked-allow"
PREDNAT_ALLOW = "nw-prednat-allow"

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")

_OWNED_CHAIN = re.compile(
    r"nw-(?:PREROUTING|INPUT|OUTPUT|FORWARD|untracked-allow|prednat-allow|panic-in|panic-out"
    r"|(?:rfi|rto|mfi|fi|fo|ffi|ffo)-(?::all|[^\s/:]{1,15}|[^\s/:]{1,21}-[0-9a-f]{6}))")
_OWNED_SET = re.compile(
    r"nw-(?:n[46]-[A-Za-z0-9_.-]{1,14}-[0-9a-f]{6}|[lh][46]-[0-9a-f]{12}"
    r"|(?:sn|sx|dn|dx)[46]-[A-Za-z0-9_-]{16}|t-[0-9a-f]{12})")


def _hex(*parts: str, n: int) -> str:
    h = hashlib.sha256("\x00".join(parts).encode()).hexdigest()
    return h[:n]


def top_chain(kernel_chain: str) -> str:
    """nw-INPUT for INPUT, etc."""
    return f"{PREFIX}{kernel_chain}"


def endpoint_chain(kind: ChainKind, iface: str) -> str:
    """The per host endpoint chain of `kind` for `iface` (a name or "*")."""
    suffix = ALL_SUFFIX if iface == ALL_IFACES else iface
    name = f"{PREFIX}{kind}-{suffix}"
    if len(name) <= MAX_CHAIN:
        return name
    # Only reachable with an invalid (over-long) interface name; keep it unique anyway.
    keep = MAX_CHAIN - 7
    return f"{name[:keep]}-{_hex(iface, n=6)}"


def netset_set(netset_name: str, family: int) -> str:
    """The hash:net ipset holding network set `netset_name`'s members of `family`."""
    readable = _SAFE.sub("_", netset_name)[:14]
    return f"{PREFIX}n{family}-{readable}-{_hex('netset', netset_name, n=6)}"


def list_set(members: tuple[str, ...], family: int) -> str:
    """A list:set over `members` (order-insensitive)."""
    return f"{PREFIX}l{family}-{_hex('list', str(family), *sorted(members), n=12)}"


def hosts_set(cidrs: tuple[str, ...], family: int) -> str:
    """A hash:net of host endpoint addresses (order-insensitive)."""
    return f"{PREFIX}h{family}-{_hex('hosts', str(family), *sorted(cidrs), n=12)}"


def rule_nets_set(rule_id: str, role: NetsRole, family: int) -> str:
    """The hash:net of several CIDRs written inline in one rule."""
    return f"{PREFIX}{role}{family}-{rule_id}"


_ENDPOINT_CHAIN = re.compile(r"nw-(?:rfi|rto|mfi|fi|fo|ffi|ffo)-(?P<iface>.+)")


def xdp_chain(iface: str) -> str:
    """What the counters of the XDP program on `iface` are filed under where the
    packet filters name a chain ("xdp:eth0"; no kernel chain has a ':' after xdp)."""
    return f"{XDP_CHAIN_PREFIX}{iface}"


def chain_interface(chain: str) -> str:
    """The interface of a per host endpoint chain ("*" for nw-<kind>-:all; a name cut
    to fit keeps its hash) or of an XDP program (xdp_chain), "" for any other chain."""
    if chain.startswith(XDP_CHAIN_PREFIX):
        return chain[len(XDP_CHAIN_PREFIX):]
    m = _ENDPOINT_CHAIN.fullmatch(chain)
    if m is None:
        return ""
    return ALL_IFACES if m["iface"] == ALL_SUFFIX else m["iface"]


def owned_chain_name(name: str) -> bool:
    """Whether `name` is a chain name nodewall makes (not merely one starting nw-)."""
    return len(name) <= MAX_CHAIN and _OWNED_CHAIN.fullmatch(name) is not None


def owned_set_name(name: str) -> bool:
    """Whether `name` is an ipset name nodewall makes (its hash suffix included)."""
    return _OWNED_SET.fullmatch(name) is not None
