"""[[policies]] and their rules: TOML tables -> model.Policy / model.Rule."""
from __future__ import annotations

import math
from typing import Any

from nodewall.engine.profile.fields import Ctx, type_name
from nodewall.engine.profile.model import Direction, EntityMatch, IcmpMatch, Policy, Rule
from nodewall.engine.profile.toml_locations import Path

ACTIONS = ("allow", "deny", "log", "pass")
PROTOCOLS = ("tcp", "udp", "icmp", "icmpv6", "sctp", "udplite")
PORT_PROTOCOLS = ("tcp", "udp", "sctp", "udplite")
_PROTO_NUMBERS = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6", 132: "sctp", 136: "udplite"}

POLICY_KEYS = ("name", "order", "selector", "types", "do_not_track", "pre_dnat",
               "apply_on_forward", "ingress", "egress")
RULE_KEYS = ("action", "protocol", "not_protocol", "icmp", "not_icmp", "ip_version",
             "source", "destination")
ENTITY_KEYS = ("nets", "not_nets", "selector", "not_selector", "ports", "not_ports")
ICMP_KEYS = ("type", "code")


def _protocol(ctx: Ctx, t: dict[str, Any], path: Path, key: str, what: str) -> str | None:
    if key not in t:
        return None
    value = t[key]
    loc = ctx.value_loc(path + (key,))
    if isinstance(value, str):
        name = value.lower()
        if name in PROTOCOLS:
            return name
        ctx.error(loc, f"bad {key} '{value}': must be one of {', '.join(PROTOCOLS)} "
                  "or a number 0-255")
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value <= 255:
            return _PROTO_NUMBERS.get(value, str(value))
        ctx.error(loc, f"{key} {value} out of range 0-255")
        return None
    ctx.error(loc, f"'{key}' in {what} must be a string or an integer, not {type_name(value)}")
    return None


def _icmp(ctx: Ctx, t: dict[str, Any], path: Path, key: str, protocol: str | None,
          what: str) -> IcmpMatch | None:
    raw = ctx.table(t, path, key, what)
    if raw is None:
        return None
    ipath = path + (key,)
    ctx.check_keys(raw, ipath, ICMP_KEYS, f"{what}.{key}")
    itype = ctx.int_in(raw, ipath, "type", 0, 255, f"{what}.{key}")
    code = ctx.int_in(raw, ipath, "code", 0, 255, f"{what}.{key}")
    if "code" in raw and "type" not in raw:
        ctx.error(ctx.value_loc(ipath + ("code",)), f"{key} 'code' needs a 'type'",
                  f"e.g. {key} = {{ type = 3, code = 4 }}")
    if protocol not in ("icmp", "icmpv6"):
        ctx.error(ctx.value_loc(ipath), f"'{key}' needs protocol = \"icmp\" or \"icmpv6\"",
                  "add protocol = \"icmp\" (IPv4) or \"icmpv6\" (IPv6) to the rule")
    return IcmpMatch(itype, code)


def _entity(ctx: Ctx, t: dict[str, Any], path: Path, key: str, protocol: str | None,
            what: str) -> tuple[EntityMatch, list[tuple[Path, str]]]:
    """The match and [(path of a net element, normalized net)] for family checks."""
    raw = ctx.table(t, path, key, what)
    if raw is None:
        return EntityMatch(), []
    epath = path + (key,)
    ewhat = f"{what}.{key}"
    ctx.check_keys(raw, epath, ENTITY_KEYS, ewhat)
    nets = ctx.cidrs(raw, epath, "nets", ewhat)
    not_nets = ctx.cidrs(raw, epath, "not_nets", ewhat)
    ports = ctx.ports(raw, epath, "ports", ewhat)
    not_ports = ctx.ports(raw, epath, "not_ports", ewhat)
    for pkey in ("ports", "not_ports"):
        if pkey in raw and protocol not in PORT_PROTOCOLS:
            ctx.error(ctx.value_loc(epath + (pkey,)),
                      f"{pkey} need protocol tcp, udp, sctp or udplite"
                      + (f" (the rule has protocol {protocol})" if protocol else ""),
                      "add e.g. protocol = \"tcp\" to the rule (a Calico rule)")
    match = EntityMatch(
        nets=tuple(n for _, n in nets), not_nets=tuple(n for _, n in not_nets),
        selector=ctx.selector(raw, epath, "selector", ewhat),
        not_selector=ctx.selector(raw, epath, "not_selector", ewhat),
        ports=ports, not_ports=not_ports, loc=ctx.table_loc(epath))
    located = [(epath + ("nets", i), n) for i, n in nets]
    located += [(epath + ("not_nets", i), n) for i, n in not_nets]
    return match, located


