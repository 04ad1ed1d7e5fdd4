"""projectcalico.org/v3 YAML -> a nodewall TOML profile.

HostEndpoint -> [[host_endpoints]], GlobalNetworkSet -> [[network_sets]],
GlobalNetworkPolicy -> [[policies]], FelixConfiguration's failsafe ports ->
[settings].  What a host firewall of one node cannot express is an error at its
file:line:col, or, with `skip_unsupported`, a warning naming what was skipped.
The generated TOML is loaded by the profile loader before it is returned; a
problem it finds is reported at the YAML document it came from.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

from nodewall.engine.errors import InputError, InputErrors, Loc
from nodewall.engine.profile.calico import names as cn
from nodewall.engine.profile.calico.rules import read_policy
from nodewall.engine.profile.calico.settings import read_felix
from nodewall.engine.profile.calico.toml_out import Origin, render_profile
from nodewall.engine.profile.calico.yaml_docs import Skip, YamlDoc, YamlPath, load_yaml_documents
from nodewall.engine.profile.fields import LABEL_KEY_RE, LABEL_VALUE_RE, parse_cidr, parse_port
from nodewall.engine.profile.loader import load_profiles
from nodewall.engine.profile.selector import parse_selector


@dataclass
class ImportResult:
    toml: str
    warnings: list[str]  # "file:line:col: warning: ..."


@dataclass
class _Out:
    """What the documents produce, in file order, with where each object came from."""

    settings: dict[str, Any] = field(default_factory=dict)
    host_endpoints: list[tuple[dict[str, Any], Origin]] = field(default_factory=list)
    network_sets: list[tuple[dict[str, Any], Origin]] = field(default_factory=list)
    policies: list[tuple[dict[str, Any], Origin]] = field(default_factory=list)
    settings_origin: Loc | None = None


def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    return {int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "a mapping"}.get(type(value), type(value).__name__)


class Importer:
    def __init__(self, skip_unsupported: bool):
        self.skip = skip_unsupported
        self.errors: list[InputError] = []
        self.warnings: list[str] = []
        self.out = _Out()
        self.doc: YamlDoc = YamlDoc("<none>", None)
        self.dropped = 0  # unsupported keys met by the last check_keys

    # ------------------------------------------------------------ reporting
    def error(self, path: YamlPath, message: str, hint: str | None = None, *,
              key: bool = False) -> None:
        loc = self.doc.key_loc(path) if key else self.doc.loc(path)
        self.errors.append(InputError(loc, message, hint))

    def unsupported(self, path: YamlPath, what: str, why: str, skipped: str) -> None:
        """`what` at `path` has no nodewall form: an error, or with --skip-unsupported
        a warning, and `skipped` (the object, rule or field) is left out."""
        loc = self.doc.key_loc(path)
        if self.skip:
            self.warnings.append(f"{loc}: warning: skipped {skipped}: {what} {why}")
            return
        self.errors.append(InputError(loc, f"unsupported: {what} {why}",
                                      "remove it, or import with --skip-unsupported to "
                                      f"leave out the {skipped.split(' ')[0]}"))

    def note(self, path: YamlPath, message: str) -> None:
        self.warnings.append(f"{self.doc.key_loc(path)}: warning: {message}")

    # ------------------------------------------------------------ typed access
    def mapping(self, value: Any, path: YamlPath, what: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(path, f"{what} must be a mapping, not {_type_name(value)}")
            raise Skip
        return value

    def sequence(self, value: Any, path: YamlPath, what: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(path, f"{what} must be a list, not {_type_name(value)}")
            raise Skip
        return value

    def text(self, value: Any, path: YamlPath, what: str) -> str:
        if not isinstance(value, str):
            self.error(path, f"{what} must be a string, not {_type_name(value)}")
            raise Skip
        return value

    def flag(self, value: Any, path: YamlPath, what: str) -> bool:
        if not isinstance(value, bool):
            self.error(path, f"{what} must be true or false, not {_type_name(value)}")
            raise Skip
        return value

    def check_keys(self, table: dict[str, Any], path: YamlPath, known: Sequence[str],
                   unsupported: dict[str, str], what: str, skipped: str) -> list[str]:
        """Keys of `table` to read; unsupported ones are reported (`self.dropped` counts
        them), unknown ones are errors (Calico rejects them too)."""
        keep = []
        self.dropped = 0
        for key in table:
            if key in known:
                keep.append(key)
            elif key in unsupported:
                self.dropped += 1
                self.unsupported(path + (key,), f"'{key}' in {what}", unsupported[key],
                                 skipped)
            else:
                self.error(path + (key,), f"unknown field '{key}' in {what}",
                           "allowed: " + ", ".join(sorted([*known, *unsupported])), key=True)
        return keep

    # ------------------------------------------------------------ documents
    def read_file(self, path: str | FsPath) -> None:
        try:
            docs = list(load_yaml_documents(path))
        except InputError as e:
            self.errors.append(e)
            return
        if not docs:
            self.errors.append(InputError(Loc(str(path), 1, 1), "no YAML document"))
        for doc in docs:
            self.doc = doc
            self.resource(doc.data, ())

    def resource(self, data: Any, path: YamlPath) -> None:
        try:
            res = self.mapping(data, path, "a Calico resource")
            kind = res.get("kind")
            if kind == "List" or (isinstance(kind, str) and kind.endswith("List")):
                self.check_api_version(res, path, required=False)
                for i, item in enumerate(self.sequence(res.get("items"), path + ("items",),
                                                       "items")):
                    self.resource(item, path + ("items", i))
                return
            self.check_api_version(res, path, required=True)
            self.typed_resource(res, path, kind)
        except Skip:
            return

    def check_api_version(self, res: dict[str, Any], path: YamlPath, required: bool) -> None:
        version = res.get("apiVersion")
        if version is None and not required:
            return
        if version != cn.API_VERSION:
            where = path + ("apiVersion",) if "apiVersion" in res else path
            self.error(where, f"apiVersion must be {cn.API_VERSION}, not {version!r}",
                       "export the resources with calicoctl get -o yaml")
            raise Skip

    def typed_resource(self, res: dict[str, Any], path: YamlPath, kind: Any) -> None:
        readers: dict[str, Callable[[dict[str, Any], YamlPath, str, Loc], None]] = {
            "HostEndpoint": self.host_endpoint, "GlobalNetworkSet": self.network_set,
            "GlobalNetworkPolicy": self.policy, "FelixConfiguration": self.felix}
        if kind not in readers:
            why = cn.UNSUPPORTED_KINDS.get(kind) if isinstance(kind, str) else None
            if why is None:
                self.error(path + ("kind",), f"unknown kind {kind!r}",
                           "nodewall imports " + ", ".join(readers))
                raise Skip
            self.unsupported(path + ("kind",), f"kind {kind}", why, f"{kind} resource")
            raise Skip
        meta = self.mapping(res.get("metadata"), path + ("metadata",), "metadata")
        if "namespace" in meta:
            self.unsupported(path + ("metadata", "namespace"), "metadata.namespace",
                             "(nodewall has no namespaces; Global* kinds carry none)",
                             f"{kind} resource")
            raise Skip
        name = self.text(meta.get("name"), path + ("metadata", "name")
                         if "name" in meta else path + ("metadata",), "metadata.name")
        spec = self.mapping(res.get("spec"), path + ("spec",), "spec")
        readers[kind](spec, path, name, self.doc.loc(path))

    # ------------------------------------------------------------ kinds
    def labels(self, path: YamlPath) -> dict[str, str]:
        meta_path = path + ("metadata",)
        raw = self.mapping(self.doc_value(meta_path + ("labels",)), meta_path + ("labels",),
                           "metadata.labels")
        out = {}
        for key, value in raw.items():
            lpath = meta_path + ("labels", key)
            if not LABEL_KEY_RE.fullmatch(key):
                self.error(lpath, f"bad label key '{key}'", key=True)
            elif not isinstance(value, str) or not LABEL_VALUE_RE.fullmatch(value):
                self.error(lpath, f"bad label value {value!r} for '{key}'",
                           "up to 63 of [A-Za-z0-9-_.], starting and ending alphanumeric")
            else:
                out[key] = value
        return out

    def doc_value(self, path: YamlPath) -> Any:
        value = self.doc.data
        for part in path:
            if isinstance(value, dict) and part in value or isinstance(value, list) and isinstance(part, int) and part < len(value):
                value = value[part]
            else:
                return None
        return value

    def host_endpoint(self, spec: dict[str, Any], path: YamlPath, name: str, loc: Loc) -> None:
        spath = path + ("spec",)
        keys = self.check_keys(spec, spath, ("node", "interfaceName", "expectedIPs"),
                               cn.HEP_UNSUPPORTED, "a HostEndpoint spec", "field")
        hep: dict[str, Any] = {"name": name}
        if "interfaceName" not in keys:
            self.unsupported(spath, f"HostEndpoint {name} without interfaceName",
                             "(nodewall enforces policy on an interface; an expectedIPs-only "
                             "endpoint has none)", f"HostEndpoint {name}")
            raise Skip
        hep["interface"] = self.text(spec["interfaceName"], spath + ("interfaceName",),
                                     "interfaceName")
        ips = []
        for i, ip in enumerate(self.sequence(spec.get("expectedIPs"), spath + ("expectedIPs",),
                                             "expectedIPs")):
            ips.append(self.address(ip, spath + ("expectedIPs", i)))
        if ips:
            hep["expected_ips"] = ips
        labels = self.labels(path)
        if labels:
            hep["labels"] = labels
        self.out.host_endpoints.append((hep, Origin(loc)))

    def address(self, value: Any, path: YamlPath) -> str:
        text = self.text(value, path, "an expected IP")
        net = parse_cidr(text)
        if isinstance(net, str) or net.num_addresses != 1 or "/" in text:
            self.error(path, f"bad IP address '{text}'", "expectedIPs are addresses")
            return text
        return str(net.network_address)

    def network_set(self, spec: dict[str, Any], path: YamlPath, name: str, loc: Loc) -> None:
        spath = path + ("spec",)
        self.check_keys(spec, spath, ("nets",), cn.GNS_UNSUPPORTED,
                        "a GlobalNetworkSet spec", "field")
        gns: dict[str, Any] = {"name": name}
        labels = self.labels(path)
        if labels:
            gns["labels"] = labels
        gns["nets"] = self.nets(spec.get("nets"), spath + ("nets",))
        self.out.network_sets.append((gns, Origin(loc)))

    def nets(self, value: Any, path: YamlPath) -> list[str]:
        out = []
        for i, item in enumerate(self.sequence(value, path, path[-1])):
            text = self.text(item, path + (i,), "a net")
            net = parse_cidr(text)
            if isinstance(net, str):
                self.error(path + (i,), f"bad CIDR '{text}': {net}")
            else:
                out.append(str(net))
        return out

    def selector(self, value: Any, path: YamlPath) -> str:
        text = self.text(value, path, path[-1])
        loc = self.doc.loc(path)
        if self.doc.styles.get(path) not in ("'", '"'):  # plain: loc is the first char
            loc = Loc(loc.file, loc.line, loc.col - 1)
        try:
            return parse_selector(text, loc).canonical()
        except InputError as e:
            self.errors.append(e)
            raise Skip from None

    def policy(self, spec: dict[str, Any], path: YamlPath, name: str, loc: Loc) -> None:
        if self.doc_value(path + ("metadata", "labels")):
            self.note(path + ("metadata", "labels"),
                      f"GlobalNetworkPolicy {name}: labels on a policy are not kept "
                      "(nodewall policies carry none)")
        try:
            policy, rule_origins = read_policy(self, spec, path + ("spec",), name)
        except Skip:
            return
        self.out.policies.append((policy, Origin(loc, rule_origins)))

    def felix(self, spec: dict[str, Any], path: YamlPath, name: str, loc: Loc) -> None:
        read_felix(self, spec, path, name, loc)

    # ------------------------------------------------------------ result
    def ports(self, value: Any, path: YamlPath) -> list[int | str]:
        out: list[int | str] = []
        for i, item in enumerate(self.sequence(value, path, path[-1])):
            if isinstance(item, str) and not item.replace(":", "").strip().isdigit():
                self.unsupported(path + (i,), f"named port '{item}'",
                                 "(nodewall matches port numbers; host endpoints carry no "
                                 "named ports)", "rule")
                raise Skip
            port = parse_port(item)
            if isinstance(port, str):
                self.error(path + (i,), port)
                raise Skip
            out.append(port.first if port.first == port.last else str(port))
        return out


def import_calico(paths: Sequence[str | FsPath], *, skip_unsupported: bool = False,
                  out_name: str = "<imported profile>") -> ImportResult:
    """Read the Calico YAML files; return the TOML profile text, or raise InputErrors."""
    imp = Importer(skip_unsupported)
    for path in paths:
        imp.read_file(path)
    if imp.errors:
        raise InputErrors(imp.errors)
    text, header_origins = render_profile(imp.out, [str(p) for p in paths])
    try:
        profile = load_profiles([out_name], texts={out_name: text})
    except InputErrors as e:
        raise InputErrors([_relocate(err, header_origins) for err in e.errors]) from None
    return ImportResult(text, imp.warnings + list(profile.warnings))


def _relocate(err: InputError, header_origins: list[tuple[int, Loc]]) -> InputError:
    """An error in the generated TOML, reported at the YAML object it came from."""
    where = None
    for line, loc in header_origins:
        if line <= err.loc.line:
            where = loc
    if where is None:
        return err
    return InputError(where, err.message, err.hint)


def is_integral(value: float) -> bool:
    return math.isfinite(value) and value == int(value)
