"""FelixConfiguration -> [settings]: the failsafe ports (Calico's own fields) and
the settings Calico has no field for (nodewall/* annotations, as the exporter
writes them)."""
from __future__ import annotations

from typing import Any

from nodewall.engine.errors import Loc
from nodewall.engine.profile.calico import names as cn
from nodewall.engine.profile.calico.reader import Reader
from nodewall.engine.profile.calico.yaml_docs import Skip, YamlPath
from nodewall.engine.profile.fields import parse_cidr

_FELIX_OTHER = "(a Felix setting with no nodewall [settings] counterpart)"


class _AnyFelixField(dict):
    """Every FelixConfiguration field but the failsafe ports is unsupported."""

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: str) -> str:
        return _FELIX_OTHER


def read_felix(imp: Reader, spec: dict[str, Any], path: YamlPath, name: str,
               loc: Loc) -> None:
    spath = path + ("spec",)
    if imp.out.settings_origin is not None:
        imp.error(path, f"a second FelixConfiguration ({name}): the failsafe ports of "
                  f"{imp.out.settings_origin} are already imported")
        raise Skip
    keys = imp.check_keys(spec, spath, tuple(cn.FELIX_FAILSAFE_KEYS), _AnyFelixField(),
                          "a FelixConfiguration spec", "field")
    settings: dict[str, Any] = {}
    for key in keys:
        entries = imp.sequence(spec[key], spath + (key,), key)
        settings[cn.FELIX_FAILSAFE_KEYS[key]] = [
            _failsafe(imp, item, spath + (key, i)) for i, item in enumerate(entries)]
    annotations = imp.mapping(imp.doc_value(path + ("metadata", "annotations")),
                              path + ("metadata", "annotations"), "metadata.annotations")
    for key, value in annotations.items():
        if key in cn.SETTINGS_ANNOTATIONS:
            settings[cn.SETTINGS_ANNOTATIONS[key]] = _annotation_value(
                imp, key, value, path + ("metadata", "annotations", key))
    imp.out.settings = settings
    imp.out.settings_origin = loc


def _failsafe(imp: Reader, value: Any, path: YamlPath) -> str:
    raw = imp.mapping(value, path, "a failsafe port")
    proto = str(raw.get("protocol", "tcp")).lower()
    port = raw.get("port")
    if proto not in ("tcp", "udp"):
        imp.error(path, f"failsafe protocol must be TCP or UDP, not {raw.get('protocol')!r}")
        raise Skip
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        imp.error(path, f"failsafe port must be a number 1-65535, not {port!r}")
        raise Skip
    text = f"{proto}:{port}"
    if raw.get("net"):
        net = parse_cidr(str(raw["net"]))
        if isinstance(net, str):
            imp.error(path + ("net",), f"bad CIDR {raw['net']!r}: {net}")
            raise Skip
        text += f"@{net}"
    return text


def _annotation_value(imp: Reader, key: str, value: Any, path: YamlPath) -> str | int:
    if cn.SETTINGS_ANNOTATIONS[key] != "max_set_entries":
        return imp.text(value, path, key)
    if not str(value).isdigit():
        imp.error(path, f"{key} must be a whole number, not {value!r}")
        raise Skip
    return int(value)
