"""Adversarial findings of issue 15 (items 4, 6, 10, 12, 13 and the low ones), each
reproduced against the real kernel in throwaway namespaces.

Ownership (item 4): a foreign object whose name merely starts like nodewall's
(`nw-…` ipset, `nw-custom` chain, an XDP program named `nw_…`) is not nodewall's:
apply, status and flush work around it and leave it exactly as it was."""
from __future__ import annotations

import os
import stat
import subprocess

import pytest

from tests.conftest import IS_ROOT, in_ns
from tests.helpers.safety_kit import NODEWALL, nw, status, write_profile

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(not IS_ROOT, reason="kernel test: needs root for namespaces")]


def _foreign_set_in_use(ns: str) -> None:
    """A foreign ipset named like nodewall's, used by a foreign iptables rule."""
    in_ns(ns, "ipset", "create", "nw-evil", "hash:ip")
    in_ns(ns, "ipset", "add", "nw-evil", "192.0.2.7")
    in_ns(ns, "iptables-legacy", "-A", "INPUT", "-m", "set", "--match-set", "nw-evil", "src",
          "-j", "ACCEPT")


def _foreign_chain(ns: str) -> None:
    in_ns(ns, "iptables-legacy", "-N", "nw-custom")
    in_ns(ns, "iptables-legacy", "-A", "nw-custom", "-s", "192.0.2.9", "-j", "DROP")
    in_ns(ns, "iptables-legacy", "-A", "INPUT", "-p", "udp", "--dport", "9", "-j", "nw-custom")


def _foreign_lines(ns: str) -> list[str]:
    save = in_ns(ns, "iptables-legacy-save").stdout.splitlines()
    keep = [ln for ln in save if "nw-evil" in ln or "nw-custom" in ln]
    return keep + [ln for ln in in_ns(ns, "ipset", "save", "nw-evil").stdout.splitlines()]


def test_foreign_nw_named_set_and_chain_do_not_wedge_and_survive(netns_pair, tmp_path):
    ns, state = netns_pair.server, tmp_path / "state"
    _foreign_set_in_use(ns)
    _foreign_chain(ns)
    before = _foreign_lines(ns)
    assert len(before) == 6
    a = write_profile(tmp_path, "a", iface="srv0", members=4, rules=2)
    b = write_profile(tmp_path, "b", iface="srv0", members=3, rules=1, variant=1)
    nw(ns, state, "apply", str(a))
    nw(ns, state, "apply", str(b))  # retires a's sets: the foreign one is not "stale"
    report = status(ns, state)
    assert report["generation"] == 2
    assert _foreign_lines(ns) == before
    nw(ns, state, "flush")
    assert _foreign_lines(ns) == before  # nw-custom not emptied, nw-evil not destroyed
    save = in_ns(ns, "iptables-legacy-save").stdout
    assert "nw-INPUT" not in save and "nw:" not in save
    sets = in_ns(ns, "ipset", "list", "-n").stdout.split()
    assert sets == ["nw-evil"]
    nw(ns, state, "apply", str(a))  # and nothing left half-done for the next command
    assert status(ns, state)["generation"] == 3


UNTRACKED_DENY = """
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

IMPOSTOR_XDP = """
#include <uapi/linux/bpf.h>
int nw_xdp(struct xdp_md *ctx) { return XDP_PASS; }
"""


def _attach_impostor(iface: str) -> int:
    """A foreign XDP program that carries nodewall's own program name."""
    import socket

    from bcc import BPF
    from nodewall.engine.dataplane.xdp import bpf_syscall as xdp_sys
    fn = BPF(text=IMPOSTOR_XDP).load_func("nw_xdp", BPF.XDP)
    idx = socket.if_nametoindex(iface)
    xdp_sys.xdp_attach(idx, fn.fd, xdp_sys.XDP_FLAGS_SKB_MODE)
    return xdp_sys.xdp_query(idx).skb_prog_id or xdp_sys.xdp_query(idx).prog_id


def _xdp_prog_id(ns: str, iface: str) -> int:
    from nodewall.engine.dataplane.xdp import bpf_syscall as xdp_sys
    from nodewall.engine.system import netns

    def query() -> int:
        import socket
        q = xdp_sys.xdp_query(socket.if_nametoindex(iface))
        return q.prog_id or q.skb_prog_id or q.drv_prog_id

    return netns.run_in_netns(ns, query)


