"""`import calico`: every mapping from projectcalico.org/v3 YAML to the profile model,
and every construct nodewall cannot express, as an error at its YAML line or, with
skip_unsupported, a warning naming it."""
from __future__ import annotations

import math
import subprocess
import sys

import pytest
from nodewall.engine.errors import InputErrors
from nodewall.engine.profile.calico.importer import import_calico
from nodewall.engine.profile.model import EntityMatch, IcmpMatch, PortRange

from tests.conftest import REPO
from tests.helpers.calico_kit import import_profile, write_yaml

NODEWALL = [sys.executable, "-m", "nodewall.engine.cli.main"]

HEADER = "apiVersion: projectcalico.org/v3\n"

EVERYTHING = """
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata:
  name: uplink
  labels: {role: db, zone: a}
spec:
  node: n1
  interfaceName: eth0
  expectedIPs: [192.0.2.10, "2001:db8::10"]
---
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: every-interface}
spec: {node: n1, interfaceName: "*"}
---
apiVersion: projectcalico.org/v3
kind: List
items:
- apiVersion: projectcalico.org/v3
  kind: GlobalNetworkSet
  metadata: {name: clients, labels: {set: clients}}
  spec: {nets: [10.0.0.0/8, "fd00::/64", 192.0.2.1]}
- apiVersion: projectcalico.org/v3
  kind: GlobalNetworkPolicy
  metadata: {name: untracked}
  spec:
    order: 10
    selector: role == 'db'
    types: [Ingress, Egress]
    doNotTrack: true
    applyOnForward: true
    ingress:
    - action: Allow
      protocol: TCP
      source: {selector: set == 'clients', notNets: [10.9.0.0/16]}
      destination: {ports: [6379, "7000:7010"], notPorts: [7005]}
    egress:
    - action: Allow
      protocol: tcp
      source: {ports: [6379]}
      destination: {notSelector: "set == 'other'", nets: [10.0.0.0/8]}
- apiVersion: projectcalico.org/v3
  kind: GlobalNetworkPolicy
  metadata: {name: prednat}
  spec:
    order: 20.5
    selector: has(zone)
    preDNAT: true
    applyOnForward: true
    ingress:
    - {action: Deny, protocol: UDP, destination: {ports: [53]}, ipVersion: 4}
- apiVersion: projectcalico.org/v3
  kind: GlobalNetworkPolicy
  metadata: {name: tracked}
  spec:
    selector: all()
    ingress:
    - {action: Log, protocol: 6}
    - {action: Pass, protocol: 200, notProtocol: SCTP}
    - {action: Allow, protocol: ICMP, icmp: {type: 8, code: 0}, notICMP: {type: 3}}
    - {action: Allow, protocol: ICMPv6, ipVersion: 6}
    - {action: Deny, notProtocol: UDPLite, source: {nets: [203.0.113.0/24]}}
---
apiVersion: projectcalico.org/v3
kind: FelixConfiguration
metadata: {name: node.n1}
spec:
  failsafeInboundHostPorts: [{protocol: TCP, port: 22}, {protocol: UDP, port: 68}]
  failsafeOutboundHostPorts: [{protocol: UDP, port: 53, net: 10.0.0.0/8}]
"""


@pytest.fixture
def everything(tmp_path):
    return import_profile(tmp_path, write_yaml(tmp_path, EVERYTHING))[0]


def test_host_endpoints(everything):
    uplink, star = everything.host_endpoints
    assert (uplink.name, uplink.interface, uplink.expected_ips, dict(uplink.labels)) == (
        "uplink", "eth0", ("192.0.2.10", "2001:db8::10"), {"role": "db", "zone": "a"})
    assert (star.name, star.interface, star.expected_ips) == ("every-interface", "*", ())


def test_network_sets(everything):
    (clients,) = everything.network_sets
    assert clients.name == "clients" and dict(clients.labels) == {"set": "clients"}
    assert clients.nets == ("10.0.0.0/8", "fd00::/64", "192.0.2.1/32")


