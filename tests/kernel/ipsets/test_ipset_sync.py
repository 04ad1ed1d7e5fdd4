"""ipset backend against the real kernel, inside throwaway namespaces."""
from __future__ import annotations

from pathlib import Path

import pytest
from nodewall.engine.dataplane.ipsets import flush as ipset_flush
from nodewall.engine.dataplane.ipsets import observe as ipset_observe
from nodewall.engine.dataplane.ipsets import sync as ipset_sync
from nodewall.engine.errors import KernelError
from nodewall.engine.nets.baseline import BaselineStore
from nodewall.engine.plan.desired import IpSetSpec
from nodewall.engine.system.netns import run_in_netns

from tests.conftest import in_ns

pytestmark = pytest.mark.kernel


def member(ns: str, name: str, value: str) -> bool:
    return in_ns(ns, "ipset", "test", name, value, check=False).returncode == 0


def sets(ns: str) -> dict:
    return run_in_netns(ns, ipset_observe.observe)


def sync(ns: str, specs, store=None, manifests=None):
    return run_in_netns(ns, ipset_sync.sync, specs, store, manifests)


@pytest.fixture
def nets(tmp_path: Path) -> Path:
    lines = ["# blocklist", "192.0.2.0/24", "  198.51.100.7  # one host", "",
             "2001:db8::/48", *[f"10.{i // 250}.{i % 250}.1" for i in range(3000)]]
    path = tmp_path / "block.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_new_set_from_inline_and_file(netns_one, nets, tmp_path):
    spec = IpSetSpec("nw-s-block", 4, "hash:net", inline=("203.0.113.0/24",), files=(nets,),
                     expected_count=3003)
    spec6 = IpSetSpec("nw-s-block6", 6, "hash:net", inline=("2001:db8:bad::/48",),
                      files=(nets,), expected_count=2)
    report = sync(netns_one, [spec, spec6], manifests=tmp_path / "m")
    assert [c.action for c in report.plan.changes] == ["create", "create"]
    got = sets(netns_one)
    assert set(got) == {"nw-s-block", "nw-s-block6"}  # no temp set left behind
    assert got["nw-s-block"].entries == 3003 and got["nw-s-block"].family == 4
    # created with hashsize 1024; the kernel doubles it when a bucket fills, which depends on
    # its random hash seed, so only the lower bound is ours to check
    assert got["nw-s-block"].maxelem == 65536 and got["nw-s-block"].hashsize >= 1024
    assert got["nw-s-block6"].entries == 2 and got["nw-s-block6"].family == 6
    for value in ("203.0.113.9", "192.0.2.77", "198.51.100.7", "10.11.249.1"):
        assert member(netns_one, "nw-s-block", value)
    assert not member(netns_one, "nw-s-block", "10.12.0.2")
    assert member(netns_one, "nw-s-block6", "2001:db8::1")
    again = sync(netns_one, [spec, spec6], manifests=tmp_path / "m")
    # the files hold what was loaded (same content digests): nothing to do, baseline or not
    assert [c.action for c in again.plan.changes] == ["none", "none"]


def test_failed_reload_leaves_live_set_untouched(netns_one, tmp_path):
    good = tmp_path / "good.txt"
    good.write_text("192.0.2.1\n192.0.2.2\n")
    spec = IpSetSpec("nw-s-x", 4, "hash:net", files=(good,), expected_count=2)
    sync(netns_one, [spec], manifests=tmp_path / "m")
    bad = tmp_path / "bad.txt"
    bad.write_text("192.0.2.3\n999.1.1.1\n")  # never validated: ipset must refuse it
    with pytest.raises(KernelError) as err:
        sync(netns_one, [IpSetSpec("nw-s-x", 4, "hash:net", files=(bad,), expected_count=2)],
             manifests=tmp_path / "m")
    assert "999.1.1.1" in err.value.message
    got = sets(netns_one)
    assert set(got) == {"nw-s-x"} and got["nw-s-x"].entries == 2
    assert member(netns_one, "nw-s-x", "192.0.2.1") and not member(netns_one, "nw-s-x",
                                                                   "192.0.2.3")


def test_replace_while_iptables_uses_the_set(netns_pair, tmp_path):
    srv = netns_pair.server
    spec = IpSetSpec("nw-s-deny", 4, "hash:net", inline=(netns_pair.client_ip + "/32",),
                     expected_count=1)
    sync(srv, [spec], manifests=tmp_path / "m")
    in_ns(srv, "iptables-legacy", "-A", "INPUT", "-m", "set", "--match-set", "nw-s-deny",
          "src", "-j", "DROP")
    ping = ["ping", "-c", "1", "-W", "1", netns_pair.server_ip]
    assert in_ns(netns_pair.client, *ping, check=False).returncode != 0
    sync(srv, [IpSetSpec("nw-s-deny", 4, "hash:net", inline=("192.0.2.0/24",),
                         expected_count=1)], manifests=tmp_path / "m2")  # swap under the rule
    assert in_ns(netns_pair.client, *ping, check=False).returncode == 0
    assert sets(srv)["nw-s-deny"].references == 1


