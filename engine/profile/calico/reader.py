"""The generic half of the Calico importer: located errors and warnings, typed access
to YAML values, and the value kinds every resource uses (labels, nets, selectors,
ports).  What the documents produce is collected in ImportedObjects."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from nodewall.engine.errors import InputError, Loc
from nodewall.engine.profile.calico.yaml_docs import Skip, YamlDoc, YamlPath
from nodewall.engine.profile.fields import LABEL_KEY_RE, LABEL_VALUE_RE, parse_cidr, parse_port
from nodewall.engine.profile.selector import parse_selector


@dataclass(frozen=True)
class Origin:
    """Where an object (and each rule it keeps, in output order) is written in YAML."""

    loc: Loc
    rule_locs: Sequence[Loc] = field(default_factory=tuple)


@dataclass
class ImportedObjects:
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


class Reader:
    def __init__(self, skip_unsupported: bool):
        self.skip = skip_unsupported
        self.errors: list[InputError] = []
        self.warnings: list[str] = []
        self.out = ImportedObjects()
        self.doc: YamlDoc = YamlDoc("<none>", None)
        self.dropped = 0  # unsupported keys met by the last check_keys

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

    def address(self, value: Any, path: YamlPath) -> str:
        text = self.text(value, path, "an expected IP")
        net = parse_cidr(text)
        if isinstance(net, str) or net.num_addresses != 1 or "/" in text:
            self.error(path, f"bad IP address '{text}'", "expectedIPs are addresses")
            return text
        return str(net.network_address)

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
