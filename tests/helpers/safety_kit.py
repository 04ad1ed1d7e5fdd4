"""Shared helpers of the kernel safety tests (issue 5): the CLI in a namespace, kernel
fingerprints, foreign objects, profiles of any size.  No tests here: the helpers'
own check is tests/kernel/safety/test_safety_kit.py."""
from __future__ import annotations

import ipaddress
import json
import re
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import in_ns

NODEWALL = [sys.executable, "-m", "nodewall.engine.cli.main"]


def nw_cmd(ns: str, state: Path, *args: str) -> list[str]:
    return [*NODEWALL, "--netns", ns, "--state-dir", str(state), *args]


def nw(ns: str, state: Path, *args: str, check: bool = True,
       timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run(nw_cmd(ns, state, *args), capture_output=True, text=True,
                          timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"nodewall {' '.join(args)} exited {proc.returncode}:\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def status(ns: str, state: Path) -> dict:
    return json.loads(nw(ns, state, "status", "--output", "json").stdout)


def saves(ns: str) -> dict[str, str]:
    """Everything the kernel holds that nodewall could touch, as the tools print it.
    Dropped: comment lines (timestamps) and the built-in chains' policy counters
    (`:INPUT ACCEPT [3:228]` counts packets, e.g. IPv6 neighbour discovery on the
    veth; not configuration).  Nothing else is normalised."""
    out = {}
    for tool in ("iptables-legacy-save", "ip6tables-legacy-save"):
        text = in_ns(ns, tool).stdout
        out[tool] = "\n".join(_COUNTS.sub("[]", ln) if ln.startswith(":") else ln
                              for ln in text.splitlines() if not ln.startswith("#"))
    out["ipset"] = in_ns(ns, "ipset", "save").stdout
    out["bpftool"] = in_ns(ns, "bpftool", "net", "show").stdout
    return out


_COUNTS = re.compile(r"\[\d+:\d+\]")
_INITVAL = re.compile(r" initval 0x[0-9a-f]+")  # a random hash seed per set creation


def fingerprint(ns: str) -> str:
    """nodewall's part of the kernel: nw- chains/rules/hooks (counters dropped) and
    nw- sets with their members (sorted: the hash order is not stable), and its nft
    table (stateless: no counters)."""
    lines = []
    for tool in ("iptables-legacy-save", "ip6tables-legacy-save"):
        table = ""
        for ln in in_ns(ns, tool).stdout.splitlines():
            if ln.startswith("*"):
                table = ln
            elif "nw-" in ln or "nw:" in ln:
                lines.append(f"{tool} {table} {_COUNTS.sub('', ln)}")
    sets = [_INITVAL.sub("", ln) for ln in in_ns(ns, "ipset", "save").stdout.splitlines()
            if " nw-" in ln]
    nft = in_ns(ns, "nft", "-s", "list", "table", "inet", "nodewall", check=False)
    table = nft.stdout.splitlines() if nft.returncode == 0 else []  # -s: no counters
    return "\n".join(lines + sorted(sets) + table)


def write_profile(d: Path, name: str, *, iface: str, members: int = 0, rules: int = 0,
                  variant: int = 0, extra: str = "", failsafe_in: str = '["tcp:22"]',
                  failsafe_out: str = "[]", backend: str = "iptables",
                  untracked: bool = False) -> Path:
    """A profile with `members` CIDRs in a nets_file network set that is denied, and
    `rules` allow rules; `variant` makes everything different.  `untracked`: the deny
    is do_not_track (what the XDP backend accelerates)."""
    d.mkdir(parents=True, exist_ok=True)
    lines = ["[settings]", f'backend = "{backend}"', f"failsafe_inbound = {failsafe_in}",
             f"failsafe_outbound = {failsafe_out}",
             "[[host_endpoints]]", 'name = "srv"', f'interface = "{iface}"',
             'labels = { role = "srv" }']
    if members:
        nets = d / f"{name}-nets.txt"
        base = int(ipaddress.ip_address(f"{30 + variant}.0.0.0"))
        nets.write_text("".join(f"{ipaddress.ip_address(base + 4 * i)}/30\n"
                                for i in range(members)))
        lines += ["[[network_sets]]", f'name = "big{variant}"', 'labels = { list = "big" }',
                  f'nets_file = "{nets.name}"',
                  "[[policies]]", 'name = "deny-big"', "order = 10", 'selector = "all()"',
                  *(["do_not_track = true", "apply_on_forward = true"] if untracked else []),
                  'types = ["ingress"]', "  [[policies.ingress]]", '  action = "deny"',
                  "  source = { selector = 'list == \"big\"' }"]
    if rules:
        lines += ["[[policies]]", f'name = "ports{variant}"', "order = 20",
                  'selector = "all()"']
        for i in range(rules):
            lines += ["  [[policies.ingress]]", '  action = "allow"', '  protocol = "tcp"',
                      f'  source = {{ nets = ["10.{variant % 250}.{i % 250}.0/24"] }}',
                      f"  destination = {{ ports = [{1000 + variant * 1000 + i}] }}"]
    path = d / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def add_foreign(ns: str) -> None:
    """Foreign chains and rules in every table (v4 and v6) and a foreign ipset."""
    in_ns(ns, "ipset", "create", "foreign-set", "hash:ip")
    in_ns(ns, "ipset", "add", "foreign-set", "192.0.2.1")
    for tool, src in (("iptables-legacy", "192.0.2.1"), ("ip6tables-legacy", "2001:db8::1")):
        for table, chain in (("raw", "PREROUTING"), ("raw", "OUTPUT"), ("mangle", "PREROUTING"),
                             ("filter", "INPUT"), ("filter", "OUTPUT"), ("filter", "FORWARD"),
                             ("nat", "POSTROUTING")):
            foreign = f"FOREIGN-{chain}"
            in_ns(ns, tool, "-t", table, "-N", foreign)
            in_ns(ns, tool, "-t", table, "-A", foreign, "-s", src, "-j", "RETURN")
            in_ns(ns, tool, "-t", table, "-A", chain, "-p", "udp", "--dport", "9", "-j", foreign)


def until(cond, limit: float = 30.0) -> bool:
    """Poll `cond` every 50 ms for up to `limit` seconds; whether it came true."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return False
