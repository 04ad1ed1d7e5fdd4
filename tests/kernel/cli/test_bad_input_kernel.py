"""Bad input never touches the kernel (issue 5, item 9): every profile of the bad
corpus (tests/data/bad_profiles), through the CLI's `validate` and `apply`, exits 2
with its file:line:col, inside a namespace that already holds an applied generation
plus foreign rules and sets; before and after, iptables-legacy-save,
ip6tables-legacy-save, ipset save and bpftool are byte-for-byte the same.

The 150 CLI runs happen in one forked child inside the namespace (cli.main
in-process, no interpreter start-up each); two go through a real subprocess too."""
from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import pytest
from nodewall.engine.system import netns

from tests.conftest import IS_ROOT
from tests.helpers.bad_profiles import EXPECT, GENERATE, PROFILES, generate_nets_file
from tests.helpers.safety_kit import add_foreign, nw, saves, write_profile

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(not IS_ROOT, reason="kernel test: needs root for namespaces")]


def _run_all(jobs: list[tuple[str, list[str]]]) -> list[tuple[str, int, str]]:
    from nodewall.engine.cli import main as cli
    out = []
    for name, argv in jobs:
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = cli.main(argv)
        out.append((name, rc, err.getvalue()))
    return out


def _located(err: str, expected: tuple[str, str]) -> bool:
    where, text = expected
    return any(ln.startswith(where) and text in ln for ln in err.splitlines())


def _corpus(base: Path) -> list[tuple[Path, list[Path], tuple[str, str]]]:
    """(profile, files to pass, ("file:line:col: ", a substring of the message))."""
    shutil.copytree(PROFILES[0].parent, base)
    cases = []
    for src in PROFILES:
        head = src.read_text().splitlines()
        m = EXPECT.fullmatch(head[0])
        assert m, src.name
        gen = GENERATE.fullmatch(head[1]) if len(head) > 1 else None
        if gen:
            generate_nets_file(gen, base)
        target = base / src.name
        files = [target]
        companion = base / f"{src.stem}.companion.toml"
        if companion.exists():
            files.insert(0, companion)
        where = str((base / m.group("file")).absolute()) if m.group("file") else str(target)
        cases.append((target, files,
                      (f"{where}:{m.group('line')}:{m.group('col')}: ", m.group("text"))))
    return cases


def test_bad_profiles_exit_2_and_leave_the_kernel_byte_for_byte(netns_pair, tmp_path):
    ns, state = netns_pair.server, tmp_path / "state"
    good = write_profile(tmp_path / "good", "good", iface="srv0", members=500, rules=5)
    nw(ns, state, "apply", str(good))
    add_foreign(ns)
    cases = _corpus(tmp_path / "bad")
    # XDP must attach: a missing interface is bad input there (elsewhere a warning)
    unknown_if = write_profile(tmp_path / "ifs", "ifs", iface="nosuch0", backend="xdp",
                               members=4, untracked=True)
    before = saves(ns)
    assert "nw-" in before["iptables-legacy-save"] and "foreign-set" in before["ipset"]

    common = ["--state-dir", str(state)]
    jobs = []
    for target, files, _ in cases:
        for cmd in ("validate", "apply"):
            jobs.append((f"{cmd} {target.name}", [*common, cmd, *map(str, files)]))
    jobs.append(("apply unknown interface", [*common, "apply", str(unknown_if)]))
    results = netns.run_in_netns(ns, _run_all, jobs)

    assert len(cases) >= 40
    expected = {f"{c} {t.name}": e for t, _, e in cases for c in ("validate", "apply")}
    expected["apply unknown interface"] = (f"{unknown_if}:7:13: ",  # the interface value
                                           "unknown interface 'nosuch0'")
    for name, rc, err in results:
        assert rc == 2, f"{name}: exit {rc}\n{err}"
        assert _located(err, expected[name]), f"{name}: expected {expected[name]} in\n{err}"
    # and through real processes
    for _target, files, exp in cases[:2]:
        proc = nw(ns, state, "apply", *map(str, files), check=False)
        assert proc.returncode == 2 and _located(proc.stderr, exp)

    assert saves(ns) == before
    assert sorted(p.name for p in (state / "generations").iterdir()) == ["1"]
