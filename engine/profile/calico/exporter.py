"""A loaded Profile -> projectcalico.org/v3 YAML that calicoctl accepts:
HostEndpoint, GlobalNetworkSet (a nets_file's members written inline),
GlobalNetworkPolicy, and a per-node FelixConfiguration for [settings] that differ
from the defaults (failsafe ports as Felix's own fields, the rest as nodewall/*
annotations).  import_calico(export_calico(p)) yields the same profile data."""
from __future__ import annotations

import math
import re
from typing import Any

import yaml
from nodewall.engine.errors import InputError, InputErrors, Loc
from nodewall.engine.nets.scan import iter_members
from nodewall.engine.profile.calico import names as cn
from nodewall.engine.profile.model import (
    DEFAULT_FAILSAFE_INBOUND,
    DEFAULT_FAILSAFE_OUTBOUND,
    DEFAULT_MAX_SET_ENTRIES,
    EntityMatch,
    IcmpMatch,
    NetworkSet,
    Policy,
    PortRange,
    Profile,
    Rule,
    Settings,
)

_LABEL = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
NAME_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")  # Calico's resource names
POLICY_NAME_RE = re.compile(rf"(?:{_LABEL}\.)?{_LABEL}")  # a GlobalNetworkPolicy's
INTERFACE_RE = re.compile(r"[a-zA-Z0-9_.-]{1,15}|\*")
_PORT_PROTOCOLS = ("tcp", "udp", "sctp")  # Calico: ports only with these


class _Problems:
    def __init__(self) -> None:
        self.errors: list[InputError] = []

    def check(self, ok: bool, loc: Loc | None, message: str, hint: str | None = None) -> None:
        if not ok:
            self.errors.append(InputError(loc or Loc("<profile>"), message, hint))


