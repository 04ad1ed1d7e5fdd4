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
    spec = IpSetSpec("nw-n4-block-0a0a0a", 4, "hash:net", inline=("203.0.113.0/24",), files=(nets,),
                     expected_count=3003)
    spec6 = IpSetSpec("nw-n4-block6-0a0a0a", 6, "hash:net", inline=("2001:db8:bad::/48",),
                      files=(nets,), expected_count=2)
    report = sync(netns_one, [spec, spec6], manifests=tmp_path / "m")
    assert [c.action for c in report.plan.changes] == ["create", "create"]
    got = sets(netns_one)
    assert set(got) == {"nw-n4-block-0a0a0a", "nw-n4-block6-0a0a0a"}  # no temp set left behind
    assert got["nw-n4-block-0a0a0a"].entries == 3003 and got["nw-n4-block-0a0a0a"].family == 4
    # created with hashsize 1024; the kernel doubles it when a bucket fills, which depends on
    # its random hash seed, so only the lower bound is ours to check
    assert got["nw-n4-block-0a0a0a"].maxelem == 65536 and got["nw-n4-block-0a0a0a"].hashsize >= 1024
    assert got["nw-n4-block6-0a0a0a"].entries == 2 and got["nw-n4-block6-0a0a0a"].family == 6
    for value in ("203.0.113.9", "192.0.2.77", "198.51.100.7", "10.11.249.1"):
        assert member(netns_one, "nw-n4-block-0a0a0a", value)
    assert not member(netns_one, "nw-n4-block-0a0a0a", "10.12.0.2")
    assert member(netns_one, "nw-n4-block6-0a0a0a", "2001:db8::1")
    again = sync(netns_one, [spec, spec6], manifests=tmp_path / "m")
    # the files hold what was loaded (same content digests): nothing to do, baseline or not
    assert [c.action for c in again.plan.changes] == ["none", "none"]


def test_failed_reload_leaves_live_set_untouched(netns_one, tmp_path):
    good = tmp_path / "good.txt"
    good.write_text("192.0.2.1\n192.0.2.2\n")
    spec = IpSetSpec("nw-n4-x-0a0a0a", 4, "hash:net", files=(good,), expected_count=2)
    sync(netns_one, [spec], manifests=tmp_path / "m")
    bad = tmp_path / "bad.txt"
    bad.write_text("192.0.2.3\n999.1.1.1\n")  # never validated: ipset must refuse it
    with pytest.raises(KernelError) as err:
        sync(netns_one, [IpSetSpec("nw-n4-x-0a0a0a", 4, "hash:net", files=(bad,), expected_count=2)],
             manifests=tmp_path / "m")
    assert "999.1.1.1" in err.value.message
    got = sets(netns_one)
    assert set(got) == {"nw-n4-x-0a0a0a"} and got["nw-n4-x-0a0a0a"].entries == 2
    assert member(netns_one, "nw-n4-x-0a0a0a", "192.0.2.1") and not member(netns_one, "nw-n4-x-0a0a0a",
                                                                   "192.0.2.3")


def test_replace_while_iptables_uses_the_set(netns_pair, tmp_path):
    srv = netns_pair.server
    spec = IpSetSpec("nw-n4-deny-0a0a0a", 4, "hash:net", inline=(netns_pair.client_ip + "/32",),
                     expected_count=1)
    sync(srv, [spec], manifests=tmp_path / "m")
    in_ns(srv, "iptables-legacy", "-A", "INPUT", "-m", "set", "--match-set", "nw-n4-deny-0a0a0a",
          "src", "-j", "DROP")
    ping = ["ping", "-c", "1", "-W", "1", netns_pair.server_ip]
    assert in_ns(netns_pair.client, *ping, check=False).returncode != 0
    sync(srv, [IpSetSpec("nw-n4-deny-0a0a0a", 4, "hash:net", inline=("192.0.2.0/24",),
                         expected_count=1)], manifests=tmp_path / "m2")  # swap under the rule
    assert in_ns(netns_pair.client, *ping, check=False).returncode == 0
    assert sets(srv)["nw-n4-deny-0a0a0a"].references == 1


