"""The safety tests' helpers checked themselves: a fingerprint that cannot tell two
kernels apart would make every "old or new" assertion vacuous."""
from __future__ import annotations

import pytest

from tests.conftest import IS_ROOT, in_ns
from tests.helpers.safety_kit import fingerprint, nw, write_profile

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(not IS_ROOT, reason="kernel test: needs root for namespaces")]


def test_fingerprint_tells_generations_apart(netns_one, tmp_path):
    ns = netns_one
    in_ns(ns, "ip", "link", "add", "srv0", "type", "veth", "peer", "name", "x0")
    empty = fingerprint(ns)
    a = write_profile(tmp_path, "a", iface="srv0", members=50, rules=3, variant=1)
    b = write_profile(tmp_path, "b", iface="srv0", members=50, rules=3, variant=2)
    nw(ns, tmp_path / "st", "apply", str(a))
    fa = fingerprint(ns)
    nw(ns, tmp_path / "st", "apply", str(b))
    fb = fingerprint(ns)
    assert len({empty, fa, fb}) == 3
    assert "nw-" in fa and "add nw-" in fb
    nw(ns, tmp_path / "st", "apply", str(a))
    assert fingerprint(ns) == fa
