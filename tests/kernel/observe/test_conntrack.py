"""engine.conntrack: parsers (pure), then the real table of throwaway namespaces with
real TCP connections from the client namespace to a listener in the server one."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from nodewall.engine.errors import EnvironmentProblem
from nodewall.engine.lab import net as lab_net
from nodewall.engine.observe import conntrack
from nodewall.engine.system import netns, procfs

from tests.conftest import needs_root, sh

PORT = 7300

PROC_V4 = ("ipv4     2 tcp      6 431999 ESTABLISHED src=10.77.0.2 dst=10.77.0.1 sport=40000 "
           "dport=7300 src=10.77.0.1 dst=10.77.0.2 sport=7300 dport=40000 [ASSURED] mark=0 "
           "zone=0 use=2")
PROC_V6 = ("ipv6     10 udp      17 29 src=fd77:0000:0000:0000:0000:0000:0000:0002 "
           "dst=fd77:0000:0000:0000:0000:0000:0000:0001 sport=5000 dport=53 [UNREPLIED] "
           "src=fd77:0000:0000:0000:0000:0000:0000:0001 "
           "dst=fd77:0000:0000:0000:0000:0000:0000:0002 sport=53 dport=5000 mark=0 zone=0 use=2")
PROC_ICMP = ("ipv4     2 icmp     1 29 src=10.77.0.2 dst=10.77.0.1 type=8 code=0 id=7 "
             "src=10.77.0.1 dst=10.77.0.2 type=0 code=0 id=7 mark=0 zone=0 use=2")


# --- pure ----------------------------------------------------------------------------

def test_parse_entry_tcp_takes_the_original_direction():
    e = conntrack.parse_entry(PROC_V4)
    assert e == conntrack.Entry("ipv4", "tcp", "ESTABLISHED", "10.77.0.2", "10.77.0.1",
                                40000, 7300)


def test_parse_entry_ipv6_is_compressed_and_stateless_protocols_have_no_state():
    e = conntrack.parse_entry(PROC_V6)
    assert (e.protocol, e.state, e.src, e.dst, e.dport) == ("udp", None, "fd77::2", "fd77::1", 53)
    icmp = conntrack.parse_entry(PROC_ICMP)
    assert (icmp.protocol, icmp.sport, icmp.dport, icmp.state) == ("icmp", None, None, None)


def test_parse_entry_rejects_garbage():
    assert conntrack.parse_entry("") is None
    assert conntrack.parse_entry("conntrack v1.4.7 (conntrack-tools): 3 flow entries") is None


def test_parse_cpu_stats_by_header_name():
    text = ("entries  clashres found new invalid ignore delete chainlength insert "
            "insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete "
            "search_restart\n"
            "00000003  00000000 0000000a 00000000 00000002 00000000 00000000 00000000 00000001 "
            "00000004 00000005 00000006 00000000  00000000 00000000 00000000 00000010\n"
            "00000003  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 "
            "00000000 00000000 00000000 00000000  00000000 00000000 00000000 00000000\n")
    rows = conntrack.parse_cpu_stats(text, [0, 2])
    assert [r.cpu for r in rows] == [0, 2]
    r = rows[0]
    assert (r.found, r.invalid, r.insert, r.insert_failed, r.drop, r.early_drop,
            r.search_restart) == (10, 2, 1, 4, 5, 6, 16)


def test_summarise_ranks_and_hints():
    flows = [conntrack.parse_entry(PROC_V4)] * 30 + [conntrack.parse_entry(PROC_ICMP)] * 5
    s = conntrack.summarise(flows, limit=100, truncated=False, source="test")
    assert s.sampled == 35
    assert s.by_protocol[0] == ("tcp", 30)
    assert s.top_sources[0] == ("10.77.0.2", 35)
    assert s.top_dports[0] == ("tcp", 7300, 30)
    assert [(h.protocol, h.port) for h in s.untracked_hints] == [("tcp", 7300)]
    assert "do_not_track" in s.untracked_hints[0].advice
    assert s.to_json()["top_dports"][0] == {"protocol": "tcp", "port": 7300, "entries": 30}


def test_summarise_gives_no_hint_for_a_thin_sample():
    s = conntrack.summarise([conntrack.parse_entry(PROC_V4)] * 3, limit=100,
                            truncated=False, source="test")
    assert s.untracked_hints == ()


def test_flush_refuses_the_starting_namespace():
    with pytest.raises(EnvironmentProblem):
        conntrack.conntrack_flush()


# --- kernel --------------------------------------------------------------------------

LISTENER = f"""
import socket, time
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", {PORT})); s.listen(512)
print("ready", flush=True)
time.sleep(60)
"""

CLIENT = f"""
import socket, sys, time
conns = []
for i in range(int(sys.argv[2])):
    conns.append(socket.create_connection((sys.argv[1], {PORT}), timeout=5))