def test_one_line_change_is_a_delta(netns_one, nets, tmp_path):
    store = BaselineStore(tmp_path / "gen1")
    man = tmp_path / "m"
    spec = IpSetSpec("nw-n4-block-0a0a0a", 4, "hash:net", inline=("203.0.113.0/24",), files=(nets,),
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
    assert member(netns_one, "nw-n4-block-0a0a0a", "10.99.3.3")
    assert not member(netns_one, "nw-n4-block-0a0a0a", "10.5.100.1")
    assert sets(netns_one)["nw-n4-block-0a0a0a"].entries == 3003

    # an edit made behind nodewall's back forces a full reload, never a wrong delta
    in_ns(netns_one, "ipset", "add", "nw-n4-block-0a0a0a", "198.18.0.0/15")
    store2 = BaselineStore(tmp_path / "gen2")
    store2.put(nets, (3002, 1))
    changes = run_in_netns(netns_one, ipset_sync.plan, [spec], store2, None, man).changes
    assert changes[0].action == "replace" and "outside" in changes[0].reason


def test_list_set_after_its_members(netns_one, tmp_path):
    a = IpSetSpec("nw-n4-a-0a0a0a", 4, "hash:net", inline=("192.0.2.0/24",), expected_count=1)
    b = IpSetSpec("nw-n4-b-0a0a0a", 4, "hash:net", inline=("198.51.100.0/24",), expected_count=1)
    both = IpSetSpec("nw-l4-00000000000a", 4, "list:set", members=("nw-n4-a-0a0a0a", "nw-n4-b-0a0a0a"))
    sync(netns_one, [both, a, b], manifests=tmp_path / "m")
    assert run_in_netns(netns_one, ipset_observe.list_members, "nw-l4-00000000000a") == ["nw-n4-a-0a0a0a",
                                                                               "nw-n4-b-0a0a0a"]
    assert member(netns_one, "nw-l4-00000000000a", "nw-n4-b-0a0a0a")  # `ipset test` on a list:set: set names
    only_a = IpSetSpec("nw-l4-00000000000a", 4, "list:set", members=("nw-n4-a-0a0a0a",))
    report = sync(netns_one, [only_a, a, b], manifests=tmp_path / "m")
    assert [c.action for c in report.plan.changes] == ["none", "none", "replace"]
    assert run_in_netns(netns_one, ipset_observe.list_members, "nw-l4-00000000000a") == ["nw-n4-a-0a0a0a"]


def test_destroy_unused_and_flush_all_spare_foreign(netns_one, tmp_path):
    ns = netns_one
    specs = [IpSetSpec(n, 4, "hash:net", inline=("192.0.2.0/24",), expected_count=1)
             for n in ("nw-n4-keep-0a0a0a", "nw-n4-old-0a0a0a", "nw-n4-used-0a0a0a")]
    sync(ns, specs, manifests=tmp_path / "m")
    in_ns(ns, "ipset", "create", "foreign", "hash:ip")
    in_ns(ns, "iptables-legacy", "-A", "INPUT", "-m", "set", "--match-set", "nw-n4-used-0a0a0a", "src",
          "-j", "DROP")
    rep = run_in_netns(ns, ipset_flush.destroy_unused, {"nw-n4-keep-0a0a0a", "nw-n4-used-0a0a0a"},
                       tmp_path / "m")
    assert rep.destroyed == ("nw-n4-old-0a0a0a",) and rep.in_use == ()
    rep = run_in_netns(ns, ipset_flush.flush_all, tmp_path / "m")
    assert rep.destroyed == ("nw-n4-keep-0a0a0a",)
    assert len(rep.in_use) == 1 and rep.in_use[0].startswith("nw-n4-used-0a0a0a")
    with pytest.raises(Exception, match="nw-n4-used-0a0a0a"):
        rep.raise_if_incomplete()
    assert "foreign" in in_ns(ns, "ipset", "list", "-n").stdout
    assert "--match-set nw-n4-used-0a0a0a src -j DROP" in in_ns(ns, "iptables-legacy-save").stdout
