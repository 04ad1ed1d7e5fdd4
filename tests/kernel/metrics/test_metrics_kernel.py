"""The exporter in a lab namespace: `nodewall --netns S metrics` binds the server
namespace's loopback and is scraped from inside it (`ip netns exec`).  Real TCP
connections from the client namespace raise the rule counters; the conntrack gauge
is the namespace's count; a scrape while an apply runs answers with the old or the
new generation; SIGTERM ends it with 0.  The agent serves the same endpoint with its
apply metrics."""
from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.conftest import IS_ROOT, in_ns
from tests.helpers.metrics_kit import samples, value
from tests.helpers.safety_kit import nw, nw_cmd, until, write_profile

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(not IS_ROOT, reason="kernel test: needs root for namespaces")]

PORT = 7377
CONNECTIONS = 12
LISTEN = "127.0.0.1:9617"

ALLOW_PORT = f"""
[[policies]]
name = "metrics-probe"
order = 30
selector = "all()"
types = ["ingress"]
  [[policies.ingress]]
  action = "allow"
  protocol = "tcp"
  source = {{ nets = ["10.77.0.0/24"] }}
  destination = {{ ports = [{PORT}] }}
"""

LISTENER = f"""
import socket, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", {PORT})); s.listen(128)
print("ready", flush=True)
held = []
s.settimeout(90)
for _ in range({CONNECTIONS}):
    c, _ = s.accept(); held.append(c); c.recv(64)
time.sleep(90)
"""

CLIENT = f"""
import socket, sys, time
held = []
for i in range({CONNECTIONS}):
    c = socket.create_connection((sys.argv[1], {PORT}), timeout=5)
    c.sendall(b"x" * 32); held.append(c)
print("ready", flush=True)
time.sleep(90)
"""

SCRAPE = """
import sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen("http://%s" + sys.argv[1], timeout=60) as r:
        code, body = r.status, r.read().decode()
except urllib.error.HTTPError as e:
    code, body = e.code, e.read().decode()
except OSError as e:
    code, body = 0, str(e)
sys.stdout.write(f"{code}\\n{body}")
"""


def get(ns: str, path: str, listen: str = LISTEN) -> tuple[int, str]:
    """GET http://LISTEN/PATH from inside namespace NS: (status, body); 0 when refused."""
    out = in_ns(ns, sys.executable, "-c", SCRAPE % listen, path, timeout=90).stdout
    code, _, body = out.partition("\n")
    return int(code), body


def spawn(ns: str, code: str, *args: str) -> subprocess.Popen:
    proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", code, *args],
                            stdout=subprocess.PIPE, text=True)
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        proc.wait(timeout=10)
        raise AssertionError(f"helper in {ns} did not start")
    return proc


