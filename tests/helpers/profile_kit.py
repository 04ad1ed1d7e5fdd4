"""Helpers of the profile-loading tests: the README's design example, a blocklist for
it, and load / error shortcuts on a profile written from a string."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from nodewall.engine.errors import InputError, InputErrors
from nodewall.engine.profile.loader import load_profiles
from nodewall.engine.profile.model import Profile

from tests.conftest import REPO

DESIGN_EXAMPLE = (REPO / "tests" / "data" / "design_example.toml").read_text()

BLOCKLIST = "# bad actors\n198.51.100.7\n198.51.100.0/24   # a whole net\n\n2001:db8::1\n"


def write(tmp_path: Path, text: str, name: str = "p.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def load(tmp_path: Path, text: str, **kw: object) -> Profile:
    return load_profiles([write(tmp_path, text)], **kw)  # type: ignore[arg-type]


def errors_of(tmp_path: Path, text: str, name: str = "p.toml") -> list[InputError]:
    path = write(tmp_path, text, name)
    with pytest.raises(InputErrors) as info:
        load_profiles([path])
    for e in info.value.errors:
        assert e.loc.line >= 1 and e.loc.col >= 1
        assert e.exit_code == 2
    return info.value.errors


def one_error(tmp_path: Path, text: str) -> InputError:
    errs = errors_of(tmp_path, text)
    assert len(errs) == 1, [e.render() for e in errs]
    return errs[0]
