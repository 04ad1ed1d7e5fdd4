"""Render the DesiredState into nft syntax for nodewall's one table, `inet nodewall`.

Layout (both families in the one inet table):
  base chains, one per (table, kernel chain) a hook uses, named `<table>-<hook>`:
    raw-prerouting / raw-output        type filter hook … priority -300 (before conntrack)
    mangle-prerouting                  priority -150
    filter-input / -output / -forward  priority 0
  each holds one `meta nfproto ipv4|ipv6 jump <chain>` per family hooked there
  (comment "nw:hook"), mirroring the single jump the iptables backend inserts;
  regular chains, one per DesiredState (family, table, chain), named
    `<table><family>-<chain>`, e.g. `raw4-nw-PREROUTING`, `filter6-nw-fi-eth0`
  (the DesiredState reuses a chain name across tables and families, nft has one
  namespace per table).  A chain is only entered through its family's jump, so every
  rule in it is family-specific without repeating `meta nfproto`.
Every rule: matches, `counter`, statement, `comment "nw:<rule id>"`.
Sets: one named interval set per IpSetSpec, same name (`ip saddr @nw-n4-…`); a
list:set becomes ONE set holding the union of its members' ranges (nft has no set of
sets; one lookup, and no rule is duplicated), see engine.dataplane.nftables.sets.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from nodewall.engine.dataplane.shape import ChainKey
from nodewall.engine.plan.desired import (
    COMMENT_PREFIX,
    HOOK_RULE_ID,
    ChainRule,
    DesiredState,
    Family,
    IpSetSpec,
    Match,
    Target,
)
from nodewall.engine.profile.model import PortRange

TABLE = "nodewall"
FAMILY = "inet"
PRIORITY = {"raw": -300, "mangle": -150, "filter": 0}
HOOKS = {"PREROUTING": "prerouting", "INPUT": "input", "OUTPUT": "output",
         "FORWARD": "forward", "POSTROUTING": "postrouting"}
NFPROTO = {4: "ipv4", 6: "ipv6"}
ADDR = {4: "ip", 6: "ip6"}
PORT_PROTOCOLS = ("tcp", "udp", "sctp", "dccp", "udplite")
# Observed counters carried into a re-rendered rule: {(chain, rule id): [(pkts, bytes)]}
Carry = Mapping[tuple[str, str], Sequence[tuple[int, int]]]


def chain_name(family: int, table: str, chain: str) -> str:
    return f"{table}{family}-{chain}"


def chain_key(nft_chain: str) -> ChainKey | None:
    """The DesiredState chain a regular nft chain stands for (None: not one)."""
    head, sep, chain = nft_chain.partition("-")
    if not sep or len(head) < 2 or head[-1] not in "46" or head[:-1] not in PRIORITY:
        return None
    return ChainKey(int(head[-1]), head[:-1], chain)


def base_chain(table: str, kernel_chain: str) -> str:
    return f"{table}-{HOOKS[kernel_chain]}"


def base_chain_decl(table: str, kernel_chain: str) -> str:
    return (f"{{ type filter hook {HOOKS[kernel_chain]} priority {PRIORITY[table]}; "
            "policy accept; }")


def quote(text: str) -> str:
    return json.dumps(text)  # nft strings: double quotes, backslash escapes


def _ports(ports: Sequence[PortRange]) -> str:
    items = [str(p.first) if p.first == p.last else f"{p.first}-{p.last}" for p in ports]
    return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"


def _iface(key: str, value: str | None) -> list[str]:
    if value is None:
        return []
    neg = value.startswith("!")
    name = value[1:] if neg else value
    if name.endswith("+"):
        name = name[:-1] + "*"
    return [key, "!=", quote(name)] if neg else [key, quote(name)]


def _l4(m: Match) -> str:
    proto = m.protocol or ""
    return proto if proto in PORT_PROTOCOLS else "th"


def _icmp(family: Family, icmp_type: int, code: int | None, neg: bool) -> list[str]:
    kw = "icmp" if family == 4 else "icmpv6"
    op = ["!="] if neg else []
    if code is None:
        return [kw, "type", *op, str(icmp_type)]
    if not neg:
        return [kw, "type", str(icmp_type), kw, "code", str(code)]
    return [kw, "type", ".", kw, "code", "!=", "{", f"{icmp_type} . {code}", "}"]


def match_words(m: Match, family: Family) -> list[str]:
    w: list[str] = []
    w += _iface("iifname", m.in_iface) + _iface("oifname", m.out_iface)
    if m.protocol:
        w += ["meta", "l4proto", _proto(m.protocol)]
    if m.not_protocol:
        w += ["meta", "l4proto", "!=", _proto(m.not_protocol)]
    a = ADDR[family]
    for key, net, neg in (("saddr", m.src_net, False), ("saddr", m.not_src_net, True),
                          ("daddr", m.dst_net, False), ("daddr", m.not_dst_net, True)):
        if net:
            w += [a, key, *(["!="] if neg else []), net]
    # ports before sets: the cheap compare turns other ports away before a set lookup
    for key, ports, neg in (("sport", m.src_ports, False), ("dport", m.dst_ports, False),
                            ("sport", m.not_src_ports, True), ("dport", m.not_dst_ports, True)):
        if ports:
            w += [_l4(m), key, *(["!="] if neg else []), _ports(ports)]
    for key, names, neg in (("saddr", m.src_sets, False), ("saddr", m.not_src_sets, True),
                            ("daddr", m.dst_sets, False), ("daddr", m.not_dst_sets, True)):
        for name in names:
            w += [a, key, *(["!="] if neg else []), f"@{name}"]
    if m.icmp_type is not None:
        w += _icmp(family, m.icmp_type, m.icmp_code, False)
    if m.not_icmp_type is not None:
        w += _icmp(family, m.not_icmp_type, m.not_icmp_code, True)
    if m.ct_states:
        states = [s.lower() for s in m.ct_states]
        w += ["ct", "state", states[0] if len(states) == 1 else "{ " + ", ".join(states) + " }"]
    if m.mark is not None:
        w += ["meta", "mark", "and", f"{m.mark[1]:#x}", "==", f"{m.mark[0]:#x}"]
    return w


def _proto(name: str) -> str:
    return "ipv6-icmp" if name == "icmpv6" else name


def target_words(t: Target, family: Family) -> list[str]:
    if t.kind in ("ACCEPT", "DROP", "RETURN"):
        return [t.kind.lower()]
    if t.kind in ("JUMP", "GOTO"):
        if not t.chain:
            raise ValueError(f"{t.kind} target without a chain")
        return ["jump" if t.kind == "JUMP" else "goto", t.chain]
    if t.kind == "LOG":
        return ["log", "prefix", quote(t.log_prefix)] if t.log_prefix else ["log"]
    if t.kind == "MARK":
        if t.mark is None:
            raise ValueError("MARK target without a mark")
        value, mask = t.mark
        keep = ~mask & 0xFFFFFFFF
        return ["meta", "mark", "set", "meta", "mark", "and", f"{keep:#x}", "xor", f"{value:#x}"]
    if t.kind == "NOTRACK":
        return ["notrack"]
    raise ValueError(f"unknown target kind {t.kind!r}")


def _counter(carry: tuple[int, int] | None) -> list[str]:
    return ["counter"] if not carry else ["counter", "packets", str(carry[0]),
                                          "bytes", str(carry[1])]


def rule_text(rule: ChainRule, family: Family, table: str,
              carry: tuple[int, int] | None = None, comment: bool = True) -> str:
    """`iifname "eth0" meta l4proto tcp th dport 22 counter accept comment "nw:…"`;
    JUMP/GOTO targets are mapped to the family's nft chain."""
    t = rule.target
    if t.kind in ("JUMP", "GOTO") and t.chain:
        t = Target(t.kind, chain=chain_name(family, table, t.chain))
    words = [*match_words(rule.match, family), *_counter(carry), *target_words(t, family)]
    if comment:
        words += ["comment", quote(COMMENT_PREFIX + rule.rule_id)]
    return " ".join(w for w in words if w)


