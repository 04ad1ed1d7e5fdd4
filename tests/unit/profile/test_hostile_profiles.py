"""Hostile profile files (issue 15, item 12 and the low items): only regular files
of at most MAX_PROFILE_BYTES are read (a 100 MB one-line TOML is refused by its size,
before any parsing), a FIFO never blocks, a BOM is accepted, a symlink loop is called
one; every case is a file:line:col error with exit code 2."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from nodewall.engine.errors import InputError, InputErrors
from nodewall.engine.profile import loader
from nodewall.engine.profile.loader import load_profiles
from nodewall.engine.profile.selector import parse_selector

PROFILE = """[settings]
backend = "iptables"
[[host_endpoints]]
name = "h"
interface = "lo"
"""


def only_error(path: Path) -> InputError:
    with pytest.raises(InputErrors) as info:
        load_profiles([path])
    [err] = info.value.errors
    assert err.exit_code == 2 and (err.loc.line, err.loc.col) == (1, 1)
    return err


def test_a_fifo_profile_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "p.toml"
    os.mkfifo(fifo)
    assert "is a FIFO (named pipe), not a regular file" in only_error(fifo).message


def test_dev_zero_is_refused() -> None:
    assert "is a character device" in only_error(Path("/dev/zero")).message


def test_a_huge_profile_is_refused_by_its_size(tmp_path: Path) -> None:
    path = tmp_path / "huge.toml"
    with open(path, "wb") as fh:  # 100 MiB, sparse: no disk used, nothing parsed
        fh.truncate(100 << 20)
    err = only_error(path)
    assert f"more than the limit of {loader.MAX_PROFILE_BYTES} bytes" in err.message
    assert "nets_file" in (err.hint or "")


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + PROFILE.encode())
    assert [h.name for h in load_profiles([path]).host_endpoints] == ["h"]


def test_a_symlink_loop_is_called_one(tmp_path: Path) -> None:
    (tmp_path / "a.toml").symlink_to(tmp_path / "b.toml")
    (tmp_path / "b.toml").symlink_to(tmp_path / "a.toml")
    assert "is a symlink loop" in only_error(tmp_path / "a.toml").message


POLICY = """[[policies]]
name = "p"
order = 1
selector = "{selector}"
types = ["ingress"]
"""


@pytest.mark.parametrize("opening,closing", [("(", ")"), ("!(", ")")])
def test_a_selector_nested_1000_deep_is_a_located_error(tmp_path: Path, opening: str,
                                                         closing: str) -> None:
    path = tmp_path / "deep.toml"
    selector = opening * 1000 + "all()" + closing * 1000
    path.write_text(PROFILE + POLICY.format(selector=selector))
    with pytest.raises(InputErrors) as info:
        load_profiles([path])
    [err] = info.value.errors
    assert err.exit_code == 2 and err.loc.line == 9 and err.loc.col > 12
    assert "nested more than 32 levels deep" in err.message


def test_a_selector_nested_32_deep_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "ok.toml"
    path.write_text(PROFILE + POLICY.format(selector="(" * 32 + "all()" + ")" * 32))
    assert [p.name for p in load_profiles([path]).policies] == ["p"]


def test_a_run_of_1000_negations_collapses_as_in_calico(tmp_path: Path) -> None:
    """A run of `!` is read in a loop (no recursion) and collapses: even = itself."""
    path = tmp_path / "bangs.toml"
    path.write_text(PROFILE + POLICY.format(selector="!" * 1000 + "has(role)"))
    [policy] = load_profiles([path]).policies
    assert policy.selector == "has(role)"
    assert str(parse_selector("!" * 999 + "has(role)")) == "!has(role)"
