"""The container image of `make image` (issue 12): nodewall's agent runs in it, joined
to a lab namespace as a DaemonSet pod joins its node's, with only the capabilities
the DaemonSet gives it; it applies a ConfigMap-shaped directory mounted into it,
follows a `..data` swap, and stops cleanly on `podman stop` (SIGTERM to PID 1).
Run by `make test-image` (which builds the image first), not by `make test`; skipped
with the reason where podman or the image is missing."""
from __future__ import annotations

import json
import shutil
import subprocess
import tomllib
import uuid
from pathlib import Path

import pytest
import yaml

from tests.conftest import IS_ROOT, REPO
from tests.helpers.configmap_kit import ConfigMapDir
from tests.helpers.safety_kit import fingerprint, status, until, write_profile

pytestmark = [pytest.mark.kernel, pytest.mark.slow,
              pytest.mark.skipif(not IS_ROOT, reason="kernel test: needs root for namespaces")]

VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
IMAGE = f"localhost/nodewall:{VERSION}"


def _podman() -> list[str]:
    podman = shutil.which("podman")
    if podman is None:
        pytest.skip("podman is not installed (apt-get install podman)")
    if subprocess.run([podman, "image", "exists", IMAGE], check=False).returncode != 0:
        pytest.skip(f"no image {IMAGE}: run `make test-image` (it builds it)")
    # runc with cgroupfs where crun cannot run (hybrid cgroup hosts)
    return [podman, "--cgroup-manager=cgroupfs",
            *(["--runtime", "runc"] if shutil.which("runc") else [])]


def _capabilities() -> list[str]:
    ds = yaml.safe_load((REPO / "deploy" / "kubernetes" / "daemonset.yaml").read_text())
    sc = ds["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    return ["--cap-drop", "ALL", "--cap-add", ",".join(sc["capabilities"]["add"])]


def _run_args(ns: str, cm: Path, state: Path, run: Path, name: str) -> list[str]:
    return ["run", "--rm", "--name", name, "--network", f"ns:/run/netns/{ns}",
            "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
            *_capabilities(), "--security-opt", "seccomp=unconfined",
            "-v", f"{cm}:/etc/nodewall/profiles:ro", "-v", f"{state}:/var/lib/nodewall",
            "-v", f"{run}:/run/nodewall", IMAGE,
            "nodewall", "--state-dir", "/var/lib/nodewall", "agent",
            "--profiles", "/etc/nodewall/profiles"]


def test_the_agent_in_the_image_applies_follows_a_swap_and_stops(netns_pair, tmp_path: Path):
    podman = _podman()
    ns, state, run = netns_pair.server, tmp_path / "state", tmp_path / "run"
    state.mkdir()
    run.mkdir()
    cm = ConfigMapDir(tmp_path / "configmap")
    src = tmp_path / "src"
    cm.write({"node.toml": write_profile(src, "node", iface="srv0", rules=1).read_text()})
    name = f"nwt-agent-{uuid.uuid4().hex[:6]}"

    once = subprocess.run([*podman, *_run_args(ns, cm.root, state, run, name + "-once"),
                           "--once"], capture_output=True, text=True, timeout=180, check=False)
    assert once.returncode == 0, once.stderr
    first = fingerprint(ns)
    assert "nw-fi-srv0" in first and status(ns, state)["generation"] == 1

    agent = subprocess.Popen([*podman, *_run_args(ns, cm.root, state, run, name),
                              "--interval", "600"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        def last_pass() -> dict:
            try:
                return json.loads((state / "agent.json").read_text())
            except (OSError, ValueError):
                return {}

        assert until(lambda: last_pass().get("outcome") == "unchanged", 120)
        version = cm.write({"node.toml": write_profile(src, "node", iface="srv0", rules=3,
                                                       variant=1).read_text()})
        assert until(lambda: last_pass().get("source") == version
                     and last_pass().get("outcome") == "applied", 30), last_pass()
        assert fingerprint(ns) != first and status(ns, state)["generation"] == 2
        subprocess.run([*podman, "stop", "-t", "30", name], capture_output=True,
                       timeout=60, check=False)
        rc = agent.wait(timeout=60)
    finally:
        if agent.poll() is None:
            subprocess.run([*podman, "rm", "-f", name], capture_output=True, timeout=60,
                           check=False)
            agent.wait(timeout=30)
    log = agent.stderr.read() if agent.stderr else ""
    assert rc == 0, log
    assert log.rstrip().endswith("stopped") and "on change (inotify)" in log
