"""YAML documents with the location of every key and value (PyYAML's composed nodes
carry start marks), so that import errors point at file:line:col."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

import yaml
from nodewall.engine.errors import InputError, Loc
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

YamlPath = tuple[str | int, ...]


class Skip(Exception):
    """The YAML object being read is left out (its error or warning is recorded)."""


@dataclass
class YamlDoc:
    """One YAML document: plain values plus locations keyed by path."""

    file: str
    data: Any
    value_locs: dict[YamlPath, Loc] = field(default_factory=dict)
    key_locs: dict[YamlPath, Loc] = field(default_factory=dict)
    styles: dict[YamlPath, str | None] = field(default_factory=dict)  # scalar quoting

    def loc(self, path: YamlPath) -> Loc:
        """Where the value at `path` starts (or its nearest located parent)."""
        while path not in self.value_locs and path:
            path = path[:-1]
        return self.value_locs.get(path, Loc(self.file, 1, 1))

    def key_loc(self, path: YamlPath) -> Loc:
        """Where the key of the mapping entry at `path` is written."""
        return self.key_locs.get(path) or self.loc(path)


def _mark_loc(file: str, node: Node) -> Loc:
    return Loc(file, node.start_mark.line + 1, node.start_mark.column + 1)


class _Converter:
    def __init__(self, file: str):
        self.doc = YamlDoc(file, None)
        self.constructor = SafeConstructor()

    def convert(self, node: Node, path: YamlPath) -> Any:
        self.doc.value_locs[path] = _mark_loc(self.doc.file, node)
        if isinstance(node, MappingNode):
            return self.mapping(node, path)
        if isinstance(node, SequenceNode):
            return [self.convert(item, path + (i,)) for i, item in enumerate(node.value)]
        assert isinstance(node, ScalarNode)
        self.doc.styles[path] = node.style
        try:
            return self.constructor.construct_object(node, deep=True)
        except (ConstructorError, ValueError) as e:
            raise InputError(_mark_loc(self.doc.file, node), f"bad YAML value: {e}") from None

    def mapping(self, node: MappingNode, path: YamlPath) -> dict[str, Any]:
        out: dict[str, Any] = {}
        self.constructor.flatten_mapping(node)  # YAML merge keys (<<)
        for key_node, value_node in node.value:
            key_loc = _mark_loc(self.doc.file, key_node)
            if not isinstance(key_node, ScalarNode):
                raise InputError(key_loc, "a mapping key must be a plain string")
            key = str(self.constructor.construct_object(key_node))
            if key in out:
                raise InputError(key_loc, f"duplicate key '{key}'")
            self.doc.key_locs[path + (key,)] = key_loc
            out[key] = self.convert(value_node, path + (key,))
        return out


def load_yaml_documents(path: str | FsPath) -> Iterator[YamlDoc]:
    """Every non-empty document of a (multi-document) YAML file."""
    file = str(path)
    try:
        text = FsPath(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(Loc(file, 1, 1), "not UTF-8 text") from None
    except OSError as e:
        raise InputError(Loc(file, 1, 1), f"cannot read: {e.strerror}") from None
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        loc = Loc(file, mark.line + 1, mark.column + 1) if mark else Loc(file, 1, 1)
        raise InputError(loc, f"YAML syntax error: {e.problem or e.context}") from None
    for node in nodes:
        if node is None:
            continue
        conv = _Converter(file)
        conv.doc.data = conv.convert(node, ())
        if conv.doc.data is not None:  # an empty document between two "---"
            yield conv.doc
