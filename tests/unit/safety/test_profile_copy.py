"""The recorded copy of a profile: nets_file names the generation's copy, everything
else is the operator's text.  The in-place line rewrite must give what tomlkit's
round trip gives, and profiles it cannot rewrite safely go through tomlkit."""
from __future__ import annotations

import os
import tomllib
from pathlib import Path

import tomlkit
from nodewall.engine.safety import profile_copy

REPO = Path(__file__).resolve().parents[3]


def _copies(tmp_path: Path, src: Path, *names: str) -> dict[str, Path]:
    return {os.path.realpath(src.parent / n): tmp_path / "gen" / f"{i}-{n}"
            for i, n in enumerate(names)}


def test_the_worked_example_is_rewritten_in_place_as_tomlkit_would(tmp_path: Path):
    src = REPO / "profiles" / "redis-host.toml"
    text = src.read_text()
    copies = _copies(tmp_path, src, "blocklist.txt")
    fast = profile_copy._rewrite_lines(text, src, copies)
    assert fast is not None
    assert fast == profile_copy._rewrite_with_tomlkit(text, src, copies)
    assert "# profiles/redis-host.toml" in fast  # comments kept
    sets = tomllib.loads(fast)["network_sets"]
    assert sets[0]["nets_file"] == str(copies[next(iter(copies))])


def test_an_inline_table_goes_through_tomlkit(tmp_path: Path):
    src = tmp_path / "p.toml"
    text = ('# keep me\nnetwork_sets = [ { name = "a", nets_file = "a.txt" } ]\n')
    copies = _copies(tmp_path, src, "a.txt")
    assert profile_copy._rewrite_lines(text, src, copies) is None
    out = profile_copy.recorded_text(text, src, copies)
    assert out.startswith("# keep me\n")
    assert tomlkit.parse(out)["network_sets"][0]["nets_file"] == str(copies[next(iter(copies))])


def test_a_nets_file_line_outside_network_sets_is_not_rewritten_in_place(tmp_path: Path):
    src = tmp_path / "p.toml"
    text = ('[[network_sets]]\nname = "a"\nnets_file = "a.txt"\n\n'
            '[other]\nnets_file = "a.txt"\n')
    copies = _copies(tmp_path, src, "a.txt")
    assert profile_copy._rewrite_lines(text, src, copies) is None  # would change [other]
    out = tomllib.loads(profile_copy.recorded_text(text, src, copies))
    assert out["other"]["nets_file"] == "a.txt"
    assert out["network_sets"][0]["nets_file"] == str(copies[next(iter(copies))])


def test_a_profile_without_nets_file_is_copied_as_it_is(tmp_path: Path):
    text = '[[network_sets]]\nname = "a"\nnets = ["192.0.2.0/24"]  # inline\n'
    assert profile_copy.recorded_text(text, tmp_path / "p.toml", {}) == text
