"""What the agent applies from its profiles directory: one consistent snapshot, and
the node's own selection of profiles.

A plain directory: every `*.toml` in it.  A mounted ConfigMap (the kubelet writes each
version into a fresh `..<timestamp>` directory and swaps the `..data` symlink to it):
`..data` is resolved once per pass and every file is read through the directory it
names, so a pass never mixes two versions (those directories are never changed in
place; the old one is removed after the swap, which makes a racing read fail, never
mix — the agent then reads again).

Node selection: when the directory holds `nodes.toml`, it names the profiles of each
kind of node; a node applies the profiles of every entry that matches it, in the
order written, each file once:

    [[nodes]]                              # every node
    profiles = ["base.toml"]

    [[nodes]]
    name = "edge-*"                        # glob on the node name (--node-name, NODE_NAME)
    labels = { role = "ingress" }          # all must equal the node's labels
    profiles = ["ingress.toml"]            #   (--node-labels k=v,..., NODE_LABELS)

A node no entry matches is bad input (the kernel is left as it is): a node with no
profile at all would lose its firewall.
"""
from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit
from nodewall.engine.errors import InputError, InputErrors, Loc
from nodewall.engine.profile.toml_locations import TomlLocations, scan_locations
from nodewall.engine.system.files import describe_open_error, read_regular
from tomlkit.exceptions import TOMLKitError

DATA_LINK = "..data"  # the kubelet's symlink to the current version of a ConfigMap
SELECTION_FILE = "nodes.toml"
ENTRY_KEYS = ("name", "labels", "profiles")
MAX_SELECTION_BYTES = 1 << 20


@dataclass(frozen=True)
class NodeIdentity:
    """Who this node is, for nodes.toml: its name and labels (both optional)."""

    name: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        labels = ",".join(f"{k}={v}" for k, v in sorted(self.labels.items()))
        return f"node {self.name or '(no name)'}" + (f" with labels {labels}" if labels else "")


def parse_labels(text: str, origin: str = "--node-labels") -> dict[str, str]:
    """`k=v,k2=v2` (spaces around items ignored, empty text: no labels)."""
    labels: dict[str, str] = {}
    col = 1
    for item in text.split(","):
        stripped = item.strip()
        if stripped:
            key, sep, value = stripped.partition("=")
            if not sep or not key.strip():
                raise InputError(Loc(origin, 1, col), f"label {stripped!r} is not key=value",
                                 "write labels as role=ingress,zone=a")
            labels[key.strip()] = value.strip()
        col += len(item) + 1
    return labels


@dataclass(frozen=True)
class Snapshot:
    """The profiles of one pass, all read through `root`."""

    root: Path  # the directory the files are read from (a ConfigMap's `..data` target)
    paths: tuple[Path, ...]
    version: str  # the `..data` target's name, "" for a plain directory


def resolve_root(directory: Path) -> tuple[Path, str]:
    """The directory to read this pass, and its version name: `..data`'s target for
    a ConfigMap mount, else the directory itself."""
    link = directory / DATA_LINK
    if link.is_symlink():
        real = Path(os.path.realpath(link))
        return real, real.name
    return directory, ""


def take_snapshot(directory: Path, node: NodeIdentity | None = None) -> Snapshot:
    node = node or NodeIdentity()
    root, version = resolve_root(Path(directory))
    available = _toml_files(root)
    selection = root / SELECTION_FILE
    if selection.name in available:
        del available[selection.name]
        paths = select_profiles(selection, available, node)
    else:
        paths = tuple(available[name] for name in sorted(available))
    if not paths:
        raise InputError(Loc(str(directory)), "no *.toml profile in this directory",
                         hint="put the node's profiles there (the boot unit and the "
                              "agent apply all of them together)")
    return Snapshot(root, paths, version)


def _toml_files(root: Path) -> dict[str, Path]:
    if not root.is_dir():
        return {}
    return {p.name: p for p in root.glob("*.toml") if not p.name.startswith(".")}


def select_profiles(selection: Path, available: Mapping[str, Path],
                    node: NodeIdentity) -> tuple[Path, ...]:
    """The profiles nodes.toml gives `node` (see the module doc)."""
    entries, locs = _read_selection(selection)
    errors: list[InputError] = []
    chosen: list[str] = []
    for i, entry in enumerate(entries):
        names = _check_entry(entry, i, locs, available, errors)
        if names is not None and _matches(entry, node):
            chosen += [n for n in names if n not in chosen]
    if errors:
        raise InputErrors(errors)
    if not chosen:
        raise InputError(locs.table("nodes"), f"no [[nodes]] entry matches this node "
                         f"({node.describe()})",
                         "add an entry for it (an entry without name and labels matches "
                         "every node)")
    return tuple(available[n] for n in chosen)


def _read_selection(path: Path) -> tuple[list[dict[str, Any]], TomlLocations]:
    try:
        text = read_regular(path, MAX_SELECTION_BYTES).decode("utf-8")
    except OSError as exc:
        raise InputError(Loc(str(path)), f"node selection {describe_open_error(exc)}") from exc
    except UnicodeDecodeError as exc:
        raise InputError(Loc(str(path)), "node selection is not valid UTF-8") from exc
    try:
        data = tomlkit.parse(text).unwrap()
    except (TOMLKitError, ValueError, TypeError, KeyError, IndexError, RecursionError) as e:
        line, col = getattr(e, "line", None) or 1, (getattr(e, "col", None) or 0) + 1
        raise InputError(Loc(str(path), line, col), f"TOML syntax error: {e}") from e
    locs = scan_locations(text, str(path))
    unknown = [k for k in data if k != "nodes"]
    if unknown:
        raise InputError(locs.key(unknown[0]), f"unknown key '{unknown[0]}'",
                         "nodes.toml holds only [[nodes]] entries")
    entries = data.get("nodes")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise InputError(locs.key("nodes") if entries is not None else Loc(str(path)),
                         "nodes.toml needs [[nodes]] entries (an array of tables)")
    return entries, locs


def _check_entry(entry: Mapping[str, Any], i: int, locs: TomlLocations,
                 available: Mapping[str, Path], errors: list[InputError]) -> list[str] | None:
    """The entry's profile names, or None (errors added) when it is malformed."""
    before = len(errors)
    for key in entry:
        if key not in ENTRY_KEYS:
            errors.append(InputError(locs.key("nodes", i, key), f"unknown key '{key}'",
                                     f"an entry has {', '.join(ENTRY_KEYS)}"))
    if not isinstance(entry.get("name", ""), str):
        errors.append(InputError(locs.value("nodes", i, "name"), "'name' must be a string"))
    labels = entry.get("labels", {})
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        errors.append(InputError(locs.value("nodes", i, "labels"),
                                 "'labels' must be a table of strings"))
    names = entry.get("profiles")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        where = locs.value("nodes", i, "profiles") if "profiles" in entry \
            else locs.table("nodes", i)
        errors.append(InputError(where, "'profiles' must be a non-empty list of file names"))
        return None
    for j, name in enumerate(names):
        if name not in available:
            errors.append(InputError(locs.value("nodes", i, "profiles", j),
                                     f"no profile {name!r} beside nodes.toml",
                                     "name *.toml files of this directory"))
    return names if len(errors) == before else None


def _matches(entry: Mapping[str, Any], node: NodeIdentity) -> bool:
    pattern = entry.get("name", "*")
    if pattern != "*" and (node.name is None or not fnmatch.fnmatchcase(node.name, pattern)):
        return False
    labels = entry.get("labels", {})
    return all(node.labels.get(k) == v for k, v in labels.items())