def test_policy_fields(everything):
    by_name = {p.name: p for p in everything.policies}
    untracked, prednat, tracked = by_name["untracked"], by_name["prednat"], by_name["tracked"]
    assert (untracked.order, untracked.selector, untracked.types) == (
        10, 'role == "db"', ("ingress", "egress"))
    assert untracked.do_not_track and untracked.apply_on_forward and not untracked.pre_dnat
    assert prednat.order == 20.5 and prednat.pre_dnat and prednat.types == ("ingress",)
    assert math.isinf(tracked.order) and tracked.selector == "all()"
    assert [p.name for p in everything.policies] == ["untracked", "prednat", "tracked"]


def test_rule_entities(everything):
    untracked = next(p for p in everything.policies if p.name == "untracked")
    (ingress,), (egress,) = untracked.ingress, untracked.egress
    assert (ingress.action, ingress.protocol) == ("allow", "tcp")
    assert ingress.source == EntityMatch(selector='set == "clients"',
                                         not_nets=("10.9.0.0/16",), loc=ingress.source.loc)
    assert ingress.destination.ports == (PortRange(6379, 6379), PortRange(7000, 7010))
    assert ingress.destination.not_ports == (PortRange(7005, 7005),)
    assert egress.protocol == "tcp" and egress.source.ports == (PortRange(6379, 6379),)
    assert egress.destination.not_selector == 'set == "other"'
    assert egress.destination.nets == ("10.0.0.0/8",)


def test_rule_actions_protocols_icmp_ip_version(everything):
    by_name = {p.name: p for p in everything.policies}
    (prednat_rule,) = by_name["prednat"].ingress
    assert (prednat_rule.action, prednat_rule.protocol, prednat_rule.ip_version) == (
        "deny", "udp", 4)
    log, pass_, icmp, icmp6, deny = by_name["tracked"].ingress
    assert (log.action, log.protocol) == ("log", "tcp")  # protocol number 6
    assert (pass_.action, pass_.protocol, pass_.not_protocol) == ("pass", "200", "sctp")
    assert icmp.icmp == IcmpMatch(8, 0) and icmp.not_icmp == IcmpMatch(3, None)
    assert (icmp6.protocol, icmp6.ip_version) == ("icmpv6", 6)
    assert (deny.action, deny.not_protocol, deny.source.nets) == (
        "deny", "udplite", ("203.0.113.0/24",))


def test_felix_failsafe_ports(everything):
    s = everything.settings
    assert [str(f) for f in s.failsafe_inbound] == ["tcp:22", "udp:68"]
    assert [str(f) for f in s.failsafe_outbound] == ["udp:53@10.0.0.0/8"]


def test_without_felix_configuration_failsafes_are_felix_defaults(tmp_path):
    profile, warnings = import_profile(tmp_path, REPO / "tests/data/calico/redis-host.yaml")
    assert "tcp:22" in [str(f) for f in profile.settings.failsafe_inbound]
    assert len(profile.settings.failsafe_inbound) == 9 and warnings == []


def test_several_files_make_one_profile(tmp_path):
    a = write_yaml(tmp_path, HEADER + "kind: GlobalNetworkSet\nmetadata: {name: a}\n"
                   "spec: {nets: [10.0.0.0/8]}\n", "a.yaml")
    b = write_yaml(tmp_path, HEADER + "kind: GlobalNetworkSet\nmetadata: {name: b}\n"
                   "spec: {nets: [10.1.0.0/16]}\n", "b.yaml")
    profile, _ = import_profile(tmp_path, a, b)
    assert [s.name for s in profile.network_sets] == ["a", "b"]


# ------------------------------------------------------------------ unsupported

GNP = HEADER + "kind: GlobalNetworkPolicy\nmetadata: {name: p}\nspec:\n"
RULE = GNP + "  ingress:\n  - action: Allow\n    protocol: TCP\n"

