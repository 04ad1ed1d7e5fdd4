"""The state dir under fault (issue 15): damaged files give a clear message naming the
file (no traceback) and flush still works; a full state dir does not stop an
emergency flush; a state dir others can write is refused; two state dirs on one
namespace share one lock."""
from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest
from nodewall.engine.safety.state_dir import StateStore
from nodewall.engine.system import netns

from tests.conftest import IS_ROOT
from tests.helpers.safety_kit import fingerprint, nw, nw_cmd, write_profile

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(not IS_ROOT, reason="kernel test: needs root for namespaces")]


@pytest.fixture
def applied(netns_pair, tmp_path):
    ns, state = netns_pair.server, tmp_path / "state"
    nw(ns, state, "apply", str(write_profile(tmp_path, "a", iface="srv0", members=4, rules=1)))
    return ns, state


def _nothing_of_nodewall(ns: str) -> bool:
    return "nw-" not in fingerprint(ns).replace("nw-PREROUTING", "")


@pytest.mark.parametrize("name,content,says", [
    ("current", "abc\n", "is not a generation number"),
    ("journal.json", "{not json", "is not valid JSON"),
    ("pending.json", '{"x": 1}', "does not hold a Pending record"),
    ("generations/1/meta.json", "[]", "is not a JSON object"),
])
def test_damaged_state_files_are_named_and_flush_still_works(applied, name, content, says):
    ns, state = applied
    (state / name).write_text(content)
    out = nw(ns, state, "status", check=False)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert f"state file {state / name} {says}" in out.stderr
    assert "abc" not in out.stderr or name != "current"  # the file's content is not echoed
    flushed = nw(ns, state, "flush", check=False)
    assert flushed.returncode == 0, flushed.stderr
    assert "Traceback" not in flushed.stderr
    saves = subprocess.run(["ip", "netns", "exec", ns, "iptables-legacy-save"],
                           capture_output=True, text=True, check=True).stdout
    assert ":nw-" not in saves


def test_flush_works_with_a_full_state_dir(applied):
    """The state dir on a full file system (a tmpfs in a private mount namespace)."""
    ns, state = applied
    script = (f"mount -t tmpfs -o size=128k,mode=0700 tmpfs {state} && "
              f"dd if=/dev/zero of={state}/fill bs=4k count=64 2>/dev/null; "
              f"mkdir -p {state}/generations; echo 1 > {state}/current; "
              f"{' '.join(nw_cmd(ns, state, 'flush'))}")
    out = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    saves = subprocess.run(["ip", "netns", "exec", ns, "iptables-legacy-save"],
                           capture_output=True, text=True, check=True).stdout
    assert ":nw-" not in saves


def test_a_state_dir_others_can_write_is_refused(netns_pair, tmp_path):
    ns, state = netns_pair.server, tmp_path / "state"
    state.mkdir(mode=0o777)
    state.chmod(0o777)
    out = nw(ns, state, "apply", str(write_profile(tmp_path, "a", iface="srv0")), check=False)
    assert out.returncode == 1 and "writable by other users" in out.stderr


def test_two_state_dirs_on_one_namespace_share_the_lock(netns_pair, tmp_path):
    ns = netns_pair.server
    held, release = tmp_path / "held", tmp_path / "release"

    def hold():
        with StateStore(tmp_path / "state-a").lock():
            held.write_text("")
            while not release.exists():
                time.sleep(0.02)

    t = threading.Thread(target=netns.run_in_netns, args=(ns, hold))
    t.start()
    try:
        deadline = time.monotonic() + 20
        while not held.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        out = nw(ns, tmp_path / "state-b", "apply", "--no-wait",
                 str(write_profile(tmp_path, "b", iface="srv0")), check=False)
        assert out.returncode == 4 and "another nodewall transaction" in out.stderr
    finally:
        release.write_text("")
        t.join(30)
    assert json.loads(nw(ns, tmp_path / "state-b", "status", "--output", "json")
                      .stdout)["generation"] is None