def hook_text(family: Family, table: str, chain: str,
              carry: tuple[int, int] | None = None) -> str:
    return (f"meta nfproto {NFPROTO[family]} {' '.join(_counter(carry))} jump "
            f"{chain_name(family, table, chain)} comment {quote(COMMENT_PREFIX + HOOK_RULE_ID)}")


def set_decl(spec: IpSetSpec) -> str:
    kind = "ipv4_addr" if spec.family == 4 else "ipv6_addr"
    return f"{{ type {kind}; flags interval; }}"


def _carried(carry: Carry, chain: str, rule_id: str, index: int) -> tuple[int, int] | None:
    seen = carry.get((chain, rule_id), ())
    return seen[index] if index < len(seen) else None


def ruleset_commands(desired: DesiredState, have_chains: Sequence[str],
                     have_sets: Sequence[str], carry: Carry | None = None) -> list[str]:
    """The one batch that makes the table's chains and rules `desired` (sets are
    declared and filled before, by engine.dataplane.nftables.sets; stale ones go here,
    after every rule that used them is flushed)."""
    carry = carry or {}
    t = f"{FAMILY} {TABLE}"
    cmds = [f"add table {t}"]
    cmds += [f"flush chain {t} {c}" for c in have_chains]
    wanted: dict[str, str] = {}  # nft chain -> declaration ("" = regular)
    hooks: dict[str, list[str]] = {}
    for ts in desired.tables:
        for c in ts.chains:
            wanted[chain_name(ts.family, ts.table, c.name)] = ""
        for h in ts.hooks:
            base = base_chain(ts.table, h.kernel_chain)
            wanted[base] = base_chain_decl(ts.table, h.kernel_chain)
            hooks.setdefault(base, []).append(hook_text(
                ts.family, ts.table, h.chain, _carried(carry, base, f"hook{ts.family}", 0)))
    cmds += [f"delete chain {t} {c}" for c in have_chains if c not in wanted]
    keep_sets = {s.name for s in desired.ipsets}
    cmds += [f"delete set {t} {s}" for s in have_sets if s not in keep_sets]
    cmds += [f"add chain {t} {c} {decl}".rstrip() for c, decl in wanted.items()]
    for base, texts in hooks.items():
        cmds += [f"add rule {t} {base} {x}" for x in texts]
    for ts in desired.tables:
        for c in ts.chains:
            name = chain_name(ts.family, ts.table, c.name)
            seen: dict[str, int] = {}
            for r in c.rules:
                i = seen.get(r.rule_id, 0)
                seen[r.rule_id] = i + 1
                cmds.append(f"add rule {t} {name} "
                            f"{rule_text(r, ts.family, ts.table, _carried(carry, name, r.rule_id, i))}")
    return cmds
