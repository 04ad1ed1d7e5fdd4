"""Helpers for the Calico import/export tests: YAML written to a temp file, imports
that return the loaded profile, and profile data without locations."""
from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path
from typing import Any

from nodewall.engine.nets.scan import iter_members
from nodewall.engine.profile.calico.importer import import_calico
from nodewall.engine.profile.loader import load_profiles
from nodewall.engine.profile.model import NetworkSet, Profile

_NOT_DATA = {"loc", "interface_loc", "profile", "files", "warnings", "nets_file"}


def write_yaml(tmp_path: Path, text: str, name: str = "in.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def import_profile(tmp_path: Path, *files: Path, skip: bool = False) -> tuple[Profile, list[str]]:
    result = import_calico(list(files), skip_unsupported=skip)
    out = tmp_path / "imported.toml"
    out.write_text(result.toml)
    return load_profiles([out]), result.warnings


def _nets(ns: NetworkSet) -> list[str]:
    nets = set(ns.nets)
    if ns.nets_file is not None:
        for family in (4, 6):
            nets.update(iter_members(ns.nets_file.path, family))
    return sorted(nets)


def profile_data(value: Any) -> Any:
    """The profile as plain data: no locations or file names; a network set's
    members as one sorted list (nets and nets_file together)."""
    if isinstance(value, NetworkSet):
        return {"name": value.name, "labels": dict(value.labels), "nets": _nets(value)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: profile_data(getattr(value, f.name))
                for f in dataclasses.fields(value) if f.name not in _NOT_DATA}
    if isinstance(value, (tuple, list)):
        return [profile_data(v) for v in value]
    if hasattr(value, "items"):
        return {k: profile_data(v) for k, v in value.items()}
    return value