UNSUPPORTED = [
    # (yaml, line, what the message names, what the warning says was skipped)
    (HEADER + "kind: NetworkPolicy\nmetadata: {name: p, namespace: x}\n", 2,
     "kind NetworkPolicy is namespaced", "NetworkPolicy resource"),
    (HEADER + "kind: NetworkSet\nmetadata: {name: s, namespace: x}\n", 2,
     "kind NetworkSet is namespaced", "NetworkSet resource"),
    (HEADER + "kind: StagedGlobalNetworkPolicy\nmetadata: {name: p}\n", 2,
     "kind StagedGlobalNetworkPolicy", "StagedGlobalNetworkPolicy resource"),
    (HEADER + "kind: WorkloadEndpoint\nmetadata: {name: w}\n", 2,
     "kind WorkloadEndpoint (workload endpoints", "WorkloadEndpoint resource"),
    (HEADER + "kind: Profile\nmetadata: {name: w}\n", 2, "kind Profile", "Profile resource"),
    (HEADER + "kind: GlobalNetworkPolicy\nmetadata:\n  name: p\n  namespace: x\n", 5,
     "metadata.namespace", "GlobalNetworkPolicy resource"),
    (GNP + "  serviceAccountSelector: has(x)\n", 5, "'serviceAccountSelector'",
     "GlobalNetworkPolicy p"),
    (GNP + "  namespaceSelector: has(x)\n", 5, "'namespaceSelector' in a GlobalNetworkPolicy",
     "GlobalNetworkPolicy p"),
    (GNP + "  tier: security\n", 5, "tier 'security'", "GlobalNetworkPolicy p"),
    (RULE + "    http: {methods: [GET]}\n", 8, "'http' in a rule (HTTP", "rule"),
    (RULE + "    destination: {ports: [redis]}\n", 8, "named port 'redis'", "rule"),
    (RULE + "    source:\n      serviceAccounts: {names: [a]}\n", 9,
     "'serviceAccounts' in a rule's source", "rule"),
    (RULE + "    source:\n      namespaceSelector: all()\n", 9,
     "'namespaceSelector' in a rule's source", "rule"),
    (RULE + "    destination:\n      services: {name: s, namespace: n}\n", 9,
     "'services' in a rule's destination", "rule"),
    (HEADER + "kind: HostEndpoint\nmetadata: {name: h}\nspec:\n  interfaceName: eth0\n"
     "  profiles: [default]\n", 6, "'profiles' in a HostEndpoint", "field"),
    (HEADER + "kind: HostEndpoint\nmetadata: {name: h}\nspec:\n  interfaceName: eth0\n"
     "  ports: [{name: web, port: 80, protocol: TCP}]\n", 6, "'ports' in a HostEndpoint",
     "field"),
    (HEADER + "kind: HostEndpoint\nmetadata: {name: h}\nspec:\n  expectedIPs: [10.0.0.1]\n",
     4, "HostEndpoint h without interfaceName", "HostEndpoint h"),
    (HEADER + "kind: GlobalNetworkSet\nmetadata: {name: s}\nspec:\n"
     "  allowedEgressDomains: [example.com]\n", 5, "'allowedEgressDomains'", "field"),
    (HEADER + "kind: FelixConfiguration\nmetadata: {name: default}\nspec:\n"
     "  bpfEnabled: true\n", 5, "'bpfEnabled' in a FelixConfiguration", "field"),
]


@pytest.mark.parametrize("text,line,what,skipped", UNSUPPORTED,
                         ids=[u[2].split(" (")[0] for u in UNSUPPORTED])
def test_unsupported_is_an_error_at_its_line(tmp_path, text, line, what, skipped):
    path = write_yaml(tmp_path, text)
    with pytest.raises(InputErrors) as info:
        import_calico([path])
    (err,) = info.value.errors
    assert (err.loc.file, err.loc.line) == (str(path), line)
    assert err.message.startswith("unsupported: ") and what in err.message


