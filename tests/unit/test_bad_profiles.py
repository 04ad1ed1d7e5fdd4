"""The bad-input corpus: every tests/unit/bad_profiles/*.toml must fail to load with
exactly the error its first line announces:

    # expect: [<file relative to the profile>:]<line>:<col>: <substring of the message>

Optional second line `# generate: <relpath> <lines> <bad lineno> <bad text>` writes
a big nets_file first (into the temporary copy, never into git).  A file
`<name>.companion.toml` is loaded before `<name>.toml` (names across files)."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from nodewall.engine.errors import InputError, InputErrors
from nodewall.engine.profile.loader import load_profiles

CORPUS = Path(__file__).parent / "bad_profiles"
PROFILES = sorted(p for p in CORPUS.glob("*.toml") if not p.name.endswith(".companion.toml"))
EXPECT = re.compile(r"# expect: (?:(?P<file>[^:]+):)?(?P<line>\d+):(?P<col>\d+): (?P<text>.+)")
GENERATE = re.compile(r"# generate: (\S+) (\d+) (\d+) (\S+)")


def test_corpus_is_big_enough() -> None:
    assert len(PROFILES) >= 40


def _generate(directive: re.Match[str], base: Path) -> None:
    rel, total, bad, text = directive.group(1), int(directive.group(2)), \
        int(directive.group(3)), directive.group(4)
    target = base / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(1, total + 1)]
    lines[bad - 1] = text
    target.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.stem)
def test_bad_profile(profile: Path, tmp_path: Path) -> None:
    base = tmp_path / "bad_profiles"
    shutil.copytree(CORPUS, base)
    head = profile.read_text().splitlines()
    m = EXPECT.fullmatch(head[0])
    assert m, f"{profile.name}: first line must be '# expect: <line>:<col>: <text>'"
    gen = GENERATE.fullmatch(head[1]) if len(head) > 1 else None
    if gen:
        _generate(gen, base)
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