@pytest.mark.slow
def test_a_foreign_xdp_program_named_like_nodewalls_is_never_replaced(netns_pair, tmp_path):
    from nodewall.engine.system import netns
    ns, state = netns_pair.server, tmp_path / "state"
    impostor = netns.run_in_netns(ns, _attach_impostor, "srv0")
    assert impostor > 0
    xdp = write_profile(tmp_path, "x", iface="srv0", members=4, backend="xdp",
                        extra=UNTRACKED_DENY)
    out = nw(ns, state, "apply", str(xdp), check=False)
    assert out.returncode == 7 and "Traceback" not in out.stderr  # a foreign object
    assert "nodewall does not own" in out.stderr and "xdp off" in out.stderr
    assert _xdp_prog_id(ns, "srv0") == impostor
    report = status(ns, state)
    assert any("is not nodewall's" in w for w in report["warnings"])
    assert [i["xdp_owned"] for i in report["interfaces"] if i["name"] == "srv0"] == [False]
    nw(ns, state, "flush")
    assert _xdp_prog_id(ns, "srv0") == impostor


def _deny_profile(d, name: str, netset_nets: str | None, rule_nets: str | None) -> str:
    lines = ["[settings]", 'backend = "iptables"', 'failsafe_inbound = ["tcp:22"]',
             "[[host_endpoints]]", 'name = "srv"', 'interface = "srv0"',
             'labels = { role = "srv" }']
    if netset_nets is not None:
        lines += ["[[network_sets]]", 'name = "everything"', 'labels = { k = "all" }',
                  f"nets = {netset_nets}"]
    lines += ["[[policies]]", 'name = "p"', "order = 10", 'selector = "all()"',
              'types = ["ingress"]']
    if netset_nets is not None:
        lines += ["  [[policies.ingress]]", '  action = "deny"',
                  "  source = { selector = 'k == \"all\"' }"]
    if rule_nets is not None:
        lines += ["  [[policies.ingress]]", '  action = "deny"', '  protocol = "udp"',
                  f"  source = {{ nets = {rule_nets} }}"]
    path = d / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _set_holding(ns: str, address: str) -> list[str]:
    names = in_ns(ns, "ipset", "list", "-n").stdout.split()
    return [n for n in names
            if in_ns(ns, "ipset", "test", n, address, check=False).returncode == 0]


@pytest.mark.parametrize("netset_nets,rule_nets", [
    ('["0.0.0.0/0"]', None),
    ('["::/0"]', None),
    ('["0.0.0.0/0", "::/0", "192.0.2.0/24"]', None),
    (None, '["::/0", "fd00::/8", "10.0.0.0/8", "192.0.2.0/24"]'),
    (None, '["0.0.0.0/0", "198.51.100.0/24", "2001:db8::/32"]'),
])
def test_what_validate_accepts_apply_applies(netset_nets, rule_nets, netns_pair, tmp_path):
    """Inline /0 members (an ipset hash:net cannot hold a /0) become two /1s."""
    ns, state = netns_pair.server, tmp_path / "state"
    path = _deny_profile(tmp_path, "p", netset_nets, rule_nets)
    checked = nw(ns, state, "validate", path, check=False)
    assert checked.returncode == 0, checked.stderr
    applied = nw(ns, state, "apply", path, check=False)
    assert applied.returncode == 0, applied.stderr
    families = (netset_nets or "") + (rule_nets or "")
    if "0.0.0.0/0" in families:
        assert _set_holding(ns, "203.0.113.9")  # any v4 address
    if "::/0" in families:
        assert _set_holding(ns, "2001:db8:ffff::9")
    assert nw(ns, state, "apply", "--check", path, check=False).returncode == 3


def test_a_scoped_address_is_refused_by_validate_and_apply(netns_pair, tmp_path):
    ns, state = netns_pair.server, tmp_path / "state"
    for name, netset, rule in (("set", '["fe80::1%eth0/128"]', None),
                               ("rule", None, '["fe80::1%srv0", "fd00::/8"]')):
        path = _deny_profile(tmp_path, name, netset, rule)
        for command in ("validate", "apply"):
            out = nw(ns, state, command, path, check=False)
            assert out.returncode == 2, out.stderr
            assert f"{path}:" in out.stderr and "scoped address" in out.stderr
    assert "nw-" not in in_ns(ns, "iptables-legacy-save").stdout


