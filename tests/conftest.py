"""Shared fixtures.  Kernel tests run only as root, inside network namespaces that
the fixture creates and always deletes; they never touch the host namespace."""
from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
IS_ROOT = os.geteuid() == 0

needs_root = pytest.mark.skipif(
    not IS_ROOT, reason="kernel test: needs root to create network namespaces")


def sh(*args: str, check: bool = True, input: str | None = None,
       timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), check=check, text=True, capture_output=True,
                          input=input, timeout=timeout)


def in_ns(ns: str, *args: str, check: bool = True, timeout: float = 60,
          input: str | None = None) -> subprocess.CompletedProcess:
    return sh("ip", "netns", "exec", ns, *args, check=check, timeout=timeout, input=input)


class NetnsPair:
    """Two namespaces joined by a veth pair: `server` (veth `srv0`, 10.77.0.1/24,
    fd77::1/64) and `client` (veth `cli0`, 10.77.0.2/24, fd77::2/64)."""

    def __init__(self, tag: str):
        self.server = f"nwt-{tag}-s"
        self.client = f"nwt-{tag}-c"
        self.server_if, self.client_if = "srv0", "cli0"
        self.server_ip, self.client_ip = "10.77.0.1", "10.77.0.2"
        self.server_ip6, self.client_ip6 = "fd77::1", "fd77::2"

    def create(self) -> None:
        sh("ip", "netns", "add", self.server)
        sh("ip", "netns", "add", self.client)
        sh("ip", "-n", self.server, "link", "add", self.server_if, "type", "veth",
           "peer", "name", self.client_if, "netns", self.client)
        for ns, ifname, v4, v6 in ((self.server, self.server_if, self.server_ip, self.server_ip6),
                                   (self.client, self.client_if, self.client_ip, self.client_ip6)):
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "addr", "add", f"{v4}/24", "dev", ifname)
            sh("ip", "-n", ns, "addr", "add", f"{v6}/64", "dev", ifname, "nodad")
            sh("ip", "-n", ns, "link", "set", ifname, "up")

    def add_client_address(self, cidr: str) -> None:
        """Extra source address on the client (e.g. one the profile denies)."""
        sh("ip", "-n", self.client, "addr", "add", cidr, "dev", self.client_if,
           *(["nodad"] if ":" in cidr else []))

    def delete(self) -> None:
        for ns in (self.server, self.client):
            drop_namespace(ns)


def drop_namespace(ns: str) -> None:
    """Kill what still runs inside, delete the namespace, and drop what nodewall kept
    for it outside (bpffs pins, ipset manifests, default state dir)."""
    from nodewall.engine.lab.lifecycle import forget_namespace
    for pid in sh("ip", "netns", "pids", ns, check=False).stdout.split():
        sh("kill", "-9", pid, check=False)
    sh("ip", "netns", "del", ns, check=False)
    forget_namespace(ns)


@pytest.fixture
def netns_pair():
    if not IS_ROOT:
        pytest.skip("kernel test: needs root to create network namespaces")
    pair = NetnsPair(uuid.uuid4().hex[:6])
    try:
        pair.create()
        yield pair
    finally:
        pair.delete()


@pytest.fixture
def netns_one():
    """A single empty namespace with lo up."""
    if not IS_ROOT:
        pytest.skip("kernel test: needs root to create network namespaces")
    name = f"nwt-{uuid.uuid4().hex[:6]}"
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "-n", name, "link", "set", "lo", "up")
        yield name
    finally:
        drop_namespace(name)