def _check_families(ctx: Ctx, t: dict[str, Any], path: Path, protocol: str | None,
                    ip_version: int | None, nets: dict[str, list[tuple[Path, str]]]) -> None:
    proto_family = {"icmp": 4, "icmpv6": 6}.get(protocol or "")
    if ip_version and proto_family and ip_version != proto_family:
        ctx.error(ctx.value_loc(path + ("ip_version",)),
                  f"v4/v6 mix-up: protocol {protocol} is IPv{proto_family}-only but "
                  f"ip_version = {ip_version}")
        return
    family = ip_version or proto_family
    if family:
        why = f"ip_version = {ip_version}" if ip_version else f"protocol = \"{protocol}\""
        for side in nets.values():
            for npath, net in side:
                if (":" in net) != (family == 6):
                    ctx.error(ctx.value_loc(npath),
                              f"v4/v6 mix-up: '{net}' is IPv{10 - family} but the rule is "
                              f"IPv{family}-only ({why})",
                              "split the rule per family" if ip_version else
                              "use protocol \"icmpv6\" for IPv6 (\"icmp\" for IPv4)")
        return
    fams = {side: {6 if ":" in n else 4 for _, n in located} for side, located in nets.items()
            if located}
    src, dst = fams.get("source"), fams.get("destination")
    if src and dst and len(src) == 1 and len(dst) == 1 and src != dst:
        ctx.error(ctx.value_loc(nets["destination"][0][0]),
                  f"v4/v6 mix-up: source nets are IPv{src.pop()}-only and destination nets "
                  f"IPv{dst.pop()}-only, the rule can never match")


def parse_rule(ctx: Ctx, t: dict[str, Any], path: Path, direction: Direction) -> Rule | None:
    what = f"[[policies.{direction}]]"
    mark = ctx.mark()
    ctx.check_keys(t, path, RULE_KEYS, what)
    action = None
    if ctx.require(t, path, "action", what):
        action = ctx.enum(t, path, "action", ACTIONS, what)
    protocol = _protocol(ctx, t, path, "protocol", what)
    not_protocol = _protocol(ctx, t, path, "not_protocol", what)
    ip_version = ctx.typed(t, path, "ip_version", (int,), "4 or 6", what)
    if ip_version is not None and ip_version not in (4, 6):
        ctx.error(ctx.value_loc(path + ("ip_version",)), f"ip_version must be 4 or 6, "
                  f"not {ip_version}")
        ip_version = None
    icmp = _icmp(ctx, t, path, "icmp", protocol, what)
    not_icmp = _icmp(ctx, t, path, "not_icmp", protocol, what)
    source, src_nets = _entity(ctx, t, path, "source", protocol, what)
    destination, dst_nets = _entity(ctx, t, path, "destination", protocol, what)
    _check_families(ctx, t, path, protocol, ip_version,
                    {"source": src_nets, "destination": dst_nets})
    if not ctx.clean_since(mark) or action is None:
        return None
    return Rule(action=action, protocol=protocol, not_protocol=not_protocol, icmp=icmp,
                not_icmp=not_icmp, ip_version=ip_version, source=source,
                destination=destination, loc=ctx.table_loc(path))


