"""Writes the imported objects as a TOML profile, and tells which YAML object each
`[table]` header of the output came from."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tomlkit
from nodewall.engine.errors import Loc
from nodewall.engine.profile.calico.reader import ImportedObjects
from tomlkit.items import AoT, InlineTable, Table

_INLINE = ("labels", "source", "destination", "icmp", "not_icmp")


def _value(key: str, value: Any) -> Any:
    if key in ("selector", "not_selector") and "'" not in value and "\n" not in value:
        return tomlkit.string(value, literal=True)  # 'role == "db"', as people write it
    if key in _INLINE and isinstance(value, dict):
        inline: InlineTable = tomlkit.inline_table()
        for k, v in value.items():
            inline[k] = _value(k, v)
        return inline
    if isinstance(value, list) and len(value) > 4 and all(isinstance(v, str) for v in value):
        arr = tomlkit.array()
        arr.extend(value)
        return arr.multiline(True)
    return value


def _table(data: dict[str, Any]) -> Table:
    table = tomlkit.table()
    for key, value in data.items():
        if key in ("ingress", "egress"):
            continue
        table[key] = _value(key, value)
    for direction in ("ingress", "egress"):
        if data.get(direction):
            rules = tomlkit.aot()
            for rule in data[direction]:
                rules.append(_table(rule))
            table[direction] = rules
    return table


def render_profile(out: ImportedObjects, sources: Sequence[str]) -> tuple[str, list[tuple[int, Loc]]]:
    """The TOML text and [(line of a `[..]` header, YAML location it came from)]."""
    doc = tomlkit.document()
    doc.add(tomlkit.comment("imported from Calico resources by `nodewall import calico`: "
                            + ", ".join(sources)))
    origins: list[Loc] = []
    if out.settings and out.settings_origin is not None:
        doc["settings"] = _table(out.settings)
        origins.append(out.settings_origin)
    for key, items in (("host_endpoints", out.host_endpoints),
                       ("network_sets", out.network_sets), ("policies", out.policies)):
        if not items:
            continue
        aot: AoT = tomlkit.aot()
        for data, origin in items:
            aot.append(_table(data))
            origins.append(origin.loc)
            origins.extend(origin.rule_locs)
        doc[key] = aot
    text = tomlkit.dumps(doc)
    headers = [n for n, line in enumerate(text.splitlines(), 1)
               if line.lstrip().startswith("[")]
    return text, list(zip(headers, origins, strict=False))
