"""Panic mode on the nftables packet filter: the panic chains go into nodewall's nft
table, failsafe traffic alone passes, status sees no drift, and `panic off` / `flush`
end it (real TCP over a veth pair)."""
from __future__ import annotations

import pytest

from tests.conftest import IS_ROOT, in_ns
from tests.helpers.safety_kit import nw, status, write_profile
from tests.kernel.safety.test_safety_panic import ALLOW_ALL, _reach, listeners  # noqa: F401

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(not IS_ROOT, reason="kernel test: needs root for namespaces")]


def test_panic_on_nftables(listeners, tmp_path):  # noqa: F811
    pair = listeners
    ns, state = pair.server, tmp_path / "state"
    profile = write_profile(tmp_path, "p", iface="srv0", extra=ALLOW_ALL, backend="nftables",
                            failsafe_in='["tcp:22"]', failsafe_out='["tcp:6443"]')
    nw(ns, state, "apply", str(profile))
    everything = {"in 22": True, "in 2222": True, "out 6443": True, "out 7000": True}
    assert _reach(pair) == everything

    nw(ns, state, "panic", "on")
    assert _reach(pair) == {"in 22": True, "in 2222": False, "out 6443": True,
                            "out 7000": False}
    report = status(ns, state)
    assert report["panic"] is True and report["drift"] == []
    assert any(r["policy"] == "(panic)" and r["packets"] > 0 for r in report["rules"])
    assert "nw-" not in in_ns(ns, "iptables-legacy-save").stdout  # all of it in nft

    nw(ns, state, "panic", "off")
    assert _reach(pair) == everything and status(ns, state)["drift"] == []
    nw(ns, state, "flush")
    assert in_ns(ns, "nft", "list", "table", "inet", "nodewall", check=False).returncode != 0
