"""engine.lab: the demo lab with real Redis and real traffic.  Every test uses its own
prefix (nwt<hex>), never the user's demo lab ("nwlab")."""
from __future__ import annotations

import socket
import struct
import time
import uuid
from pathlib import Path

import pytest
from nodewall.engine.errors import EnvironmentProblem
from nodewall.engine.lab import lifecycle as lab
from nodewall.engine.lab import net as lab_net
from nodewall.engine.lab import traffic as lab_traffic
from nodewall.engine.observe import conntrack, links
from nodewall.engine.system import netns

from tests.conftest import IS_ROOT, in_ns, needs_root

WAIT_S = 30.0  # upper bound for "traffic shows up"; a pass is usually immediate


def _prefix() -> str:
    return f"nwt{uuid.uuid4().hex[:6]}"


def _wait_for(predicate, what: str):
    """Poll PREDICATE (bounded in time and count) until it returns something truthy."""
    deadline = time.monotonic() + WAIT_S
    for _ in range(int(WAIT_S * 10)):
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


@pytest.fixture
def lab_info():
    if not IS_ROOT:
        pytest.skip("kernel test: needs root to create network namespaces")
    prefix = _prefix()
    try:
        yield lab.lab_up(prefix, duration=300)
    finally:
        lab.lab_down(prefix)


# --- pure ----------------------------------------------------------------------------

def test_bad_prefix_is_refused():
    for bad in ("", "NW", "nw-lab", "x" * 11, "1abc"):
        with pytest.raises(EnvironmentProblem):
            lab.lab_status(bad)


def test_generator_refuses_targets_outside_the_lab():
    with pytest.raises(SystemExit):
        lab_traffic.Generator("192.0.2.1", lab_net.SERVER_V6, lab_net.BLOCKED_V4,
                              lab_net.BLOCKED_V6, 6379)
    with pytest.raises(SystemExit):
        lab_traffic.Generator(lab_net.SERVER_V4, "2001:db8::1", lab_net.BLOCKED_V4,
                              lab_net.BLOCKED_V6, 6379)


def test_generator_rejects_unbounded_arguments():
    with pytest.raises(SystemExit):
        lab_traffic.main(["--duration", "0"])
    with pytest.raises(SystemExit):
        lab_traffic.main(["--duration", "10", "--rate", "500"])


def test_resp_and_icmp_encoding():
    assert lab_traffic.resp("SET", "k", "vv") == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nvv\r\n"
    pkt = lab_traffic.echo_request(False, 0x1234, 7)
    assert pkt[0] == 8 and struct.unpack("!HH", pkt[4:8]) == (0x1234, 7)
    assert lab_traffic._checksum(pkt) == 0  # a correct checksum sums to zero
    assert lab_traffic.echo_request(True, 1, 1)[0] == 128


# --- kernel --------------------------------------------------------------------------

@needs_root
def test_lab_layout(lab_info):
    info = lab_info
    assert info.namespaces == (f"{info.prefix}-srv", f"{info.prefix}-cli")
    assert all(netns.exists(ns) for ns in info.namespaces)
    for ns in info.namespaces:  # both veth ends are eth0, so "eth0" profiles apply
        assert netns.run_in_netns(ns, netns.interface_exists, "eth0")
    srv = {i.name: i for i in netns.run_in_netns(info.server_ns, links.list_interfaces)}
    assert {"10.0.0.1/24", "fd00:77::1/64"} <= set(srv["eth0"].addresses)
    assert srv["lo"].state == "up" and srv["eth0"].state == "up"
    cli = {i.name: i for i in netns.run_in_netns(info.client_ns, links.list_interfaces)}
    assert {"10.0.0.2/24", "fd00:77::2/64", "203.0.113.7/32",
            "2001:db8:bad::7/128"} <= set(cli["eth0"].addresses)
    assert info.redis_pid and info.traffic_pid
    assert info.deadline > time.time()
    assert lab.lab_status(info.prefix) == info


@needs_root
def test_redis_answers_from_the_client(lab_info):
    for host in ("10.0.0.1", "fd00:77::1"):
        out = in_ns(lab_info.client_ns, "redis-cli", "-h", host, "-p", "6379", "PING",
                    timeout=20)
        assert out.stdout.strip() == "PONG"


@needs_root
def test_blocklisted_source_reaches_the_server_without_a_firewall(lab_info):
    def ping_from_blocked() -> bool:
        with socket.create_connection(("10.0.0.1", 6379), timeout=3,
                                      source_address=("203.0.113.7", 0)) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(16).startswith(b"+PONG")

    assert netns.run_in_netns(lab_info.client_ns, ping_from_blocked)


@needs_root
def test_traffic_reaches_the_server_interface(lab_info):
    def rx() -> int:
        infos = netns.run_in_netns(lab_info.server_ns, links.list_interfaces)
        return next(i.rx_packets for i in infos if i.name == "eth0")

    first = rx()
    _wait_for(lambda: rx() >= first + 50, "50 more packets on the server's eth0")