def _rules(ctx: Ctx, t: dict[str, Any], path: Path, direction: Direction) -> list[Rule]:
    items = ctx.array(t, path, direction, "[[policies]]")
    rules = []
    for j, item in enumerate(items or ()):
        rpath = path + (direction, j)
        if not isinstance(item, dict):
            ctx.error(ctx.value_loc(rpath), f"each {direction} rule must be a table "
                      f"([[policies.{direction}]]), not {type_name(item)}")
            continue
        rule = parse_rule(ctx, item, rpath, direction)
        if rule is not None:
            rules.append(rule)
    return rules


def _types(ctx: Ctx, t: dict[str, Any], path: Path) -> tuple[Direction, ...] | None:
    got = ctx.string_array(t, path, "types", "[[policies]]")
    if "types" not in t:
        return None
    seen: list[str] = []
    for i, text in got:
        if text not in ("ingress", "egress"):
            ctx.error(ctx.value_loc(path + ("types", i)),
                      f"bad type '{text}': must be \"ingress\" or \"egress\"")
        elif text in seen:
            ctx.error(ctx.value_loc(path + ("types", i)), f"type '{text}' given twice")
        else:
            seen.append(text)
    if isinstance(t["types"], list) and not t["types"]:
        ctx.error(ctx.value_loc(path + ("types",)), "types is empty",
                  "omit types to infer it from the rules, or list \"ingress\"/\"egress\"")
    return tuple(d for d in ("ingress", "egress") if d in seen)  # type: ignore[misc]


def parse_policy(ctx: Ctx, t: dict[str, Any], path: Path) -> Policy | None:
    what = "[[policies]]"
    mark = ctx.mark()
    ctx.check_keys(t, path, POLICY_KEYS, what)
    name = ctx.name(t, path, what)
    order = ctx.number(t, path, "order", what)
    selector = ctx.selector(t, path, "selector", what) if "selector" in t else "all()"
    types = _types(ctx, t, path)
    dnt = ctx.boolean(t, path, "do_not_track", what)
    pre_dnat = ctx.boolean(t, path, "pre_dnat", what)
    forward = ctx.boolean(t, path, "apply_on_forward", what)
    ingress = _rules(ctx, t, path, "ingress")
    egress = _rules(ctx, t, path, "egress")
    has_ingress, has_egress = bool(t.get("ingress")), bool(t.get("egress"))
    if types is None:  # Calico's inference
        types = tuple(d for d, on in (("ingress", has_ingress or not has_egress),
                                      ("egress", has_egress)) if on)  # type: ignore[misc]
    else:
        for d, present in (("ingress", has_ingress), ("egress", has_egress)):
            if present and d not in types and ctx.clean_since(mark):
                ctx.error(ctx.value_loc(path + ("types",)),
                          f"policy has {d} rules but types does not include \"{d}\"",
                          f"add \"{d}\" to types or remove the {d} rules")
    if dnt and pre_dnat:
        ctx.error(ctx.value_loc(path + ("pre_dnat",)),
                  "do_not_track and pre_dnat are exclusive (untracked policy cannot be pre-DNAT)")
    for flag, on in (("do_not_track", dnt), ("pre_dnat", pre_dnat)):
        if on and not forward:
            ctx.error(ctx.value_loc(path + (flag,)),
                      f"{flag} policy needs apply_on_forward = true (a Calico rule)",
                      "add apply_on_forward = true to the policy")
    if pre_dnat:
        if has_egress:
            ctx.error(ctx.table_loc(path + ("egress", 0)),
                      "pre_dnat policy cannot have egress rules (pre-DNAT is ingress only)")
        elif types and "egress" in types:
            ctx.error(ctx.value_loc(path + ("types",)),
                      "pre_dnat policy cannot have type \"egress\" (pre-DNAT is ingress only)")
    if not ctx.clean_since(mark) or name is None:
        return None
    return Policy(name=name, order=math.inf if order is None else order, selector=selector
                  or "all()", types=types, do_not_track=dnt, pre_dnat=pre_dnat,
                  apply_on_forward=forward, ingress=tuple(ingress), egress=tuple(egress),
                  profile=ctx.file, loc=ctx.table_loc(path))
