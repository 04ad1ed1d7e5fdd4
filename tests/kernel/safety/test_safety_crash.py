"""Crash atomicity (issue 5, item 5; issue 15 for every backend): `kill -9` of
`nodewall apply` at 50 random points of an apply of a large profile (a big denied
nets_file set, 150 rules, switching between two profiles that share nothing), with
each backend: iptables + ipsets (100k members), XDP (the deny accelerated: source
maps, rule tables, program) and nftables (5k members each: their loads are the slow
part).  Every other kill takes the whole process group (the `ipset restore` / `nft`
children die too), the others the command alone.  After each kill the FIRST next
command (`status`) finds the interrupted transaction and completes or rolls it back
(exit 0, no journal left), and the kernel then holds exactly the old or the new
generation — XDP maps and program included — and the state dir says which."""
from __future__ import annotations

import difflib
import json
import os
import random
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import IS_ROOT
from tests.helpers.crash_kit import kernel_fingerprint, kill_group, wait_for
from tests.helpers.safety_kit import nw, nw_cmd, write_profile

pytestmark = [pytest.mark.kernel, pytest.mark.slow,
              pytest.mark.skipif(not IS_ROOT, reason="kernel test: needs root for namespaces")]

KILLS = 50
RULES = 150
BACKENDS = {  # backend -> set members per profile
    "iptables": 100_000,
    "xdp": 5_000,
    "nftables": 5_000,
}


def _sources(state: Path) -> list[str]:
    current = (state / "current").read_text().strip()
    return json.loads((state / "generations" / current / "meta.json").read_text())["sources"]


def _closest_diff(fps: dict[str, str], got: str, limit: int = 40) -> str:
    diffs = [list(difflib.unified_diff(want.splitlines(), got.splitlines(), lineterm="",
                                       n=0)) for want in fps.values()]
    closest = min(diffs, key=len)
    shown = closest if len(closest) <= limit else \
        [*closest[:limit // 2], f"... {len(closest) - limit} lines ...", *closest[-limit // 2:]]
    return "\n".join(shown)


def _kill(proc: subprocess.Popen, group: bool) -> int:
    if group:
        return kill_group(proc)
    proc.kill()
    return proc.wait()


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_kill9_at_random_points_leaves_old_or_new(netns_pair, tmp_path, backend):
    ns, state = netns_pair.server, tmp_path / "state"
    members = BACKENDS[backend]
    a, b = (write_profile(tmp_path, name, iface="srv0", members=members, rules=RULES,
                          variant=variant, backend=backend, untracked=backend == "xdp")
            for name, variant in (("a", 1), ("b", 2)))
    journal = state / "journal.json"

    nw(ns, state, "apply", str(a))
    fps = {str(a): kernel_fingerprint(ns)}
    # a reference apply a -> b, timing its phases: start-up until the journal, kernel work
    t0 = time.monotonic()
    ref = subprocess.Popen(nw_cmd(ns, state, "apply", str(b)), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    assert wait_for(journal, ref)
    t1 = time.monotonic()
    assert ref.wait(timeout=120) == 0
    startup, work = t1 - t0, time.monotonic() - t1
    fps[str(b)] = kernel_fingerprint(ns)
    assert fps[str(a)] != fps[str(b)]
    if backend == "xdp":  # the deny really is in XDP: source maps and rule table
        assert "xdp v4 " in fps[str(a)] and "xdp rules srv0 " in fps[str(a)]

    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    on = str(b)
    outcomes = {"before the journal": 0, "mid-transaction": 0, "after it finished": 0}
    for i in range(KILLS):
        target = str(a) if on == str(b) else str(b)
        proc = subprocess.Popen(nw_cmd(ns, state, "apply", target), start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if i % 10 == 0:  # now and then during start-up, loading and planning
            time.sleep(rng.uniform(0, startup))
        elif wait_for(journal, proc):  # mostly while the kernel is being changed
            time.sleep(rng.uniform(0, 0.6 * work))
        rc = _kill(proc, group=i % 2 == 0)
        mid = journal.exists()
        key = ("mid-transaction" if mid else "after it finished" if rc == 0
               else "before the journal")
        outcomes[key] += 1

        where = f"kill {i} (seed {seed}, {backend}, {key})"
        first = nw(ns, state, "status", "--output", "json", check=False)  # recovers
        assert first.returncode == 0, f"{where}: the first recovery failed:\n{first.stderr}"
        assert not journal.exists(), f"{where}: journal left behind:\n{first.stderr}"
        report = json.loads(first.stdout)
        fp = kernel_fingerprint(ns)
        held = [p for p, f in fps.items() if f == fp]
        assert held, (f"{where}: the kernel holds neither the old nor the new generation; "
                      f"against the closer one:\n{_closest_diff(fps, fp)}")
        assert _sources(state) == held, f"{where}: state dir disagrees"
        assert report["drift"] == [], f"{where}: drift after the first recovery"
        on = held[0]
    print(f"{backend} seed {seed}: {outcomes}")
    assert outcomes["mid-transaction"] > 0  # the journal existed when the kill landed
