"""XDP in front of an nftables backstop (`backend = "xdp"`, `packet_filter =
"nftables"`), through the CLI in a throwaway lab, with real packets: the denied
source is dropped by XDP before the backstop sees it, the untracked Redis flow
passes and leaves conntrack empty, failsafe tcp:22 passes from a denied source, and
nothing lands in legacy xtables or ipsets."""
from __future__ import annotations

import shutil
import sys

import pytest

from tests.conftest import IS_ROOT, REPO, in_ns
from tests.kernel.cli.test_cli_e2e import (
    _nw_lines,
    conntrack_count,
    lab,  # noqa: F401  (fixture)
    nw,
    redis_ping,
    rule_hits,
    status,
)
from tests.kernel.nftables.test_nft_e2e import nodewall_table

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(not IS_ROOT, reason="kernel test: needs root for namespaces")]

# "refused": the SYN reached the server's stack (nothing listens on 22 in the lab);
# "timeout": something dropped it on the way
PROBE = ("import socket,sys; s=socket.socket(); s.settimeout(1.5); s.bind((sys.argv[1], 0))\n"
         "try:\n    s.connect((sys.argv[2], int(sys.argv[3]))); print('connected')\n"
         "except ConnectionRefusedError:\n    print('refused')\n"
         "except OSError:\n    print('timeout')\n")


def _probe(lab_info, src: str, port: int) -> str:
    return in_ns(lab_info.client_ns, sys.executable, "-c", PROBE, src, "10.0.0.1", str(port),
                 check=False, timeout=10).stdout.strip()


def _backstop_profile(tmp_path):
    text = (REPO / "profiles" / "redis-host.toml").read_text()
    text = text.replace('backend = "auto"', 'backend = "xdp"\npacket_filter = "nftables"', 1)
    text = text.replace('xdp_mode = "auto"', 'xdp_mode = "generic"', 1)
    assert 'packet_filter = "nftables"' in text
    shutil.copy(REPO / "profiles" / "blocklist.txt", tmp_path / "blocklist.txt")
    path = tmp_path / "xdp-nft.toml"
    path.write_text(text)
    return path


def test_xdp_with_an_nftables_backstop(lab, tmp_path):  # noqa: F811
    state = tmp_path / "state"
    ns = lab.server_ns
    profile = _backstop_profile(tmp_path)
    try:
        nw(lab, state, "apply", str(profile))
        assert nodewall_table(ns)
        assert _nw_lines(ns) == ""  # no legacy chain, no ipset
        assert "xdp" in in_ns(ns, "ip", "link", "show", "eth0").stdout

        assert _probe(lab, "203.0.113.7", 6379) == "timeout"  # denied source
        assert _probe(lab, "203.0.113.7", 22) == "refused"  # failsafe, before the deny
        in_ns(ns, "conntrack", "-F", check=False)
        for _ in range(5):
            assert redis_ping(lab) == "PONG"
        assert conntrack_count(ns) == 0  # untracked in the nft backstop's raw chain

        report = status(lab, state)
        assert report["drift"] == []
        assert rule_hits(report, "drop-blocklist", "ingress", 0, "xdp") >= 1
        assert rule_hits(report, "drop-blocklist", "ingress", 0, "raw") == 0  # XDP first
        assert rule_hits(report, "redis-untracked", "ingress", 0, "raw") >= 5
    finally:
        nw(lab, state, "flush")
    assert nodewall_table(ns) == [] and _nw_lines(ns) == ""
    assert "xdp" not in in_ns(ns, "ip", "link", "show", "eth0").stdout
