"""projectcalico.org/v3 YAML -> a nodewall TOML profile.

HostEndpoint -> [[host_endpoints]], GlobalNetworkSet -> [[network_sets]],
GlobalNetworkPolicy -> [[policies]], FelixConfiguration's failsafe ports ->
[settings].  What a host firewall of one node cannot express is an error at its
file:line:col, or, with `skip_unsupported`, a warning naming what was skipped.
The generated TOML is loaded by the profile loader before it is returned; a
problem it finds is reported at the YAML document it came from.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any

from nodewall.engine.errors import InputError, InputErrors, Loc
from nodewall.engine.profile.calico import names as cn
from nodewall.engine.profile.calico.reader import Origin, Reader
from nodewall.engine.profile.calico.rules import read_policy
from nodewall.engine.profile.calico.settings import read_felix
from nodewall.engine.profile.calico.toml_out import render_profile
from nodewall.engine.profile.calico.yaml_docs import Skip, YamlPath, load_yaml_documents
from nodewall.engine.profile.loader import load_profiles


@dataclass
class ImportResult:
    toml: str
    warnings: list[str]  # "file:line:col: warning: ..."


class Importer(Reader):
    """Reads Calico resources, one kind per method, into ImportedObjects."""

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
        if "name" not in meta:
            self.error(path + ("metadata",), f"{kind} has no metadata.name")
            raise Skip
        name = self.text(meta["name"], path + ("metadata", "name"), "metadata.name")
        spec = self.mapping(res.get("spec"), path + ("spec",), "spec")
        readers[kind](spec, path, name, self.doc.loc(path))

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
