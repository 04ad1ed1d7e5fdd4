"""`export calico`: YAML calicoctl would accept (the v3 field names, Calico's name
rules), and import(export(p)) gives the same profile data as p — for the shipped
profiles and for generated ones."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import tomlkit
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nodewall.engine.errors import InputErrors
from nodewall.engine.profile.calico.exporter import NAME_RE, POLICY_NAME_RE, export_calico
from nodewall.engine.profile.loader import load_profiles

from tests.conftest import REPO
from tests.helpers.calico_kit import import_profile, profile_data

NODEWALL = [sys.executable, "-m", "nodewall.engine.cli.main"]
SHIPPED = sorted((REPO / "profiles").glob("*.toml"))

# The v3 API's field names (projectcalico.org/v3 types), per place in a document.
CALICO_FIELDS = {
    "HostEndpoint": {"node", "interfaceName", "expectedIPs", "profiles", "ports"},
    "GlobalNetworkSet": {"nets", "allowedEgressDomains"},
    "GlobalNetworkPolicy": {"tier", "order", "selector", "types", "ingress", "egress",
                            "doNotTrack", "preDNAT", "applyOnForward",
                            "serviceAccountSelector", "namespaceSelector",
                            "performanceHints"},
    "FelixConfiguration": {"failsafeInboundHostPorts", "failsafeOutboundHostPorts"},
    "rule": {"action", "ipVersion", "protocol", "icmp", "notProtocol", "notICMP", "source",
             "destination", "http", "metadata"},
    "entity": {"nets", "selector", "namespaceSelector", "services", "ports", "notNets",
               "notSelector", "notPorts", "serviceAccounts"},
}


def round_trip(tmp_path: Path, profile_paths: list[Path]) -> None:
    original = load_profiles(profile_paths)
    exported = tmp_path / "exported.yaml"
    exported.write_text(export_calico(original, "node-1"))
    check_calico_yaml(exported.read_text())
    again, warnings = import_profile(tmp_path, exported)
    assert [w for w in warnings if "warning: skipped" in w] == []
    assert profile_data(again) == profile_data(original)


def check_calico_yaml(text: str) -> None:
    for doc in yaml.safe_load_all(text):
        assert doc["apiVersion"] == "projectcalico.org/v3"
        kind, name = doc["kind"], doc["metadata"]["name"]
        assert set(doc) == {"apiVersion", "kind", "metadata", "spec"}
        assert (POLICY_NAME_RE if kind == "GlobalNetworkPolicy" else NAME_RE).fullmatch(name)
        assert set(doc["spec"]) <= CALICO_FIELDS[kind]
        for direction in ("ingress", "egress"):
            for rule in doc["spec"].get(direction, ()):
                assert set(rule) <= CALICO_FIELDS["rule"]
                assert rule["action"] in ("Allow", "Deny", "Log", "Pass")
                for side in ("source", "destination"):
                    assert set(rule.get(side, {})) <= CALICO_FIELDS["entity"]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_profiles_round_trip(tmp_path, path):
    round_trip(tmp_path, [path])


def test_a_nets_file_is_exported_inline(tmp_path):
    text = export_calico(load_profiles([REPO / "profiles/redis-host.toml"]), "n")
    (blocklist,) = [d for d in yaml.safe_load_all(text) if d["kind"] == "GlobalNetworkSet"]
    file_nets = [ln.split("#")[0].strip() for ln in
                 (REPO / "profiles/blocklist.txt").read_text().splitlines()]
    assert {n for n in file_nets if n} <= set(blocklist["spec"]["nets"])


def test_settings_travel_in_a_per_node_felix_configuration(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('[settings]\nbackend = "nftables"\nxdp_mode = "generic"\n'
                    'max_set_entries = 1000\nfailsafe_inbound = []\n')
    docs = list(yaml.safe_load_all(export_calico(load_profiles([path]), "node-7")))
    (felix,) = docs
    assert felix["kind"] == "FelixConfiguration" and felix["metadata"]["name"] == "node.node-7"
    assert felix["spec"] == {"failsafeInboundHostPorts": []}
    assert felix["metadata"]["annotations"] == {
        "nodewall/backend": "nftables", "nodewall/xdp-mode": "generic",
        "nodewall/max-set-entries": "1000"}
    round_trip(tmp_path, [path])


def test_default_settings_export_no_felix_configuration(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('[[network_sets]]\nname = "s"\nnets = ["10.0.0.0/8"]\n')
    assert [d["kind"] for d in yaml.safe_load_all(export_calico(load_profiles([path]), "n"))] \
        == ["GlobalNetworkSet"]
    narrowed = load_profiles([REPO / "profiles/redis-tracked.toml"])  # failsafe_inbound set
    kinds = [d["kind"] for d in yaml.safe_load_all(export_calico(narrowed, "n"))]
    assert kinds[0] == "FelixConfiguration"


@pytest.mark.parametrize("toml,message", [
    ('[[host_endpoints]]\nname = "Up_Link"\ninterface = "eth0"\n',
     "'Up_Link' is not a valid Calico resource name"),
    ('[[policies]]\nname = "a.b.c"\n', "'a.b.c' is not a valid GlobalNetworkPolicy name"),
    (('[[policies]]\nname = "p"\n[[policies.ingress]]\naction = "allow"\n'
     'protocol = "udplite"\ndestination = { ports = [5] }\n'),
     "Calico matches ports only with TCP, UDP or SCTP"),
    ('[[policies]]\nname = "p"\n[[policies.ingress]]\naction = "allow"\nprotocol = 0\n',
     "protocol 0 has no Calico form"),
])
def test_what_calico_cannot_hold_is_a_located_error(tmp_path, toml, message):
    path = tmp_path / "p.toml"
    path.write_text(toml)
    with pytest.raises(InputErrors) as info:
        export_calico(load_profiles([path]), "n")
    (err,) = info.value.errors
    assert err.loc.file == str(path) and message in err.message


def test_cli_export_then_import(tmp_path):
    out = tmp_path / "redis.yaml"
    proc = subprocess.run([*NODEWALL, "export", "calico", str(REPO / "profiles/redis-host.toml"),
                           "-o", str(out), "--node", "redis-1"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "node: redis-1" in out.read_text()
    back = subprocess.run([*NODEWALL, "import", "calico", str(out)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert back.returncode == 0, back.stderr
    assert 'name = "redis-untracked"' in back.stdout


# ------------------------------------------------------------------ generated

NETS = ["10.0.0.0/8", "192.0.2.0/24", "198.51.100.7/32"]
SELECTORS = ["all()", 'role == "db"', "has(zone) && zone in {\"a\", \"b\"}",
             '!has(x) || x starts with "y"', "global()"]


@st.composite
def rules(draw, ingress_only_nets: bool = False) -> dict:
    rule: dict = {"action": draw(st.sampled_from(["allow", "deny", "log", "pass"]))}
    protocol = draw(st.sampled_from([None, "tcp", "udp", "sctp", "icmp", "icmpv6", 6, 200]))
    if protocol is not None:
        rule["protocol"] = protocol
    if draw(st.booleans()):
        rule["not_protocol"] = draw(st.sampled_from(["udplite", 47]))
    if protocol in ("icmp", "icmpv6") and draw(st.booleans()):
        rule["icmp"] = {"type": draw(st.integers(0, 254)), "code": draw(st.integers(0, 255))}
        rule["ip_version"] = 4 if protocol == "icmp" else 6
    for side in ("source", "destination"):
        entity: dict = {}
        if protocol in ("tcp", "udp", "sctp") and draw(st.booleans()):
            entity["ports"] = draw(st.lists(st.sampled_from([22, 80, "1000:2000", 6379]),
                                            min_size=1, max_size=3, unique=True))
        if protocol not in ("icmpv6",) and draw(st.booleans()):
            entity["nets" if draw(st.booleans()) else "not_nets"] = draw(
                st.lists(st.sampled_from(NETS), min_size=1, max_size=2, unique=True))
        if draw(st.booleans()):
            entity["selector" if draw(st.booleans()) else "not_selector"] = draw(
                st.sampled_from(SELECTORS))
        if entity:
            rule[side] = entity
    return rule


@st.composite
def profiles(draw) -> str:
    doc = tomlkit.document()
    doc["host_endpoints"] = [{"name": "uplink", "interface": "eth0",
                              "labels": {"role": "db", "zone": "a"}}]
    doc["network_sets"] = [{"name": "set-1", "labels": {"x": "yz"}, "nets": NETS[:2]}]
    policies = []
    for i in range(draw(st.integers(1, 3))):
        tier = draw(st.sampled_from(["normal", "untracked", "prednat", "forward"]))
        policy: dict = {"name": f"p-{i}", "selector": draw(st.sampled_from(SELECTORS))}
        order = draw(st.sampled_from([None, 0, 10, 2.5]))
        if order is not None:
            policy["order"] = order
        if tier != "normal":
            policy["apply_on_forward"] = True
        if tier == "untracked":
            policy["do_not_track"] = True
        if tier == "prednat":
            policy["pre_dnat"] = True
        policy["ingress"] = draw(st.lists(rules(), max_size=3))
        if tier != "prednat":
            policy["egress"] = draw(st.lists(rules(), max_size=2))
        if draw(st.booleans()) and (policy["ingress"] or tier != "prednat"):
            policy["types"] = ["ingress"] + (["egress"] if policy.get("egress") else [])
        policies.append({k: v for k, v in policy.items() if v != []})
    doc["policies"] = policies
    return tomlkit.dumps(doc)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=profiles())
def test_generated_profiles_round_trip(tmp_path_factory, text):
    tmp = tmp_path_factory.mktemp("gen")
    path = tmp / "gen.toml"
    path.write_text(text)
    round_trip(tmp, [path])
