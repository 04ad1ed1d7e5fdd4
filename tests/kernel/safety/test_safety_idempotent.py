"""Plans depend on content, not on paths or history (issue 15): after an apply, the
same profiles named by another path (relative, absolute, through `..`, through a
symlinked directory, copied elsewhere), or after panic on/off, are 'nothing to do'
(apply --check exits 3) on the iptables, XDP and nftables backends."""
from __future__ import annotations

import os
import shutil

import pytest

from tests.conftest import IS_ROOT
from tests.helpers.safety_kit import nw, write_profile

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(not IS_ROOT, reason="kernel test: needs root for namespaces")]

UNTRACKED = """
[[policies]]
name = "fast"
order = 5
selector = "all()"
do_not_track = true
apply_on_forward = true
  [[policies.ingress]]
  action = "deny"
  source = { selector = 'list == "big"' }
  [[policies.ingress]]
  action = "allow"
  protocol = "tcp"
  source = { nets = ["10.9.0.0/16"] }
  destination = { ports = [6379] }
  [[policies.egress]]
  action = "allow"
  protocol = "tcp"
  destination = { nets = ["10.9.0.0/16"] }
  source = { ports = [6379] }
"""


def _names_of(profile):
    """The same file by five names: relative (run from its folder), absolute, through
    `..`, through a symlinked folder, and a copy elsewhere."""
    folder = profile.parent
    link = folder.parent / "linked"
    link.symlink_to(folder)
    copy = folder.parent / "copy"
    shutil.copytree(folder, copy)
    return [profile.name, str(profile), str(folder / ".." / folder.name / profile.name),
            str(link / profile.name), str(copy / profile.name)]


@pytest.mark.parametrize("backend", ["iptables", "xdp", "nftables"])
def test_nothing_to_do_from_any_path_and_after_panic(netns_pair, tmp_path, backend):
    ns, state = netns_pair.server, tmp_path / "state"
    profile = write_profile(tmp_path / "p", "x", iface="srv0", members=40, rules=2,
                            backend=backend, extra=UNTRACKED)
    nw(ns, state, "apply", str(profile))
    here = os.getcwd()
    os.chdir(profile.parent)
    try:
        for name in _names_of(profile):
            check = nw(ns, state, "apply", "--check", name, check=False)
            assert check.returncode == 3, (name, check.stdout, check.stderr)
        nw(ns, state, "panic", "on")
        nw(ns, state, "panic", "off")
        for name in (profile.name, str(profile)):
            check = nw(ns, state, "apply", "--check", name, check=False)
            assert check.returncode == 3, ("after panic", name, check.stdout)
            assert nw(ns, state, "diff", name).stdout.startswith("no changes\n")
        gens = sorted((state / "generations").iterdir())
        assert len(gens) == 1  # no identical generation was written on the way
    finally:
        os.chdir(here)