def test_one_line_change_is_a_delta(netns_one, nets, tmp_path):
    store = BaselineStore(tmp_path / "gen1")
    man = tmp_path / "m"
    spec = IpSetSpec("nw-s-block", 4, "hash:net", inline=("203.0.113.0/24",), files=(nets,),
                     expected_count=3003)
    sync(netns_one, [spec], store, man)
    store.put(nets, (3002, 1))  # what the transaction records for the applied generation
    assert [c.action for c in run_in_netns(netns_one, ipset_sync.plan, [spec], store,
                                           None, man).changes] == ["none"]

    text = nets.read_text().replace("10.5.100.1\n", "10.99.0.0/16\n")
    nets.write_text(text)
    report = sync(netns_one, [spec], store, man)
    (change,) = report.plan.changes
    assert (change.action, change.added, change.removed) == (
        "delta", ("10.99.0.0/16",), ("10.5.100.1/32",))
    assert report.lines_loaded == 0
    assert member(netns_one, "nw-s-block", "10.99.3.3")
    assert not member(netns_one, "nw-s-block", "10.5.100.1")
    assert sets(netns_one)["nw-s-block"].entries == 3003

    # an edit made behind nodewall's back forces a full reload, never a wrong delta
    in_ns(netns_one, "ipset", "add", "nw-s-block", "198.18.0.0/15")
    store2 = BaselineStore(tmp_path / "gen2")
    store2.put(nets, (3002, 1))
    changes = run_in_netns(netns_one, ipset_sync.plan, [spec], store2, None, man).changes
    assert changes[0].action == "replace" and "outside" in changes[0].reason


def test_list_set_after_its_members(netns_one, tmp_path):
    a = IpSetSpec("nw-s-a", 4, "hash:net", inline=("192.0.2.0/24",), expected_count=1)
    b = IpSetSpec("nw-s-b", 4, "hash:net", inline=("198.51.100.0/24",), expected_count=1)
    both = IpSetSpec("nw-l-ab", 4, "list:set", members=("nw-s-a", "nw-s-b"))
    sync(netns_one, [both, a, b], manifests=tmp_path / "m")
    assert run_in_netns(netns_one, ipset_observe.list_members, "nw-l-ab") == ["nw-s-a",
                                                                               "nw-s-b"]
    assert member(netns_one, "nw-l-ab", "nw-s-b")  # `ipset test` on a list:set: set names
    only_a = IpSetSpec("nw-l-ab", 4, "list:set", members=("nw-s-a",))
    report = sync(netns_one, [only_a, a, b], manifests=tmp_path / "m")
    assert [c.action for c in report.plan.changes] == ["none", "none", "replace"]
    assert run_in_netns(netns_one, ipset_observe.list_members, "nw-l-ab") == ["nw-s-a"]


def test_destroy_unused_and_flush_all_spare_foreign(netns_one, tmp_path):
    ns = netns_one
    specs = [IpSetSpec(n, 4, "hash:net", inline=("192.0.2.0/24",), expected_count=1)
             for n in ("nw-s-keep", "nw-s-old", "nw-s-used")]
    sync(ns, specs, manifests=tmp_path / "m")
    in_ns(ns, "ipset", "create", "foreign", "hash:ip")
    in_ns(ns, "iptables-legacy", "-A", "INPUT", "-m", "set", "--match-set", "nw-s-used", "src",
          "-j", "DROP")
    rep = run_in_netns(ns, ipset_flush.destroy_unused, {"nw-s-keep", "nw-s-used"},
                       tmp_path / "m")
    assert rep.destroyed == ("nw-s-old",) and rep.in_use == ()
    rep = run_in_netns(ns, ipset_flush.flush_all, tmp_path / "m")
    assert rep.destroyed == ("nw-s-keep",)
    assert len(rep.in_use) == 1 and rep.in_use[0].startswith("nw-s-used")
    with pytest.raises(Exception, match="nw-s-used"):
        rep.raise_if_incomplete()
    assert "foreign" in in_ns(ns, "ipset", "list", "-n").stdout
    assert "--match-set nw-s-used src -j DROP" in in_ns(ns, "iptables-legacy-save").stdout