def test_a_fifo_nets_file_never_hangs_holding_the_lock(netns_pair, tmp_path):
    ns, state = netns_pair.server, tmp_path / "state"
    good = write_profile(tmp_path, "good", iface="srv0", members=3)
    fifo_dir = tmp_path / "fifo"
    bad = write_profile(fifo_dir, "bad", iface="srv0", members=3)
    (fifo_dir / "bad-nets.txt").unlink()
    os.mkfifo(fifo_dir / "bad-nets.txt")  # nobody ever writes to it
    out = nw(ns, state, "apply", str(bad), check=False, timeout=60)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "is a FIFO (named pipe), not a regular file" in out.stderr
    assert f"{bad}:" in out.stderr  # located at the nets_file line of the profile
    nw(ns, state, "apply", "--no-wait", str(good))  # the lock is free
    assert status(ns, state)["generation"] == 1


def test_the_confirm_hint_names_the_state_dir(netns_pair, tmp_path):
    ns, state = netns_pair.server, tmp_path / "state dir"
    out = nw(ns, state, "apply", "--confirm-timeout", "60",
             str(write_profile(tmp_path, "a", iface="srv0")))
    assert f"nodewall --netns {ns} --state-dir '{state}' confirm" in out.stdout
    shown = nw(ns, state, "status").stdout
    assert f"--state-dir '{state}' confirm" in shown
    nw(ns, state, "confirm")


def test_an_empty_profile_warns_that_it_removes_everything(netns_pair, tmp_path):
    ns, state = netns_pair.server, tmp_path / "state"
    nw(ns, state, "apply", str(write_profile(tmp_path, "a", iface="srv0", rules=2)))
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    out = nw(ns, state, "apply", str(empty))  # still allowed (the agent relies on it)
    assert "define(s) no host endpoint" in out.stderr and "generation 1" in out.stderr
    assert "nw-fi-srv0" not in in_ns(ns, "iptables-legacy-save").stdout


def test_no_inbound_failsafe_while_panic_is_on_warns(netns_pair, tmp_path):
    ns, state = netns_pair.server, tmp_path / "state"
    nw(ns, state, "apply", str(write_profile(tmp_path, "a", iface="srv0")))
    nw(ns, state, "panic", "on")
    closed = write_profile(tmp_path, "closed", iface="srv0", failsafe_in="[]")
    out = nw(ns, state, "apply", str(closed))
    assert "panic mode is on and failsafe_inbound = []" in out.stderr
    assert "ssh included" in out.stderr
    quiet = nw(ns, state, "apply", str(write_profile(tmp_path, "b", iface="srv0", rules=1)))
    assert "panic mode is on" not in quiet.stderr
    nw(ns, state, "panic", "off")


def test_status_as_a_user_is_a_clear_error(tmp_path):
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
              "env", "HOME=/tmp"]
    readable = subprocess.run([*nobody, "test", "-r", __file__], check=False)
    if readable.returncode != 0:
        pytest.skip("this checkout is not readable by the user nobody")
    out = subprocess.run([*nobody, *NODEWALL, "status"], capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "status reads the kernel's firewall" in out.stderr and "needs root" in out.stderr


def test_state_dir_and_generation_copies_are_private(netns_pair, tmp_path):
    ns, state = netns_pair.server, tmp_path / "fresh" / "state"
    path = write_profile(tmp_path, "a", iface="srv0", members=3)
    for secret in (path, tmp_path / "a-nets.txt"):
        secret.chmod(0o600)
    nw(ns, state, "apply", str(path))
    for p in [state, *state.rglob("*")]:
        mode = stat.S_IMODE(os.lstat(p).st_mode)
        assert mode & 0o077 == 0 if not p.is_dir() else mode == 0o700, f"{p}: {oct(mode)}"


def test_a_nodewall_chain_emptied_and_refilled_by_hand_is_repaired(netns_pair, tmp_path):
    """Ownership by name grammar still covers nodewall's own chains whatever they hold:
    `iptables -F nw-fi-srv0` plus a rule without nodewall's comment is drift."""
    ns, state = netns_pair.server, tmp_path / "state"
    nw(ns, state, "apply", str(write_profile(tmp_path, "a", iface="srv0", rules=2)))
    before = in_ns(ns, "iptables-legacy", "-S", "nw-fi-srv0").stdout
    in_ns(ns, "iptables-legacy", "-F", "nw-fi-srv0")
    in_ns(ns, "iptables-legacy", "-A", "nw-fi-srv0", "-j", "ACCEPT")
    assert any("nw-fi-srv0" in d for d in status(ns, state)["drift"])
    nw(ns, state, "apply", str(tmp_path / "a.toml"))
    assert in_ns(ns, "iptables-legacy", "-S", "nw-fi-srv0").stdout == before
    assert status(ns, state)["drift"] == []
