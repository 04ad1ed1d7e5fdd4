"""deploy/kubernetes/ (issue 12): every manifest is valid against the Kubernetes 1.31
schemas, strictly (unknown fields rejected); the DaemonSet runs on every node, one
node at a time, with its probes on the metrics port and a mount for every path the
agent uses; its command line is one nodewall parses; the ConfigMap's profiles pass
`nodewall validate` for every kind of node its nodes.toml names."""
from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from nodewall.engine.cli.main import build_parser
from nodewall.engine.metrics.server import parse_listen
from nodewall.engine.safety.snapshot import NodeIdentity, parse_labels, take_snapshot

from tests.conftest import REPO
from tests.helpers.configmap_kit import ConfigMapDir

K8S = REPO / "deploy" / "kubernetes"
VERSION = "1.31.0"


def _docs() -> list[tuple[Path, dict]]:
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        out += [(path, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return out


def _kind(kind: str) -> dict:
    found = [doc for _, doc in _docs() if doc["kind"] == kind]
    assert len(found) == 1, kind
    return found[0]


def test_there_is_a_manifest_of_each_kind():
    assert {doc["kind"] for _, doc in _docs()} == {
        "Namespace", "ServiceAccount", "ConfigMap", "DaemonSet"}


@pytest.mark.parametrize("path, doc", _docs(), ids=lambda v: v.name if isinstance(v, Path)
                         else v.get("kind", "") if isinstance(v, dict) else str(v))
def test_each_manifest_is_valid_for_kubernetes_1_31_strictly(path: Path, doc: dict):
    kubernetes_validate.validate(doc, VERSION, strict=True)


def test_the_strict_validation_rejects_an_unknown_field():
    """The check above can fail: a misspelt field is refused."""
    ds = copy.deepcopy(_kind("DaemonSet"))
    ds["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(ds, VERSION, strict=True)


def _pod() -> dict:
    return _kind("DaemonSet")["spec"]["template"]["spec"]


def test_the_daemonset_runs_everywhere_one_node_at_a_time():
    ds = _kind("DaemonSet")
    strategy = ds["spec"]["updateStrategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] == 1
    pod = _pod()
    assert pod["hostNetwork"] is True and not pod.get("hostPID", False)
    assert {"operator": "Exists"} in pod["tolerations"]
    assert pod["serviceAccountName"] == _kind("ServiceAccount")["metadata"]["name"]
    names = {d["metadata"].get("namespace") for _, d in _docs() if d["kind"] != "Namespace"}
    assert names == {_kind("Namespace")["metadata"]["name"]}


def test_the_container_has_probes_resources_and_the_capabilities_it_uses():
    (agent,) = _pod()["containers"]
    port = agent["ports"][0]
    assert port["name"] == "metrics"
    assert agent["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert agent["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    for kind in ("requests", "limits"):
        assert set(agent["resources"][kind]) == {"cpu", "memory"}
    sc = agent["securityContext"]
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert {"NET_ADMIN", "NET_RAW", "BPF", "PERFMON", "SYS_ADMIN"} <= \
        set(sc["capabilities"]["add"])


def test_the_command_is_one_nodewall_parses_and_every_path_is_mounted():
    (agent,) = _pod()["containers"]
    assert agent["command"][0] == "nodewall"
    args = build_parser().parse_args(agent["command"][1:])
    assert args.command == "agent"
    listen = parse_listen(args.metrics_listen, "--metrics-listen")
    assert listen.port == agent["ports"][0]["containerPort"]
    mounts = {m["mountPath"]: m["name"] for m in agent["volumeMounts"]}
    volumes = {v["name"]: v for v in _pod()["volumes"]}
    assert set(mounts.values()) == set(volumes)
    assert volumes[mounts[str(args.profiles)]]["configMap"]["name"] == \
        _kind("ConfigMap")["metadata"]["name"]
    assert volumes[mounts[str(args.state_dir)]]["hostPath"]["path"] == "/var/lib/nodewall"
    for path in ("/run/nodewall", "/run/xtables.lock", "/sys/fs/bpf", "/lib/modules",
                 "/usr/src"):
        assert volumes[mounts[path]]["hostPath"]["path"] == path
    assert not any("subPath" in m for m in agent["volumeMounts"])  # would never update
    env = {e["name"]: e for e in agent["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"


@pytest.mark.parametrize("node, expected", [
    (NodeIdentity("worker-1"), ["base.toml"]),
    (NodeIdentity("edge-1"), ["base.toml", "edge.toml"]),
    (NodeIdentity("worker-2", parse_labels("role=ingress")), ["base.toml", "edge.toml"]),
])
def test_the_configmap_profiles_pass_nodewall_validate(tmp_path: Path, node, expected):
    cm = ConfigMapDir(tmp_path / "profiles")
    cm.write(_kind("ConfigMap")["data"])
    snap = take_snapshot(cm.root, node)
    assert [p.name for p in snap.paths] == expected
    out = subprocess.run([sys.executable, "-m", "nodewall.engine.cli.main", "validate",
                          *map(str, snap.paths)], capture_output=True, text=True, timeout=120,
                         check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("ok: ")
