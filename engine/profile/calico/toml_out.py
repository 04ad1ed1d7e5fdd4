"""Writes the imported objects as a TOML profile, and tells which YAML object each
`[table]` header of the output came from."""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import tomlkit
from nodewall.engine.errors import Loc
from nodewall.engine.profile.calico.reader import ImportedObjects
from tomlkit.items import AoT, InlineTable, Table

_INLINE = ("labels", "source", "destination", "icmp", "not_icmp")


class _LongArrays:
    """Long string arrays (a network set's nets) are written one per line by hand:
    tomlkit re-indexes an array on every append, quadratic in its length."""

    def __init__(self) -> None:
        self.texts: dict[str, str] = {}

    def placeholder(self, items: list[str]) -> str:
        token = f"@@nodewall-array-{len(self.texts)}@@"
        body = "".join(f"    {json.dumps(item)},\n" for item in items)
        self.texts[json.dumps(token)] = "[\n" + body + "]"
        return token

    def fill(self, text: str) -> str:
        for token, array in self.texts.items():
            text = text.replace(token, array, 1)
        return text


def _value(key: str, value: Any, arrays: _LongArrays) -> Any:
    if key in ("selector", "not_selector") and "'" not in value and "\n" not in value:
        return tomlkit.string(value, literal=True)  # 'role == "db"', as people write it
    if key in _INLINE and isinstance(value, dict):
        inline: InlineTable = tomlkit.inline_table()
        for k, v in value.items():
            inline[k] = _value(k, v, arrays)
        return inline
    if isinstance(value, list) and len(value) > 4 and all(isinstance(v, str) for v in value):
        return arrays.placeholder(value)
    return value


def _table(data: dict[str, Any], arrays: _LongArrays) -> Table:
    table = tomlkit.table()
    for key, value in data.items():
        if key in ("ingress", "egress"):
            continue
        table[key] = _value(key, value, arrays)
    for direction in ("ingress", "egress"):
        if data.get(direction):
            rules = tomlkit.aot()
            for rule in data[direction]:
                rules.append(_table(rule, arrays))
            table[direction] = rules
    return table


def render_profile(out: ImportedObjects, sources: Sequence[str]) -> tuple[str, list[tuple[int, Loc]]]:
    """The TOML text and [(line of a `[..]` header, YAML location it came from)]."""
    doc = tomlkit.document()
    doc.add(tomlkit.comment("imported from Calico resources by `nodewall import calico`: "
                            + ", ".join(sources)))
    origins: list[Loc] = []
    arrays = _LongArrays()
    if out.settings and out.settings_origin is not None:
        doc["settings"] = _table(out.settings, arrays)
        origins.append(out.settings_origin)
    for key, items in (("host_endpoints", out.host_endpoints),
                       ("network_sets", out.network_sets), ("policies", out.policies)):
        if not items:
            continue
        aot: AoT = tomlkit.aot()
        for data, origin in items:
            aot.append(_table(data, arrays))
            origins.append(origin.loc)
            origins.extend(origin.rule_locs)
        doc[key] = aot
    text = arrays.fill(tomlkit.dumps(doc))
    headers = [n for n, line in enumerate(text.splitlines(), 1)
               if line.lstrip().startswith("[")]
    return text, list(zip(headers, origins, strict=False))
