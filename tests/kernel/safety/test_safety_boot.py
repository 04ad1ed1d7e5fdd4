"""Boot and headless (issue 5, item 7): the shipped boot unit's command, run in a
namespace, applies the saved profiles; `apply`'s documented exit codes: 0 applied,
1 failed and rolled back, 2 bad input, 3 nothing to do with --check."""
from __future__ import annotations

import configparser
import shlex

import pytest

from tests.conftest import IS_ROOT, REPO, in_ns
from tests.helpers.safety_kit import fingerprint, nw, status, write_profile

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(not IS_ROOT, reason="kernel test: needs root for namespaces")]

UNIT = REPO / "engine" / "systemd" / "nodewall.service"


def test_boot_unit_command_applies_saved_profiles(netns_pair, tmp_path):
    ns, state = netns_pair.server, tmp_path / "state"
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.read(UNIT)
    args = shlex.split(cp["Service"]["ExecStart"])[1:]
    saved = tmp_path / "etc-nodewall-profiles"
    write_profile(saved, "node", iface="srv0", members=50, rules=2)
    args[args.index("/etc/nodewall/profiles")] = str(saved)
    first = nw(ns, state, *args)
    assert "applied generation 1" in first.stderr
    assert status(ns, state)["generation"] == 1
    again = nw(ns, state, *args)  # a second boot of the same node: nothing to do
    assert "in place: generation 1" in again.stderr


def test_apply_exit_codes(netns_pair, tmp_path):
    ns, state = netns_pair.server, tmp_path / "state"
    a = write_profile(tmp_path, "a", iface="srv0", members=10, rules=2, variant=1)
    b = write_profile(tmp_path, "b", iface="*", members=10, rules=0, variant=2)
    bad = tmp_path / "bad.toml"
    bad.write_text("[settings]\nbackend = 3\n")
    assert nw(ns, state, "apply", "--check", str(a), check=False).returncode == 0
    assert nw(ns, state, "apply", str(a), check=False).returncode == 0
    assert nw(ns, state, "apply", "--check", str(a), check=False).returncode == 3
    assert nw(ns, state, "apply", str(bad), check=False).returncode == 2
    # b has no nw-fi-srv0; a rule nodewall does not own jumps into it: b is refused
    in_ns(ns, "iptables-legacy", "-N", "SOMEONE")
    in_ns(ns, "iptables-legacy", "-A", "SOMEONE", "-j", "nw-fi-srv0")
    before = fingerprint(ns)
    failed = nw(ns, state, "apply", str(b), check=False)
    assert failed.returncode == 7  # refused: a foreign rule is in the way
    assert "SOMEONE rule 1 -> nw-fi-srv0" in failed.stderr and "hint:" in failed.stderr
    assert fingerprint(ns) == before and status(ns, state)["generation"] == 1
