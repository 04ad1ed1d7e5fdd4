"""Render a desired ChainRule for one address family: to an iptables-save-like text
line (pure; used by `nodewall diff`, the TUI and unit tests) and to a python-iptables
rule (used by engine.dataplane.iptables.apply).  Both come from one intermediate
RuleSpec, so what the operator reads is what the kernel gets.

Every rule carries `-m comment --comment nw:<rule_id>`; the hook jump nodewall puts
in a kernel chain carries `nw:hook`.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from nodewall.engine.plan.desired import (
    COMMENT_PREFIX,
    HOOK_RULE_ID,
    ChainRule,
    Family,
    Match,
    Target,
)
from nodewall.engine.profile.model import PortRange

# IP protocol numbers for the names a Match may carry (python-iptables knows only some).
PROTOCOLS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "ipv6-icmp": 58,
             "sctp": 132, "udplite": 136, "dccp": 33, "gre": 47, "esp": 50, "ah": 51}


@dataclass(frozen=True)
class Opt:
    """One option of a match or target module: `[!] --name value...`."""

    name: str  # without dashes, e.g. "dports", "match-set"
    values: tuple[str, ...] = ()
    negate: bool = False


@dataclass(frozen=True)
class ModuleSpec:
    name: str  # "multiport", "set", "CT", "LOG", ...
    opts: tuple[Opt, ...]


@dataclass(frozen=True)
class RuleSpec:
    """An iptables rule in the words of iptables-save, family-specific."""

    family: Family
    src: str | None = None  # "10.0.0.0/8" or "!10.0.0.0/8"
    dst: str | None = None
    in_iface: str | None = None  # "eth0" or "!lo"
    out_iface: str | None = None
    protocol: str | None = None  # "tcp" or "!tcp"
    matches: tuple[ModuleSpec, ...] = ()
    target: str = ""  # "ACCEPT", "nw-fi-eth0", "CT", "LOG", "MARK"
    target_opts: tuple[Opt, ...] = ()
    goto: bool = False


def comment_for(rule_id: str) -> str:
    return f"{COMMENT_PREFIX}{rule_id}"


def _ports(ports: Sequence[PortRange]) -> str:
    return ",".join(str(p) for p in ports)


def _hexmark(mark: tuple[int, int]) -> str:
    return f"{mark[0]:#x}/{mark[1]:#x}"


def _icmp(family: Family, icmp_type: int, code: int | None, negate: bool) -> ModuleSpec:
    value = str(icmp_type) if code is None else f"{icmp_type}/{code}"
    if family == 4:
        return ModuleSpec("icmp", (Opt("icmp-type", (value,), negate),))
    return ModuleSpec("icmp6", (Opt("icmpv6-type", (value,), negate),))


def _neg(value: str | None, negated: str | None) -> str | None:
    if value is not None:
        return value
    return None if negated is None else f"!{negated}"


def match_modules(m: Match, family: Family) -> list[ModuleSpec]:
    mods: list[ModuleSpec] = []
    # ports before sets: a rule's matches are ANDed in order, so a packet to another
    # port is turned away before the (dearer) set lookups
    for opt, ports, negate in (("sports", m.src_ports, False), ("dports", m.dst_ports, False),
                               ("sports", m.not_src_ports, True),
                               ("dports", m.not_dst_ports, True)):
        if ports:
            mods.append(ModuleSpec("multiport", (Opt(opt, (_ports(ports),), negate),)))
    for name in m.src_sets:
        mods.append(ModuleSpec("set", (Opt("match-set", (name, "src")),)))
    for name in m.not_src_sets:
        mods.append(ModuleSpec("set", (Opt("match-set", (name, "src"), True),)))
    for name in m.dst_sets:
        mods.append(ModuleSpec("set", (Opt("match-set", (name, "dst")),)))
    for name in m.not_dst_sets:
        mods.append(ModuleSpec("set", (Opt("match-set", (name, "dst"), True),)))
    if m.icmp_type is not None:
        mods.append(_icmp(family, m.icmp_type, m.icmp_code, False))
    if m.not_icmp_type is not None:
        mods.append(_icmp(family, m.not_icmp_type, m.not_icmp_code, True))
    if m.ct_states:
        mods.append(ModuleSpec("conntrack", (Opt("ctstate", (",".join(m.ct_states),)),)))
    if m.mark is not None:
        mods.append(ModuleSpec("mark", (Opt("mark", (_hexmark(m.mark),)),)))
    return mods


def target_parts(t: Target) -> tuple[str, tuple[Opt, ...], bool]:
    """(target name, options, goto)."""
    if t.kind in ("ACCEPT", "DROP", "RETURN"):
        return t.kind, (), False
    if t.kind in ("JUMP", "GOTO"):
        if not t.chain:
            raise ValueError(f"{t.kind} target without a chain")
        return t.chain, (), t.kind == "GOTO"
    if t.kind == "LOG":
        return "LOG", ((Opt("log-prefix", (t.log_prefix or "",)),) if t.log_prefix else ()), False
    if t.kind == "MARK":
        if t.mark is None:
            raise ValueError("MARK target without a mark")
        return "MARK", (Opt("set-xmark", (_hexmark(t.mark),)),), False
    if t.kind == "NOTRACK":
        return "CT", (Opt("notrack"),), False
    raise ValueError(f"unknown target kind {t.kind!r}")


def rule_spec(rule: ChainRule, family: Family) -> RuleSpec:
    m = rule.match
    target, topts, goto = target_parts(rule.target)
    comment = ModuleSpec("comment", (Opt("comment", (comment_for(rule.rule_id),)),))
    return RuleSpec(
        family=family,
        src=_neg(m.src_net, m.not_src_net),
        dst=_neg(m.dst_net, m.not_dst_net),
        in_iface=m.in_iface,
        out_iface=m.out_iface,
        protocol=_neg(m.protocol, m.not_protocol),
        matches=(*match_modules(m, family), comment),
        target=target, target_opts=topts, goto=goto)


def hook_spec(chain: str, family: Family) -> RuleSpec:
    """The one jump nodewall inserts at the top of a kernel chain."""
    comment = ModuleSpec("comment", (Opt("comment", (comment_for(HOOK_RULE_ID),)),))
    return RuleSpec(family=family, matches=(comment,), target=chain)


# ---------------------------------------------------------------- text


def _quote(value: str) -> str:
    if value and all(c.isalnum() or c in "-_.:/,!+=@" for c in value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _flag(flag: str, value: str | None) -> list[str]:
    if value is None:
        return []
    if value.startswith("!"):
        return ["!", flag, value[1:]]
    return [flag, value]


def _opts_text(opts: Sequence[Opt]) -> list[str]:
    out: list[str] = []
    for o in opts:
        if o.negate:
            out.append("!")
        out.append(f"--{o.name}")
        if o.name == "comment":  # iptables-save always quotes comments
            out.extend('"' + v + '"' for v in o.values)
        else:
            out.extend(_quote(v) for v in o.values)
    return out


def spec_words(spec: RuleSpec) -> list[str]:
    words = [*_flag("-s", spec.src), *_flag("-d", spec.dst), *_flag("-i", spec.in_iface),
             *_flag("-o", spec.out_iface), *_flag("-p", spec.protocol)]
    for mod in spec.matches:
        words += ["-m", mod.name, *_opts_text(mod.opts)]
    words += ["-g" if spec.goto else "-j", spec.target, *_opts_text(spec.target_opts)]
    return words


def spec_text(spec: RuleSpec) -> str:
    return " ".join(spec_words(spec))


def render_text(rule: ChainRule, family: Family, comment: bool = True) -> str:
    """`-i eth0 -p tcp -m multiport --dports 22 -m comment --comment "nw:abc" -j ACCEPT`
    (without the comment module when `comment` is false)."""
    spec = rule_spec(rule, family)
    if not comment:
        spec = replace(spec, matches=tuple(m for m in spec.matches if m.name != "comment"))
    return spec_text(spec)


def render_line(chain: str, rule: ChainRule, family: Family) -> str:
    """An iptables-save line: `-A <chain> ...`."""
    return f"-A {chain} {render_text(rule, family)}"


# ---------------------------------------------------------------- python-iptables


def _protocol_value(proto: str) -> str:
    negate = proto.startswith("!")
    name = proto[1:] if negate else proto
    num = name if name.isdigit() else str(PROTOCOLS.get(name.lower(), name))
    return ("!" if negate else "") + num


def _rule_classes() -> tuple[type, type]:
    """python-iptables rule classes that never look at the kernel's tables.

    iptc.Rule decides "is this target a chain?" by opening (and caching, with
    autocommit) every table of the current namespace, including nat and security.
    We know which targets are chains, so that lookup is switched off."""
    global _RULE_CLASSES
    if _RULE_CLASSES is None:
        import iptc

        class _Rule(iptc.Rule):
            tables = property(lambda self: [])

        class _Rule6(iptc.Rule6):
            tables = property(lambda self: [])

        _RULE_CLASSES = (_Rule, _Rule6)
    return _RULE_CLASSES


_RULE_CLASSES: tuple[type, type] | None = None


def to_iptc(spec: RuleSpec) -> Any:
    """Build an iptc.Rule / iptc.Rule6 (its entry buffer is `.rule`).  Parameters are
    parsed and checked by the xtables extensions themselves, so a bad value fails here,
    before anything is committed.  No kernel table is opened."""
    import iptc

    rule_v4, rule_v6 = _rule_classes()
    rule = rule_v4() if spec.family == 4 else rule_v6()
    if spec.src is not None:
        rule.src = spec.src
    if spec.dst is not None:
        rule.dst = spec.dst
    if spec.in_iface is not None:
        rule.in_interface = spec.in_iface
    if spec.out_iface is not None:
        rule.out_interface = spec.out_iface
    if spec.protocol is not None:
        rule.protocol = _protocol_value(spec.protocol)
    for mod in spec.matches:
        match = rule.create_match(mod.name)
        for o in mod.opts:
            _set_opt(match, o)
    if spec.target in _BUILTIN_VERDICTS or spec.target_opts or spec.target in _EXT_TARGETS:
        target = iptc.Target(rule, spec.target, goto=spec.goto)
        for o in spec.target_opts:
            _set_opt(target, o)
    else:  # a jump/goto to a chain: a standard target carrying the chain's name
        target = iptc.Target(rule, "ACCEPT", goto=spec.goto)
        target.standard_target = spec.target
    rule.target = target
    # Each extension's own final check (iptc's final_check() would also round-trip
    # every option through the C stdout of the whole process; not needed here).
    for match in rule.matches:
        match._final_check()
    target._final_check()
    return rule


_BUILTIN_VERDICTS = frozenset({"ACCEPT", "DROP", "RETURN"})
_EXT_TARGETS = frozenset({"CT", "LOG", "MARK"})


def _set_opt(module: Any, o: Opt) -> None:
    if len(o.values) > 1:
        value: Any = (["!"] if o.negate else []) + list(o.values)
    else:
        value = ("!" if o.negate else "") + (o.values[0] if o.values else "")
    module.set_parameter(o.name, value)
