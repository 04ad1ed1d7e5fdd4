"""Coexistence (issue 5, item 8): foreign chains and rules in every table (v4 and v6),
a foreign ipset and a foreign XDP program stay exactly as they were through apply
(XDP backend), agent, panic and flush; status reports the foreign XDP program, foreign
rules that use nodewall's objects, and which iptables nodewall writes."""
from __future__ import annotations

import pytest
from nodewall.engine.system import netns

from tests.conftest import IS_ROOT, in_ns
from tests.helpers.safety_kit import add_foreign, nw, saves, status, write_profile

pytestmark = [pytest.mark.kernel, pytest.mark.slow,
              pytest.mark.skipif(not IS_ROOT, reason="kernel test: needs root for namespaces")]

FOREIGN_XDP = """
#include <uapi/linux/bpf.h>
int fw_other(struct xdp_md *ctx) { return XDP_PASS; }
"""

UNTRACKED = """
[[policies]]
name = "drop-untracked"
order = 5
selector = "all()"
do_not_track = true
apply_on_forward = true
types = ["ingress"]
  [[policies.ingress]]
  action = "deny"
  source = { nets = ["203.0.113.0/24"] }
"""


def _attach_foreign(iface: str) -> None:
    import socket

    from bcc import BPF
    from nodewall.engine.dataplane.xdp import bpf_syscall as xdp_sys
    fn = BPF(text=FOREIGN_XDP).load_func("fw_other", BPF.XDP)
    xdp_sys.xdp_attach(socket.if_nametoindex(iface), fn.fd, xdp_sys.XDP_FLAGS_SKB_MODE)


def _foreign_part(s: dict[str, str]) -> dict[str, list[str]]:
    out = {}
    for key, text in s.items():
        if key == "bpftool":
            out[key] = [ln for ln in text.splitlines() if "fx0" in ln]
        else:
            out[key] = [ln for ln in text.splitlines()
                        if "nw-" not in ln and "nw:" not in ln and not ln.startswith(":")]
    return out


def test_foreign_objects_untouched_and_reported(netns_pair, tmp_path):
    ns, state = netns_pair.server, tmp_path / "state"
    in_ns(ns, "ip", "link", "add", "fx0", "type", "veth", "peer", "name", "fx1")
    in_ns(ns, "ip", "link", "set", "fx0", "up")
    in_ns(ns, "ip", "link", "set", "fx1", "up")
    netns.run_in_netns(ns, _attach_foreign, "fx0")
    add_foreign(ns)
    original = _foreign_part(saves(ns))
    assert original["bpftool"] and any("FOREIGN-" in ln for ln in original["ipset"]
                                       + original["iptables-legacy-save"])

    profiles = tmp_path / "profiles"
    profile = write_profile(profiles, "p", iface="srv0", members=100, rules=3,
                            backend="auto", extra=UNTRACKED)
    nw(ns, state, "apply", str(profile))
    assert _foreign_part(saves(ns)) == original
    report = status(ns, state)
    assert report["drift"] == []
    assert any(i["name"] == "srv0" and i["xdp_owned"] for i in report["interfaces"])
    assert any("XDP on fx0: program fw_other is not nodewall's" in w
               for w in report["warnings"])
    assert report["writes"].startswith("iptables-legacy")
    assert report["iptables_mode"] in ("legacy", "mixed")  # the foreign rules are legacy
    text = nw(ns, state, "status").stdout
    assert "nodewall writes iptables-legacy" in text

    # a foreign rule that uses a nodewall set is reported (and left alone)
    nwset = next(s for s in in_ns(ns, "ipset", "list", "-n").stdout.split()
                 if s.startswith("nw-n4-"))
    in_ns(ns, "iptables-legacy", "-t", "filter", "-A", "FOREIGN-INPUT", "-m", "set",
          "--match-set", nwset, "src", "-j", "DROP")
    report = status(ns, state)
    assert any("uses a nodewall ipset" in w and nwset in w for w in report["warnings"])
    in_ns(ns, "iptables-legacy", "-t", "filter", "-D", "FOREIGN-INPUT", "-m", "set",
          "--match-set", nwset, "src", "-j", "DROP")
    # a foreign NOTRACK: this profile allows nothing untracked, so filter accepts no
    # untracked packet and the rule is nobody's business but its owner's
    notrack = ["-t", "raw", "FOREIGN-PREROUTING", "-p", "udp", "--dport", "53", "-j", "CT",
               "--notrack"]
    in_ns(ns, "iptables-legacy", notrack[0], notrack[1], "-A", *notrack[2:])
    assert not any("NOTRACKs" in w for w in status(ns, state)["warnings"])
    in_ns(ns, "iptables-legacy", notrack[0], notrack[1], "-D", *notrack[2:])

    nw(ns, state, "agent", "--once", "--profiles", str(profiles))
    nw(ns, state, "panic", "on")
    assert _foreign_part(saves(ns)) == original
    nw(ns, state, "panic", "off")
    nw(ns, state, "flush")
    after = saves(ns)
    assert _foreign_part(after) == original
    assert "nw-" not in after["iptables-legacy-save"] + after["ip6tables-legacy-save"]
    assert "nw-" not in after["ipset"]