@needs_root
def test_conntrack_sees_lab_traffic(lab_info):
    ns = lab_info.server_ns
    _wait_for(lambda: netns.run_in_netns(ns, conntrack.conntrack_info).count >= 10,
              "10 conntrack entries in the server namespace")

    def sample_has_everyone():
        s = netns.run_in_netns(ns, conntrack.conntrack_sample)
        sources = {a for a, _ in s.top_sources}
        wanted = {"10.0.0.2", "203.0.113.7", "2001:db8:bad::7"}
        return s if wanted <= sources and s.top_dports else None

    s = _wait_for(sample_has_everyone, "client and blocklisted sources in the sample")
    assert s.top_dports[0][:2] == ("tcp", 6379)
    assert {"tcp", "udp"} <= {p for p, _ in s.by_protocol}


@needs_root
def test_lab_down_removes_everything():
    prefix = _prefix()
    info = lab.lab_up(prefix, duration=300)
    try:
        pids = [info.redis_pid, info.traffic_pid]
        assert all(pids)
        assert set(pids) <= set(lab_net.netns_pids(info.server_ns)
                                + lab_net.netns_pids(info.client_ns))
    finally:
        lab.lab_down(prefix)
    assert not any(netns.exists(ns) for ns in info.namespaces)
    assert not any(lab_net.alive(p) for p in pids)
    assert not Path(info.run_dir).exists()
    assert lab.lab_status(prefix) is None
    lab.lab_down(prefix)  # idempotent


@needs_root
def test_lab_up_again_rebuilds_cleanly_and_can_stay_quiet():
    prefix = _prefix()
    try:
        first = lab.lab_up(prefix, duration=300)
        second = lab.lab_up(prefix, duration=300, traffic=False)
        assert not lab_net.alive(first.redis_pid) and not lab_net.alive(first.traffic_pid)
        assert second.traffic_pid is None  # a quiet lab for tests that send their own
        assert second.redis_pid != first.redis_pid
        inside = lab_net.netns_pids(second.server_ns)
        assert second.redis_pid in inside and first.redis_pid not in inside
        out = in_ns(second.client_ns, "redis-cli", "-h", "10.0.0.1", "PING", timeout=20)
        assert out.stdout.strip() == "PONG"
    finally:
        lab.lab_down(prefix)
    assert lab.lab_status(prefix) is None


@needs_root
def test_traffic_generator_stops_by_itself():
    prefix = _prefix()
    try:
        info = lab.lab_up(prefix, duration=2)
        log = Path(info.run_dir) / "traffic.log"
        _wait_for(lambda: lab.lab_status(prefix).traffic_pid is None,
                  "the traffic generator to exit at its deadline")
        assert "lab_traffic done" in log.read_text()
        assert lab.lab_status(prefix).redis_pid  # Redis stays until lab down
    finally:
        lab.lab_down(prefix)


@needs_root
def test_lab_down_from_inside_the_lab_spares_the_caller():
    """`nodewall demo` runs inside the server namespace and tears the lab down there."""
    prefix = _prefix()
    try:
        info = lab.lab_up(prefix, duration=300, traffic=False)
        netns.run_in_netns(info.server_ns, lab.lab_down, prefix)  # the child survives it
        assert lab.lab_status(prefix) is None
    finally:
        lab.lab_down(prefix)


def test_lab_down_forgets_nodewall_state_of_its_namespaces(tmp_path):
    """Pins would keep a deleted namespace's XDP program and maps alive; the state dir
    would describe a kernel that no longer exists."""
    if not IS_ROOT:
        pytest.skip("kernel test: needs root to create network namespaces")
    from nodewall.engine.dataplane.ipsets.sync import RUN_ROOT
    from nodewall.engine.dataplane.xdp.maps import PIN_ROOT
    from nodewall.engine.safety.state_dir import default_state_dir
    prefix = f"nwt{uuid.uuid4().hex[:5]}"
    info = lab.lab_up(prefix, duration=30, traffic=False)
    made = [PIN_ROOT / info.server_ns, RUN_ROOT / info.server_ns,
            default_state_dir(info.server_ns)]
    try:
        for path in made:
            path.mkdir(parents=True, exist_ok=True)
    finally:
        lab.lab_down(prefix)
    assert [p for p in made if p.exists()] == []


def test_demo_never_replaces_a_running_lab_silently(lab_info):
    """`nodewall demo` with a lab already up: reuse keeps the very same lab (its
    Redis keeps its pid), quit leaves it alone, only "new" replaces it."""
    asked = []

    def answer(word):
        def choose(running):
            asked.append(running.server_ns)
            return word
        return choose

    info, started = lab.lab_for_demo(lab_info.prefix, answer("reuse"))
    assert asked == [lab_info.server_ns] and not started
    assert info.redis_pid == lab_info.redis_pid and lab.lab_status(lab_info.prefix) is not None
    info, started = lab.lab_for_demo(lab_info.prefix, answer("quit"))
    assert info is None and not started
    after = lab.lab_status(lab_info.prefix)
    assert after is not None and after.redis_pid == lab_info.redis_pid
    info, started = lab.lab_for_demo(lab_info.prefix, answer("new"))
    assert started and info.redis_pid != lab_info.redis_pid


def test_demo_starts_a_lab_without_asking_when_none_runs():
    if not IS_ROOT:
        pytest.skip("kernel test: needs root to create network namespaces")
    prefix = _prefix()
    try:
        info, started = lab.lab_for_demo(prefix, lambda running: pytest.fail("asked"))
        assert started and info is not None and lab.lab_status(prefix) is not None
    finally:
        lab.lab_down(prefix)
