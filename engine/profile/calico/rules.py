"""GlobalNetworkPolicy spec and its rules -> [[policies]] tables (plain dicts)."""
from __future__ import annotations

from typing import Any

from nodewall.engine.errors import Loc
from nodewall.engine.profile.calico import names as cn
from nodewall.engine.profile.calico.reader import Reader
from nodewall.engine.profile.calico.yaml_docs import Skip, YamlPath

POLICY_KEYS = ("tier", "order", "selector", "types", "ingress", "egress", "doNotTrack",
               "preDNAT", "applyOnForward", "performanceHints")
RULE_KEYS = ("action", "protocol", "notProtocol", "icmp", "notICMP", "ipVersion", "source",
             "destination", "metadata")
ENTITY_KEYS = ("nets", "notNets", "selector", "notSelector", "ports", "notPorts")
_ENTITY_FIELDS = (("nets", "nets"), ("notNets", "not_nets"), ("selector", "selector"),
                  ("notSelector", "not_selector"), ("ports", "ports"),
                  ("notPorts", "not_ports"))
_FLAGS = (("doNotTrack", "do_not_track"), ("preDNAT", "pre_dnat"),
          ("applyOnForward", "apply_on_forward"))


def read_policy(imp: Reader, spec: dict[str, Any], spath: YamlPath,
                name: str) -> tuple[dict[str, Any], list[Loc]]:
    """The [[policies]] table and the YAML location of each rule it keeps (ingress
    first, then egress: the order the TOML writer emits them)."""
    keys = imp.check_keys(spec, spath, POLICY_KEYS, cn.POLICY_UNSUPPORTED,
                          "a GlobalNetworkPolicy spec", f"GlobalNetworkPolicy {name}")
    if imp.dropped:
        raise Skip
    tier = spec.get("tier", "default")
    if tier != "default":
        imp.unsupported(spath + ("tier",), f"tier '{tier}'",
                        "(nodewall has one tier: the policies ordered by 'order')",
                        f"GlobalNetworkPolicy {name}")
        raise Skip
    if "performanceHints" in keys:
        imp.note(spath + ("performanceHints",), "performanceHints are not kept (a Calico "
                 "scheduling hint with no meaning for one node)")
    policy: dict[str, Any] = {"name": name}
    _order(imp, spec, spath, policy)
    if "selector" in keys:
        policy["selector"] = imp.selector(spec["selector"], spath + ("selector",))
    if "types" in keys:
        policy["types"] = _types(imp, spec["types"], spath + ("types",))
    for key, toml_key in _FLAGS:
        if key in keys and imp.flag(spec[key], spath + (key,), key):
            policy[toml_key] = True
    origins: list[Loc] = []
    for direction in ("ingress", "egress"):
        rules = []
        for i, raw in enumerate(imp.sequence(spec.get(direction), spath + (direction,),
                                             direction)):
            rule = _rule_or_skip(imp, raw, spath + (direction, i))
            if rule is not None:
                rules.append(rule)
                origins.append(imp.doc.loc(spath + (direction, i)))
        if rules:
            policy[direction] = rules
    return policy, origins


def _order(imp: Reader, spec: dict[str, Any], spath: YamlPath,
           policy: dict[str, Any]) -> None:
    if "order" not in spec or spec["order"] is None:
        return
    order = spec["order"]
    if isinstance(order, bool) or not isinstance(order, (int, float)):
        imp.error(spath + ("order",), f"order must be a number, not {order!r}")
        return
    policy["order"] = int(order) if float(order).is_integer() else float(order)


def _types(imp: Reader, value: Any, path: YamlPath) -> list[str]:
    out = []
    for i, item in enumerate(imp.sequence(value, path, "types")):
        if item not in cn.TYPES:
            imp.error(path + (i,), f"bad type {item!r}: must be Ingress or Egress")
        else:
            out.append(cn.TYPES[item])
    return out