def _meta(name: str, labels: Any = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if labels:
        meta["labels"] = dict(labels)
    return meta


def _resource(kind: str, meta: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": cn.API_VERSION, "kind": kind, "metadata": meta, "spec": spec}


def _failsafe_entries(entries: tuple) -> list[dict[str, Any]]:
    out = []
    for f in entries:
        item: dict[str, Any] = {"protocol": f.protocol.upper(), "port": f.port}
        if f.net:
            item["net"] = f.net
        out.append(item)
    return out


def _felix(settings: Settings, node: str) -> dict[str, Any] | None:
    annotations = {}
    for key, attr, default in (("nodewall/backend", "backend", "auto"),
                               ("nodewall/xdp-mode", "xdp_mode", "auto"),
                               ("nodewall/max-set-entries", "max_set_entries",
                                DEFAULT_MAX_SET_ENTRIES)):
        value = getattr(settings, attr)
        if value != default:
            annotations[key] = str(value)
    spec = {}
    for key, entries, default in (
            ("failsafeInboundHostPorts", settings.failsafe_inbound, DEFAULT_FAILSAFE_INBOUND),
            ("failsafeOutboundHostPorts", settings.failsafe_outbound,
             DEFAULT_FAILSAFE_OUTBOUND)):
        if tuple(str(f) for f in entries) != default:
            spec[key] = _failsafe_entries(entries)
    if not spec and not annotations:
        return None
    meta = _meta(f"node.{node}")
    if annotations:
        meta["annotations"] = annotations
    return _resource("FelixConfiguration", meta, spec)


def _network_set(ns: NetworkSet) -> dict[str, Any]:
    nets = list(ns.nets)
    if ns.nets_file is not None:
        for family in (4, 6):
            nets.extend(iter_members(ns.nets_file.path, family))
    return _resource("GlobalNetworkSet", _meta(ns.name, ns.labels), {"nets": nets})


def _ports(ports: tuple[PortRange, ...]) -> list[int | str]:
    return [p.first if p.first == p.last else f"{p.first}:{p.last}" for p in ports]


def _entity(match: EntityMatch) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in (("nets", list(match.nets)), ("notNets", list(match.not_nets)),
                       ("selector", match.selector), ("notSelector", match.not_selector),
                       ("ports", _ports(match.ports)), ("notPorts", _ports(match.not_ports))):
        if value:
            out[key] = value
    return out


def _protocol(name: str, loc: Loc | None, problems: _Problems) -> str | int:
    if name in cn.PROTOCOLS_BY_NODEWALL:
        return cn.PROTOCOLS_BY_NODEWALL[name]
    problems.check(name != "0", loc, "protocol 0 has no Calico form (Calico takes 1-255)")
    return int(name)


def _icmp(icmp: IcmpMatch, loc: Loc | None, problems: _Problems) -> dict[str, int]:
    problems.check(icmp.type != 255, loc, "ICMP type 255 has no Calico form (0-254)")
    return {k: v for k, v in (("type", icmp.type), ("code", icmp.code)) if v is not None}


def _rule(rule: Rule, problems: _Problems) -> dict[str, Any]:
    out: dict[str, Any] = {"action": cn.ACTIONS_BY_NODEWALL[rule.action]}
    if rule.protocol:
        out["protocol"] = _protocol(rule.protocol, rule.loc, problems)
    if rule.not_protocol:
        out["notProtocol"] = _protocol(rule.not_protocol, rule.loc, problems)
    if rule.icmp:
        out["icmp"] = _icmp(rule.icmp, rule.loc, problems)
    if rule.not_icmp:
        out["notICMP"] = _icmp(rule.not_icmp, rule.loc, problems)
    if rule.ip_version:
        out["ipVersion"] = rule.ip_version
    has_ports = any(m.ports or m.not_ports for m in (rule.source, rule.destination))
    problems.check(not has_ports or rule.protocol in _PORT_PROTOCOLS, rule.loc,
                   f"Calico matches ports only with TCP, UDP or SCTP, not {rule.protocol}")
    for side, match in (("source", rule.source), ("destination", rule.destination)):
        entity = _entity(match)
        if entity:
            out[side] = entity
    return out


def _policy(policy: Policy, problems: _Problems) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if math.isfinite(policy.order):
        spec["order"] = int(policy.order) if policy.order.is_integer() else policy.order
    spec["selector"] = policy.selector
    spec["types"] = [cn.TYPES_BY_NODEWALL[t] for t in policy.types]
    for key, on in (("doNotTrack", policy.do_not_track), ("preDNAT", policy.pre_dnat),
                    ("applyOnForward", policy.apply_on_forward)):
        if on:
            spec[key] = True
    for direction, rules in (("ingress", policy.ingress), ("egress", policy.egress)):
        if rules:
            spec[direction] = [_rule(r, problems) for r in rules]
    return _resource("GlobalNetworkPolicy", _meta(policy.name), spec)


def _check_names(profile: Profile, problems: _Problems) -> None:
    hint = "Calico names are lowercase letters, digits, '-' and '.'"
    for obj in (*profile.host_endpoints, *profile.network_sets):
        problems.check(len(obj.name) <= 253 and bool(NAME_RE.fullmatch(obj.name)), obj.loc,
                       f"'{obj.name}' is not a valid Calico resource name", hint)
    for hep in profile.host_endpoints:
        problems.check(bool(INTERFACE_RE.fullmatch(hep.interface)), hep.interface_loc
                       or hep.loc, f"interface '{hep.interface}' is not a valid Calico "
                       "interfaceName ([a-zA-Z0-9_.-], at most 15)")
    for policy in profile.policies:
        problems.check(bool(POLICY_NAME_RE.fullmatch(policy.name)), policy.loc,
                       f"'{policy.name}' is not a valid GlobalNetworkPolicy name",
                       hint + " (at most one '.')")


def export_calico(profile: Profile, node: str) -> str:
    """The profile as multi-document YAML; InputErrors for what Calico cannot hold."""
    problems = _Problems()
    _check_names(profile, problems)
    docs: list[dict[str, Any]] = []
    felix = _felix(profile.settings, node)
    if felix:
        docs.append(felix)
    for hep in profile.host_endpoints:
        spec: dict[str, Any] = {"node": node, "interfaceName": hep.interface}
        if hep.expected_ips:
            spec["expectedIPs"] = list(hep.expected_ips)
        docs.append(_resource("HostEndpoint", _meta(hep.name, hep.labels), spec))
    docs.extend(_network_set(ns) for ns in profile.network_sets)
    docs.extend(_policy(p, problems) for p in profile.policies)
    if problems.errors:
        raise InputErrors(problems.errors)
    return yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False,
                              explicit_start=True, width=100)
