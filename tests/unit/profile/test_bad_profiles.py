"""The bad-input corpus through load_profiles: each profile fails with exactly the
error its first line announces (see tests/helpers/bad_profiles.py for the format)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from nodewall.engine.errors import InputError, InputErrors
from nodewall.engine.profile.loader import load_profiles

from tests.helpers.bad_profiles import CORPUS, EXPECT, GENERATE, PROFILES, generate_nets_file


def test_corpus_is_big_enough() -> None:
    assert len(PROFILES) >= 40


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.stem)
def test_bad_profile(profile: Path, tmp_path: Path) -> None:
    base = tmp_path / "bad_profiles"
    shutil.copytree(CORPUS, base)
    head = profile.read_text().splitlines()
    m = EXPECT.fullmatch(head[0])
    assert m, f"{profile.name}: first line must be '# expect: <line>:<col>: <text>'"
    gen = GENERATE.fullmatch(head[1]) if len(head) > 1 else None
    if gen:
        generate_nets_file(gen, base)
    target = base / profile.name
    files = [target]
    companion = base / f"{profile.stem}.companion.toml"
    if companion.exists():
        files.insert(0, companion)

    with pytest.raises(InputErrors) as info:
        load_profiles([str(f) for f in files])
    first = info.value.errors[0]
    assert isinstance(first, InputError) and first.exit_code == 2
    assert info.value.exit_code == 2
    expected_file = str((base / m.group("file")).absolute()) if m.group("file") else str(target)
    got = (first.loc.file, first.loc.line, first.loc.col)
    assert got == (expected_file, int(m.group("line")), int(m.group("col"))), first.render()
    assert m.group("text") in first.message, first.render()
    assert first.hint is None or first.hint.strip()
    rendered = info.value.render()
    assert rendered.startswith(f"{expected_file}:{m.group('line')}:{m.group('col')}: ")