def _rule_or_skip(imp: Reader, raw: Any, path: YamlPath) -> dict[str, Any] | None:
    try:
        return _rule(imp, imp.mapping(raw, path, "a rule"), path)
    except Skip:
        return None


def _rule(imp: Reader, raw: dict[str, Any], path: YamlPath) -> dict[str, Any]:
    keys = imp.check_keys(raw, path, RULE_KEYS, cn.RULE_UNSUPPORTED, "a rule", "rule")
    if imp.dropped:
        raise Skip
    rule: dict[str, Any] = {}
    action = raw.get("action")
    if action not in cn.ACTIONS:
        imp.error(path + ("action",) if "action" in raw else path,
                  f"bad action {action!r}: must be Allow, Deny, Log or Pass")
        raise Skip
    rule["action"] = cn.ACTIONS[action]
    for key, toml_key in (("protocol", "protocol"), ("notProtocol", "not_protocol")):
        if key in keys:
            rule[toml_key] = _protocol(imp, raw[key], path + (key,))
    for key, toml_key in (("icmp", "icmp"), ("notICMP", "not_icmp")):
        if key in keys:
            rule[toml_key] = _icmp(imp, raw[key], path + (key,))
    if "ipVersion" in keys:
        if raw["ipVersion"] not in (4, 6) or isinstance(raw["ipVersion"], bool):
            imp.error(path + ("ipVersion",), f"ipVersion must be 4 or 6, not "
                      f"{raw['ipVersion']!r}")
            raise Skip
        rule["ip_version"] = raw["ipVersion"]
    for side in ("source", "destination"):
        if side in keys:
            entity = _entity(imp, raw[side], path + (side,))
            if entity:
                rule[side] = entity
    if "metadata" in keys:
        imp.note(path + ("metadata",), "rule metadata (annotations) is not kept")
    return rule


def _protocol(imp: Reader, value: Any, path: YamlPath) -> str | int:
    if isinstance(value, int) and not isinstance(value, bool):
        if 1 <= value <= 255:
            return value
        imp.error(path, f"protocol number {value} out of range 1-255")
        raise Skip
    for calico, nodewall in cn.PROTOCOLS.items():
        if isinstance(value, str) and value.lower() == calico.lower():
            return nodewall
    imp.error(path, f"bad protocol {value!r}: must be one of {', '.join(cn.PROTOCOLS)} "
              "or a number 1-255")
    raise Skip


def _icmp(imp: Reader, value: Any, path: YamlPath) -> dict[str, int]:
    raw = imp.mapping(value, path, path[-1])
    out = {}
    for key, hi in (("type", 254), ("code", 255)):
        if key not in raw:
            continue
        item = raw[key]
        if isinstance(item, bool) or not isinstance(item, int) or not 0 <= item <= hi:
            imp.error(path + (key,), f"ICMP {key} must be a number 0-{hi}, not {item!r}")
            raise Skip
        out[key] = item
    for key in raw:
        if key not in ("type", "code"):
            imp.error(path + (key,), f"unknown field '{key}' in {path[-1]} (type, code)",
                      key=True)
    return out


def _entity(imp: Reader, value: Any, path: YamlPath) -> dict[str, Any]:
    raw = imp.mapping(value, path, path[-1])
    keys = imp.check_keys(raw, path, ENTITY_KEYS, cn.ENTITY_UNSUPPORTED,
                          f"a rule's {path[-1]}", "rule")
    if imp.dropped:
        raise Skip
    out: dict[str, Any] = {}
    for key, toml_key in _ENTITY_FIELDS:
        if key not in keys:
            continue
        if key in ("nets", "notNets"):
            out[toml_key] = imp.nets(raw[key], path + (key,))
        elif key in ("selector", "notSelector"):
            out[toml_key] = imp.selector(raw[key], path + (key,))
        else:
            out[toml_key] = imp.ports(raw[key], path + (key,))
    return out