@pytest.mark.parametrize("text,line,what,skipped", UNSUPPORTED,
                         ids=[u[2].split(" (")[0] for u in UNSUPPORTED])
def test_skip_unsupported_warns_naming_what_was_left_out(tmp_path, text, line, what,
                                                         skipped):
    path = write_yaml(tmp_path, text)
    result = import_calico([path], skip_unsupported=True)
    (warning,) = result.warnings
    assert warning.startswith(f"{path}:{line}:") and f"skipped {skipped}: " in warning
    assert what in warning


def test_skipping_a_rule_keeps_the_others(tmp_path):
    path = write_yaml(tmp_path, GNP + "  ingress:\n  - action: Allow\n    http: {}\n"
                      "  - action: Deny\n    protocol: UDP\n")
    profile, warnings = import_profile(tmp_path, path, skip=True)
    (rule,) = profile.policies[0].ingress
    assert (rule.action, rule.protocol) == ("deny", "udp") and len(warnings) == 1


def test_skipped_host_endpoint_fields_drop_only_the_field(tmp_path):
    path = write_yaml(tmp_path, HEADER + "kind: HostEndpoint\nmetadata: {name: h}\nspec:\n"
                      "  interfaceName: eth0\n  profiles: [default]\n")
    profile, _ = import_profile(tmp_path, path, skip=True)
    assert [h.name for h in profile.host_endpoints] == ["h"]


def test_calico_docs_sample_policy_drops_only_annotations_with_warnings(tmp_path):
    # the GlobalNetworkPolicy sample of Calico's reference docs, plus a label and a hint
    path = write_yaml(tmp_path, """
        apiVersion: projectcalico.org/v3
        kind: GlobalNetworkPolicy
        metadata:
          name: allow-tcp-6379
          labels: {team: db}
        spec:
          selector: role == 'database'
          performanceHints: [AssumeNeededOnEveryNode]
          types:
          - Ingress
          - Egress
          ingress:
          - action: Allow
            metadata:
              annotations:
                from: frontend
                to: database
            protocol: TCP
            source:
              selector: role == 'frontend'
            destination:
              ports:
              - 6379
          egress:
          - action: Allow
        """)
    profile, warnings = import_profile(tmp_path, path)
    (policy,) = profile.policies
    assert policy.types == ("ingress", "egress") and policy.selector == 'role == "database"'
    (ingress,), (egress,) = policy.ingress, policy.egress
    assert ingress.source.selector == 'role == "frontend"'
    assert ingress.destination.ports == (PortRange(6379, 6379),)
    assert egress == type(egress)(action="allow", loc=egress.loc)
    assert [w.split(": warning: ")[0].rsplit(":", 2)[1] for w in warnings] == ["5", "8", "14"]
    assert "labels on a policy are not kept" in warnings[0]
    assert "performanceHints are not kept" in warnings[1]
    assert "rule metadata (annotations) is not kept" in warnings[2]


# ------------------------------------------------------------------ bad input

