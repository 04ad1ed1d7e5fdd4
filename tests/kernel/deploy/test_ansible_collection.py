"""The Ansible collection nodewall.host (issue 12), run with ansible-playbook against
localhost (connection local) in a namespace: check mode changes nothing and tells the
plan, the first run is `changed`, the second is not, a bad profile fails with its
file:line:col message and leaves the kernel alone; the example role applies with a
confirm timeout, checks the host and confirms."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import IS_ROOT, REPO
from tests.helpers.safety_kit import fingerprint, status, write_profile

pytestmark = [pytest.mark.kernel, pytest.mark.slow,
              pytest.mark.skipif(not IS_ROOT, reason="kernel test: needs root for namespaces")]

COLLECTIONS = REPO / "deploy" / "ansible" / "collections"
NODEWALL = str(Path(sys.executable).parent / "nodewall")
PLAYBOOK_S = 180  # one ansible-playbook run, at most


def _playbook(tmp: Path, tasks: list[dict]) -> Path:
    path = tmp / f"play{len(list(tmp.glob('play*.yml')))}.yml"
    path.write_text(yaml.safe_dump([{"hosts": "localhost", "connection": "local",
                                     "gather_facts": False, "tasks": tasks}]))
    return path


def _run(tmp: Path, playbook: Path, *flags: str) -> tuple[int, str]:
    """ansible-playbook against localhost, its own home in tmp: exit code, output."""
    home = tmp / "ansible-home"
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
           "ANSIBLE_HOME": str(home), "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
           "ANSIBLE_RETRY_FILES_ENABLED": "0"}
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,",
           str(playbook), *flags]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=PLAYBOOK_S,
                          check=False)
    return proc.returncode, proc.stdout + proc.stderr


def _apply(tmp: Path, ns: str, state: Path, profiles: list[Path], *flags: str
           ) -> tuple[int, dict]:
    """One nodewall.host.apply task; its registered result, written out even in check
    mode and on failure."""
    out = tmp / "result.json"
    out.unlink(missing_ok=True)
    play = _playbook(tmp, [{"block": [{"name": "apply", "register": "applied",
                                       "nodewall.host.apply": {
                                           "profiles": [str(p) for p in profiles],
                                           "netns": ns, "state_dir": str(state),
                                           "binary": NODEWALL}}],
                            "always": [{"name": "record", "check_mode": False,
                                        "ansible.builtin.copy": {
                                            "content": "{{ applied | to_json }}",
                                            "dest": str(out)}}]}])
    rc, log = _run(tmp, play, *flags)
    assert out.exists(), log
    return rc, json.loads(out.read_text())


def _recap_changed(log: str) -> int:
    line = next(ln for ln in log.splitlines() if ln.startswith("localhost") and "ok=" in ln)
    return int(line.split("changed=")[1].split()[0])


@pytest.fixture
def ansible_needed():
    if shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("ansible-core is not installed in this venv (make setup installs it)")


def test_check_then_changed_then_unchanged_then_bad_input(ansible_needed, netns_pair,
                                                            tmp_path: Path):
    ns, state = netns_pair.server, tmp_path / "state"
    profile = write_profile(tmp_path / "profiles", "node", iface="srv0", rules=2)
    before = fingerprint(ns)

    rc, result = _apply(tmp_path, ns, state, [profile], "--check", "--diff")
    assert rc == 0 and result["changed"] is True
    assert result["plan"] and "\n".join(result["plan"]) in result["diff"]["prepared"]
    assert fingerprint(ns) == before and status(ns, state)["generation"] is None

    rc, result = _apply(tmp_path, ns, state, [profile])
    assert rc == 0 and result["changed"] is True and result["generation"] == 1
    applied = fingerprint(ns)
    assert applied != before and status(ns, state)["generation"] == 1

    rc, result = _apply(tmp_path, ns, state, [profile])
    assert rc == 0 and result["changed"] is False and result["plan"] == []
    assert fingerprint(ns) == applied

    bad = tmp_path / "profiles" / "zz-bad.toml"
    bad.write_text('[[policies]]\nname = "x"\norder = "one"\n')
    rc, result = _apply(tmp_path, ns, state, [profile, bad])
    assert rc != 0 and result["failed"] is True
    assert any(e.startswith(f"{bad}:3:") for e in result["errors"]), result
    assert f"{bad}:3:" in result["msg"]
    assert fingerprint(ns) == applied and status(ns, state)["generation"] == 1


def test_the_role_applies_with_a_confirm_timeout_checks_and_confirms(ansible_needed,
                                                                    netns_pair,
                                                                    tmp_path: Path):
    ns, state = netns_pair.server, tmp_path / "state"
    src = tmp_path / "src"
    write_profile(src, "node", iface="srv0", rules=1)
    target = tmp_path / "etc-profiles"
    play = tmp_path / "role.yml"
    play.write_text(yaml.safe_dump([{
        "hosts": "localhost", "connection": "local", "gather_facts": False,
        "roles": [{"role": "nodewall.host.node", "vars": {
            "nodewall_install": False, "nodewall_binary": NODEWALL,
            "nodewall_profiles_src": f"{src}/", "nodewall_profiles_dir": str(target),
            "nodewall_netns": ns, "nodewall_state_dir": str(state),
            "nodewall_confirm_timeout": 60}}]}]))
    rc, log = _run(tmp_path, play)
    assert rc == 0, log
    assert "TASK [nodewall.host.node : Keep the change]" in log
    report = status(ns, state)
    assert report["generation"] == 1 and report["pending_confirm"] is None
    assert report["drift"] == []

    rc, log = _run(tmp_path, play)  # in place: nothing applied, nothing to confirm
    assert rc == 0 and _recap_changed(log) == 0, log
    assert status(ns, state)["generation"] == 1