print("ready", flush=True)
time.sleep(60)
"""


def _spawn(ns: str, code: str, *args: str) -> subprocess.Popen:
    proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", code, *args],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # the scripts print "ready" or die (pipe closes)
    if line.strip() != "ready":
        proc.kill()
        raise AssertionError(f"helper in {ns} did not start: {line!r}")
    return proc


@pytest.fixture
def tracked_pair(netns_pair):
    lab_net.enable_conntrack(netns_pair.server)
    procs: list[subprocess.Popen] = []
    try:
        procs.append(_spawn(netns_pair.server, LISTENER))
        yield netns_pair, procs
    finally:
        for p in procs:
            p.kill()
            p.wait(timeout=10)


def _connect(pair, procs, n: int, address: str | None = None) -> None:
    procs.append(_spawn(pair.client, CLIENT, address or pair.server_ip, str(n)))


@needs_root
def test_count_rises_with_connections(tracked_pair):
    pair, procs = tracked_pair
    before = netns.run_in_netns(pair.server, conntrack.conntrack_info)
    _connect(pair, procs, 20)
    _connect(pair, procs, 5, pair.server_ip6)
    after = netns.run_in_netns(pair.server, conntrack.conntrack_info)
    assert after.count >= before.count + 25
    assert after.max > 0
    # the host's table is not the namespace's: the listener saw nothing of it
    assert before.count == 0


@needs_root
def test_sample_shows_client_and_port(tracked_pair):
    pair, procs = tracked_pair
    _connect(pair, procs, 30)
    s = netns.run_in_netns(pair.server, conntrack.conntrack_sample)
    assert s.source in ("procfs", "conntrack-tool")
    assert s.sampled >= 30 and not s.truncated
    assert s.top_sources[0] == (pair.client_ip, s.top_sources[0][1])
    assert s.top_destinations[0][0] == pair.server_ip
    assert s.top_dports[0][:2] == ("tcp", PORT)
    assert dict(s.by_protocol)["tcp"] >= 30
    assert dict(s.tcp_states).get("ESTABLISHED", 0) >= 30
    assert ("tcp", PORT) in [(h.protocol, h.port) for h in s.untracked_hints]


def _sample_without_procfs(limit: int):
    conntrack.PROC_TABLE = Path("/nonexistent/nf_conntrack")  # forked child only
    return conntrack.conntrack_sample(limit)


@needs_root
def test_sample_falls_back_to_the_conntrack_tool(tracked_pair):
    pair, procs = tracked_pair
    if shutil.which("conntrack") is None:
        pytest.skip("conntrack-tools not installed")
    _connect(pair, procs, 12)
    s = netns.run_in_netns(pair.server, _sample_without_procfs, 2000)
    assert s.source == "conntrack-tool"
    assert s.sampled >= 12 and s.top_dports[0][:2] == ("tcp", PORT)
    assert s.top_sources[0][0] == pair.client_ip
    bounded = netns.run_in_netns(pair.server, _sample_without_procfs, 4)
    assert (bounded.source, bounded.sampled, bounded.truncated) == ("conntrack-tool", 4, True)


@needs_root
def test_sample_is_bounded(tracked_pair):
    pair, procs = tracked_pair
    _connect(pair, procs, 20)
    s = netns.run_in_netns(pair.server, conntrack.conntrack_sample, 5)
    assert s.sampled == 5 and s.limit == 5 and s.truncated


@needs_root
def test_per_cpu_has_one_row_per_cpu(tracked_pair):
    pair, procs = tracked_pair
    _connect(pair, procs, 3)
    info = netns.run_in_netns(pair.server, conntrack.conntrack_info)
    cpus = procfs.possible_cpus()
    assert [c.cpu for c in info.per_cpu] == list(cpus)
    assert len(info.per_cpu) >= 1


@needs_root
def test_flush_empties_the_namespace_table(tracked_pair):
    pair, procs = tracked_pair
    _connect(pair, procs, 10)
    assert netns.run_in_netns(pair.server, conntrack.conntrack_info).count >= 10
    netns.run_in_netns(pair.server, conntrack.conntrack_flush)
    # idle connections send nothing, so nothing is re-created
    assert netns.run_in_netns(pair.server, conntrack.conntrack_info).count == 0


@needs_root
def test_untracked_namespace_counts_nothing(netns_pair):
    """Without a rule needing conntrack the namespace tracks nothing (Linux >= 4.10):
    the reason the lab calls enable_conntrack()."""
    sh("ip", "netns", "exec", netns_pair.client, "ping", "-c", "2", "-i", "0.2", "-W", "2",
       netns_pair.server_ip)
    assert netns.run_in_netns(netns_pair.server, conntrack.conntrack_info).count == 0
    lab_net.enable_conntrack(netns_pair.server)
    sh("ip", "netns", "exec", netns_pair.client, "ping", "-c", "2", "-i", "0.2", "-W", "2",
       netns_pair.server_ip)
    assert netns.run_in_netns(netns_pair.server, conntrack.conntrack_info).count >= 1