BAD = [
    ("kind: HostEndpoint\n", 1, "apiVersion must be projectcalico.org/v3"),
    ("apiVersion: v1\nkind: ConfigMap\n", 1, "apiVersion must be"),
    (HEADER + "kind: Gadget\nmetadata: {name: x}\n", 2, "unknown kind 'Gadget'"),
    (GNP + "  selektor: all()\n", 5, "unknown field 'selektor'"),
    (GNP + "  selector: a == b\n", 5, "bad selector"),
    (GNP + "  selector: all()\n  order: first\n", 6, "order must be a number"),
    (GNP + "  types: [Sideways]\n", 5, "bad type 'Sideways'"),
    (RULE.replace("Allow", "Accept"), 6, "bad action 'Accept'"),
    (RULE.replace("TCP", "GRE"), 7, "bad protocol 'GRE'"),
    (RULE.replace("TCP", "0"), 7, "protocol number 0 out of range"),
    (RULE + "    icmp: {type: 255}\n", 8, "ICMP type must be a number 0-254"),
    (RULE + "    ipVersion: 5\n", 8, "ipVersion must be 4 or 6"),
    (RULE + "    source: {nets: [10.0.0.300/8]}\n", 8, "bad CIDR '10.0.0.300/8'"),
    (RULE + "    destination: {ports: [70000]}\n", 8, "port 70000 out of range"),
    (HEADER + "kind: HostEndpoint\nmetadata:\n  name: h\n  labels: {-bad-: x}\n"
     "spec: {interfaceName: eth0}\n", 5, "bad label key '-bad-'"),
    (HEADER + "kind: HostEndpoint\nmetadata: {name: h}\nspec:\n  interfaceName: eth0\n"
     "  expectedIPs: [10.0.0.0/8]\n", 6, "bad IP address '10.0.0.0/8'"),
    (HEADER + "kind: GlobalNetworkSet\nmetadata: {name: s}\nspec: {nets: [1, 2]\n", 5,
     "YAML syntax error"),
    (HEADER + "kind: GlobalNetworkSet\nkind: GlobalNetworkSet\n", 3, "duplicate key 'kind'"),
    (HEADER + "kind: GlobalNetworkSet\nmetadata: {labels: {a: b}}\n", 3,
     "GlobalNetworkSet has no metadata.name"),
    # found by the profile loader in the generated TOML, reported at the YAML policy
    (GNP + "  selector: all()\n  doNotTrack: true\n", 1,
     "do_not_track policy needs apply_on_forward"),
]


@pytest.mark.parametrize("text,line,message", BAD, ids=[b[2] for b in BAD])
def test_bad_input_is_located(tmp_path, text, line, message):
    path = write_yaml(tmp_path, text)
    with pytest.raises(InputErrors) as info:
        import_calico([path])
    assert [(e.loc.file, e.loc.line) for e in info.value.errors][:1] == [(str(path), line)]
    assert message in info.value.errors[0].message


def test_selector_error_column_points_into_the_yaml_line(tmp_path):
    path = write_yaml(tmp_path, GNP + "  selector: role == 'db' &&\n")
    with pytest.raises(InputErrors) as info:
        import_calico([path])
    (err,) = info.value.errors
    assert (err.loc.line, err.loc.col) == (5, 28)  # just past the '&&'
    quoted = write_yaml(tmp_path, GNP + '  selector: "role = x"\n', "q.yaml")
    with pytest.raises(InputErrors) as info:
        import_calico([quoted])
    assert (info.value.errors[0].loc.line, info.value.errors[0].loc.col) == (5, 19)


# ------------------------------------------------------------------ CLI

def test_cli_import_writes_the_profile_and_exits_0(tmp_path):
    out = tmp_path / "redis.toml"
    proc = subprocess.run([*NODEWALL, "import", "calico",
                           str(REPO / "tests/data/calico/redis-host.yaml"), "-o", str(out)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and "[[policies]]" in out.read_text()
    check = subprocess.run([*NODEWALL, "validate", str(out)], capture_output=True, text=True,
                           timeout=60, check=False)
    assert check.returncode == 0, check.stderr


def test_cli_unsupported_exits_2_with_file_line_and_writes_nothing(tmp_path):
    path = write_yaml(tmp_path, RULE + "    http: {methods: [GET]}\n")
    out = tmp_path / "out.toml"
    proc = subprocess.run([*NODEWALL, "import", "calico", str(path), "-o", str(out)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"{path}:8:5: unsupported: 'http' in a rule")
    assert not out.exists()
    skip = subprocess.run([*NODEWALL, "import", "calico", "--skip-unsupported", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert skip.returncode == 0 and f"{path}:8:5: warning: skipped rule" in skip.stderr
    assert "[[policies]]" in skip.stdout
