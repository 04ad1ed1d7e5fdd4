"""A state dir that fills up or turns read-only (issue 15, items 2 and 3), on a real
small tmpfs mounted as --state-dir (inside the test's tmp dir, unmounted afterwards):

  - apply with the state dir filling up at every point (free space 0, 1, 2, … pages
    before it starts): it applies and records the new generation, or exits 1 with a
    clear message and the kernel and the state dir still at the old one — never an
    OSError traceback, never the new generation in the kernel without its record;
  - full or read-only: `panic on` and `flush` still work (with a warning that the state
    dir could not record it); `rollback` rolls back or says clearly why not, and leaves
    the kernel as it was."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import IS_ROOT, in_ns
from tests.helpers.crash_kit import kernel_fingerprint
from tests.helpers.safety_kit import nw, write_profile

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(not IS_ROOT, reason="kernel test: needs root for namespaces")]

PAGE = 4096
MAX_FREE_PAGES = 24  # apply of the small profile below needs fewer pages than this


@pytest.fixture
def tmpfs_state(netns_pair, tmp_path):
    """(namespace, state dir on a 1 MiB tmpfs of its own)."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "nwtest-state",
                    str(state)], check=True)
    try:
        yield netns_pair.server, state
    finally:
        subprocess.run(["umount", str(state)], check=False)


def _fill(state: Path, free_pages: int) -> None:
    """Leave exactly `free_pages` pages free on the state dir's file system."""
    fill = state / "fill"
    fill.unlink(missing_ok=True)
    st = os.statvfs(state)
    size = (st.f_bavail * st.f_frsize // PAGE - free_pages) * PAGE
    fd = os.open(fill, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        if size > 0:
            os.posix_fallocate(fd, 0, size)
    finally:
        os.close(fd)


def _unfill(state: Path) -> None:
    (state / "fill").unlink(missing_ok=True)


def _sources(state: Path) -> list[str] | None:
    current = (state / "current").read_text().strip()
    if not current:
        return None
    return json.loads((state / "generations" / current / "meta.json").read_text())["sources"]


def _clean(out: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in out.stderr, out.stderr
    assert out.returncode in (0, 1), out.stderr


def _profiles(tmp_path: Path) -> tuple[Path, Path]:
    return tuple(write_profile(tmp_path, name, iface="srv0", members=40, rules=3,
                               variant=variant)
                 for name, variant in (("a", 1), ("b", 2)))  # type: ignore[return-value]


def test_apply_as_the_state_dir_fills_up_is_all_or_nothing(tmpfs_state, tmp_path):
    ns, state = tmpfs_state
    a, b = _profiles(tmp_path)
    nw(ns, state, "apply", str(b))
    fp_b = kernel_fingerprint(ns)
    nw(ns, state, "apply", str(a))
    fp_a = kernel_fingerprint(ns)

    outcomes = []
    for free in range(MAX_FREE_PAGES):
        _fill(state, free)
        out = nw(ns, state, "apply", str(b), check=False)
        _clean(out)
        fp = kernel_fingerprint(ns)  # read before any other nodewall command recovers
        journal = (state / "journal.json").exists()
        _unfill(state)
        where = f"{free} pages free: rc {out.returncode}\n{out.stderr}"
        if out.returncode == 0:
            assert fp == fp_b and _sources(state) == [str(b)] and not journal, where
            outcomes.append("applied")
            break
        assert fp == fp_a, f"{where}\nthe kernel does not hold the old generation"
        assert _sources(state) == [str(a)], f"{where}\nthe state dir moved on"
        assert not journal, f"{where}\na journal was left behind"
        assert "state dir" in out.stderr and "No space left" in out.stderr, where
        outcomes.append("refused")
    assert outcomes[0] == "refused" and outcomes[-1] == "applied", outcomes
    print(f"apply b: {outcomes.count('refused')} fill levels refused, then applied")
    assert nw(ns, state, "status", "--output", "json").returncode == 0


def _make_unwritable(state: Path, how: str) -> None:
    if how == "full":
        _fill(state, 0)
    else:
        subprocess.run(["mount", "-o", "remount,ro", str(state)], check=True)


def _raw_rules(ns: str) -> str:
    return in_ns(ns, "iptables-legacy-save", "-t", "raw").stdout


@pytest.mark.parametrize("how", ["full", "read-only"])
def test_emergency_commands_need_no_disk(tmpfs_state, tmp_path, how):
    ns, state = tmpfs_state
    a, b = _profiles(tmp_path)
    nw(ns, state, "apply", str(a))
    nw(ns, state, "apply", str(b))
    fp_b = kernel_fingerprint(ns)
    _make_unwritable(state, how)

    rolled = nw(ns, state, "rollback", check=False)
    _clean(rolled)
    if rolled.returncode == 1:  # refused: clear, and the kernel as it was
        assert "state dir" in rolled.stderr, rolled.stderr
        assert kernel_fingerprint(ns) == fp_b, "a refused rollback changed the kernel"

    panic = nw(ns, state, "panic", "on", check=False)
    _clean(panic)
    assert panic.returncode == 0, panic.stderr
    assert "state dir" in panic.stderr, "no warning that panic was not recorded"
    assert "-j nw-panic-in" in _raw_rules(ns), "panic on did not drop traffic"

    flushed = nw(ns, state, "flush", check=False)
    _clean(flushed)
    assert flushed.returncode == 0, flushed.stderr
    assert "state dir" in flushed.stderr, "no warning that the flush was not recorded"
    assert "nw-" not in kernel_fingerprint(ns).replace("nw-PREROUTING", "")