def start_exporter(ns: str, state: Path, *args: str) -> subprocess.Popen:
    proc = subprocess.Popen(nw_cmd(ns, state, *args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    if not until(lambda: proc.poll() is not None or get(ns, "/healthz")[0] == 200, 30):
        proc.kill()
        raise AssertionError("the exporter did not answer /healthz")
    assert proc.poll() is None, proc.communicate()[1]
    return proc


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def conntrack_count(ns: str) -> int:
    return int(in_ns(ns, "cat", "/proc/sys/net/netfilter/nf_conntrack_count").stdout)


def probe_packets(text: str) -> float:
    return sum(s.value for s in samples(text) if s.name == "nodewall_rule_packets_total"
               and s.labels["policy"] == "metrics-probe" and s.labels["direction"] == "ingress")


@pytest.fixture
def exporter(netns_pair, tmp_path):
    state = tmp_path / "state"
    proc = start_exporter(netns_pair.server, state, "metrics", "--listen", LISTEN)
    try:
        yield netns_pair, state, proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_rule_counters_rise_with_real_traffic_and_conntrack_matches(exporter, tmp_path):
    pair, state, proc = exporter
    ns = pair.server
    code, body = get(ns, "/readyz")
    assert (code, body) == (503, "not ready: no generation is applied\n")
    profile = write_profile(tmp_path / "p", "m", iface=pair.server_if, rules=3,
                            extra=ALLOW_PORT)
    nw(ns, state, "apply", str(profile))
    assert get(ns, "/readyz") == (200, "ready: generation 1 in place\n")

    code, before = get(ns, "/metrics")
    assert code == 200 and value(before, "nodewall_scrape_success") == 1
    assert value(before, "nodewall_generation") == 1
    assert probe_packets(before) == 0

    helpers = [spawn(ns, LISTENER)]
    try:
        helpers.append(spawn(pair.client, CLIENT, pair.server_ip))
        low = conntrack_count(ns)
        code, after = get(ns, "/metrics")
        high = conntrack_count(ns)
    finally:
        for h in helpers:
            h.kill()
            h.wait(timeout=10)
    assert code == 200
    # every connection's first packet at least went through the allow rule
    assert probe_packets(after) >= CONNECTIONS
    entries = value(after, "nodewall_conntrack_entries")
    assert low >= CONNECTIONS and min(low, high) <= entries <= max(low, high)
    assert value(after, "nodewall_conntrack_max") == int(
        in_ns(ns, "cat", "/proc/sys/net/netfilter/nf_conntrack_max").stdout)
    cpus = {s.labels["cpu"] for s in samples(after)
            if s.name == "nodewall_conntrack_insert_failed_total"}
    assert cpus and cpus == {s.labels["cpu"] for s in samples(after)
                             if s.name == "nodewall_conntrack_drops_total"}
    assert {s.labels["kind"]: s.value for s in samples(after)
            if s.name == "nodewall_drift_objects"} == \
        {"chain": 0, "hook": 0, "ipset": 0, "xdp": 0}

    assert stop(proc) == 0


def test_scrapes_while_an_apply_runs_see_the_old_or_the_new_generation(exporter, tmp_path):
    pair, state, proc = exporter
    ns = pair.server
    small = write_profile(tmp_path / "p", "a", iface=pair.server_if, rules=2)
    nw(ns, state, "apply", str(small))
    big = write_profile(tmp_path / "p", "b", iface=pair.server_if, rules=40, members=30000,
                        variant=1)
    answers: list[tuple[int, str]] = []
    applying = subprocess.Popen(nw_cmd(ns, state, "apply", str(big)), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    scraper = threading.Thread(target=lambda: [
        answers.append(get(ns, "/metrics")) for _ in range(200) if applying.poll() is None])
    scraper.start()
    _, err = applying.communicate(timeout=300)
    scraper.join(timeout=300)
    assert applying.returncode == 0, err
    answers.append(get(ns, "/metrics"))

    assert len(answers) >= 2
    generations = []
    for code, text in answers:
        assert code == 200
        assert value(text, "nodewall_scrape_success") == 1
        generations.append(value(text, "nodewall_generation"))
        if value(text, "nodewall_transaction_in_flight") == 0:
            assert {s.value for s in samples(text) if s.name == "nodewall_drift_objects"} == {0}
    assert set(generations) <= {1, 2} and generations[-1] == 2
    assert generations == sorted(generations)  # never back to the old one
    assert stop(proc) == 0


def test_the_agent_serves_its_apply_metrics(netns_pair, tmp_path):
    ns = netns_pair.server
    state = tmp_path / "state"
    profiles = tmp_path / "profiles"
    write_profile(profiles, "m", iface=netns_pair.server_if, rules=2)
    listen = "127.0.0.1:9618"
    proc = subprocess.Popen(nw_cmd(ns, state, "agent", "--profiles", str(profiles),
                                   "--interval", "1", "--metrics-listen", listen),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert until(lambda: proc.poll() is not None or get(ns, "/readyz", listen)[0] == 200,
                     60), get(ns, "/readyz", listen)
        code, text = get(ns, "/metrics", listen)
        assert code == 200 and value(text, "nodewall_generation") == 1
        assert value(text, "nodewall_applies_total", result="applied") == 1
        assert value(text, "nodewall_apply_duration_seconds_count") >= 1
        assert value(text, "nodewall_applies_total", result="failed") == 0
        assert stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


XDP_PROFILE = """[settings]
backend = "xdp"
xdp_mode = "generic"
failsafe_inbound = ["tcp:22"]
failsafe_outbound = []

[[host_endpoints]]
name = "srv"
interface = "srv0"
labels = { hep = "srv" }

[[network_sets]]
name = "deny"
labels = { list = "drop" }
nets = ["10.77.0.99/32"]

[[policies]]
name = "drop-listed"
order = 10
selector = "all()"
do_not_track = true
apply_on_forward = true
types = ["ingress"]

  [[policies.ingress]]
  action = "deny"
  source = { selector = 'list == "drop"' }
"""

SEND_UDP = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 0))
for _ in range(int(sys.argv[3])):
    s.sendto(b"x" * 20, (sys.argv[2], 9999))
"""


def test_xdp_verdicts_and_xdp_rule_counters_rise_with_dropped_packets(netns_pair, tmp_path):
    from nodewall.engine.system import netns

    from tests.helpers.xdp_kit import flush_xdp

    ns = netns_pair.server
    netns_pair.add_client_address("10.77.0.99/24")
    state = tmp_path / "state"
    profile = tmp_path / "xdp.toml"
    profile.write_text(XDP_PROFILE)
    proc = start_exporter(ns, state, "metrics", "--listen", LISTEN)
    try:
        nw(ns, state, "apply", str(profile))
        _, before = get(ns, "/metrics")
        in_ns(netns_pair.client, sys.executable, "-c", SEND_UDP, "10.77.0.99",
              netns_pair.server_ip, "25")
        code, after = get(ns, "/metrics")
        assert code == 200
        denied = value(after, "nodewall_xdp_packets_total", action="deny")
        assert denied - (value(before, "nodewall_xdp_packets_total", action="deny") or 0) >= 25
        xdp_rule = [s for s in samples(after) if s.name == "nodewall_rule_packets_total"
                    and s.labels["backend"] == "xdp" and s.labels["policy"] == "drop-listed"]
        assert len(xdp_rule) == 1 and xdp_rule[0].labels["action"] == "deny"
        assert xdp_rule[0].value >= 25
        assert value(after, "nodewall_drift_objects", kind="xdp") == 0
        assert stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        nw(ns, state, "flush", check=False)
        netns.run_in_netns(ns, flush_xdp)
