"""Crash atomicity (issue 5, item 5): `kill -9` of `nodewall apply` at 50 random
points of an apply of a large profile (100k set members, 150 rules, switching between
two profiles that share nothing); after each kill the next command (`status`) finds
the interrupted transaction and completes or rolls it back, and the kernel then holds
exactly the old or the new generation — and the state dir says which."""
from __future__ import annotations

import json
import os
import random
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import IS_ROOT
from tests.helpers.safety_kit import fingerprint, nw, nw_cmd, write_profile

pytestmark = [pytest.mark.kernel, pytest.mark.slow,
              pytest.mark.skipif(not IS_ROOT, reason="kernel test: needs root for namespaces")]

KILLS = 50
MEMBERS = 100_000
RULES = 150


def _sources(state: Path) -> list[str]:
    current = (state / "current").read_text().strip()
    return json.loads((state / "generations" / current / "meta.json").read_text())["sources"]


def _wait_for(path: Path, proc: subprocess.Popen, limit: float = 30.0) -> bool:
    """Until `path` exists (True) or the process ended (False); bounded."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if path.exists():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.002)
    return False


def test_kill9_at_random_points_leaves_old_or_new(netns_pair, tmp_path):
    ns, state = netns_pair.server, tmp_path / "state"
    a = write_profile(tmp_path, "a", iface="srv0", members=MEMBERS, rules=RULES, variant=1)
    b = write_profile(tmp_path, "b", iface="srv0", members=MEMBERS, rules=RULES, variant=2)
    journal = state / "journal.json"

    nw(ns, state, "apply", str(a))
    fps = {str(a): fingerprint(ns)}
    # a reference apply a -> b, timing its phases: start-up until the journal, kernel work
    t0 = time.monotonic()
    ref = subprocess.Popen(nw_cmd(ns, state, "apply", str(b)), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    assert _wait_for(journal, ref)
    t1 = time.monotonic()
    assert ref.wait(timeout=120) == 0
    startup, work = t1 - t0, time.monotonic() - t1
    fps[str(b)] = fingerprint(ns)
    assert fps[str(a)] != fps[str(b)]

    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    on = str(b)
    outcomes = {"before the journal": 0, "mid-transaction": 0, "after it finished": 0}
    for i in range(KILLS):
        target = str(a) if on == str(b) else str(b)
        proc = subprocess.Popen(nw_cmd(ns, state, "apply", target),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if i % 10 == 0:  # now and then during start-up, loading and planning
            time.sleep(rng.uniform(0, startup))
        elif _wait_for(journal, proc):  # mostly while the kernel is being changed
            time.sleep(rng.uniform(0, 0.6 * work))
        proc.kill()
        rc = proc.wait()
        mid = journal.exists()
        key = ("mid-transaction" if mid else "after it finished" if rc == 0
               else "before the journal")
        outcomes[key] += 1

        nw(ns, state, "status", "--output", "json")  # the next command recovers
        assert not journal.exists(), f"kill {i} (seed {seed}): journal left behind"
        fp = fingerprint(ns)
        held = [p for p, f in fps.items() if f == fp]
        assert held, (f"kill {i} (seed {seed}, {key}): the kernel holds neither the old "
                      "nor the new generation")
        assert _sources(state) == held, f"kill {i} (seed {seed}): state dir disagrees"
        on = held[0]
    print(f"seed {seed}: {outcomes}")
    assert outcomes["mid-transaction"] > 0  # the journal existed when the kill landed
    report = json.loads(nw(ns, state, "status", "--output", "json").stdout)
    assert report["drift"] == []
