"""The collector over the fake dataplane: one kernel read per scrape, rule counters
labelled from the generation's records, the state gauges, a failed read, scrapes
that overlap each other or an apply."""
from __future__ import annotations

import threading

from nodewall.engine.dataplane.shape import Drift
from nodewall.engine.observe.report import ConntrackCpu, ConntrackInfo, RuleStats
from nodewall.engine.observe.scrape import ScrapeView, XdpActionCount
from nodewall.engine.safety.results import PendingConfirm
from nodewall.engine.safety.state_dir import Journal
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.metrics_kit import MetricsRig, samples, value

from .conftest import write_profile


def test_a_scrape_walks_the_rule_counters_once_and_labels_them(mrig: MetricsRig) -> None:
    a = write_profile(mrig, "a", 80)
    assert mrig.service.apply([a]).generation == 1
    ids = list(dict.fromkeys(mrig.fake.rule_ids()))  # one id may sit in several chains
    assert len(ids) >= 2
    meta = mrig.service.store.meta(1).rules
    mrig.fake.hits = {rid: (10 + i, 1000 + i) for i, rid in enumerate(ids)}
    observes = mrig.fake.calls.count("observe")

    text = mrig.exporter().text()

    assert mrig.fake.counter_walks == 1
    assert mrig.fake.calls.count("observe") == observes + 1  # one snapshot
    for i, rid in enumerate(ids):
        m = meta[rid]
        labels = {"id": rid, "policy": m["policy"], "direction": m["direction"],
                  "index": str(m["index"]), "action": m["action"], "backend": "filter"}
        assert value(text, "nodewall_rule_packets_total", **labels) == 10 + i
        assert value(text, "nodewall_rule_bytes_total", **labels) == 1000 + i
    assert value(text, "nodewall_generation") == 1
    assert value(text, "nodewall_scrape_success") == 1
    assert value(text, "nodewall_build_info", version="9.9.9-test") == 1
    assert value(text, "nodewall_drift_objects", kind="chain") == 0


def test_drift_pending_and_revert_show_in_the_gauges_and_readyz(mrig: MetricsRig) -> None:
    exporter = mrig.exporter()
    assert value(exporter.text(), "nodewall_generation") == 0
    ready = exporter.readiness()
    assert not ready.ready and "no generation is applied" in ready.reason

    mrig.service.apply([write_profile(mrig, "a", 80)])
    assert exporter.readiness().ready
    assert exporter.readiness().reason == "ready: generation 1 in place"

    mrig.fake.drifted = [Drift("chain", "4/filter/nw-x", "is missing"),
                         Drift("chain", "4/filter/nw-y", "is missing"),
                         Drift("ipset", "nw-n4-z", "is missing")]
    text = exporter.text()
    assert value(text, "nodewall_drift_objects", kind="chain") == 2
    assert value(text, "nodewall_drift_objects", kind="ipset") == 1
    assert value(text, "nodewall_drift_objects", kind="hook") == 0
    ready = exporter.readiness()
    assert not ready.ready and "drift: 2 chain, 1 ipset" in ready.reason

    mrig.fake.drifted = []
    mrig.service.apply([write_profile(mrig, "b", 81)], confirm_timeout=60)
    text = exporter.text()
    assert value(text, "nodewall_pending_confirm") == 1
    assert 0 < value(text, "nodewall_pending_confirm_seconds_left") <= 60
    assert "waits for `nodewall confirm`" in exporter.readiness().reason


def test_a_scrape_during_a_transaction_reports_the_recorded_generation_and_no_drift(
        mrig: MetricsRig) -> None:
    mrig.service.apply([write_profile(mrig, "a", 80)])
    mrig.fake.drifted = [Drift("chain", "4/filter/nw-x", "is missing")]
    store = mrig.service.store
    store.write_journal(Journal(target=2, previous=1, pid=1, started=0.0, action="apply"))

    view = mrig.service.scrape()

    assert (view.generation, view.in_flight, view.drift) == (1, "apply", ())
    text = mrig.exporter().text()
    assert value(text, "nodewall_transaction_in_flight") == 1
    assert value(text, "nodewall_drift_objects", kind="chain") == 0
    assert "a apply is in flight" in mrig.exporter().readiness().reason


def test_a_scrape_that_races_a_generation_change_reads_again(mrig: MetricsRig) -> None:
    """The state dir changes between the read before and after the kernel: the scrape
    reads again and reports the new generation, with every rule labelled."""
    mrig.service.apply([write_profile(mrig, "a", 80)])
    b = write_profile(mrig, "b", 81)
    original = mrig.fake.counters
    applied = []

    def counters_then_apply(observed):
        out = original(observed)
        if not applied:  # another process applies while this scrape reads the kernel
            applied.append(mrig.service.apply([b]).generation)
        return out

    mrig.fake.counters = counters_then_apply
    mrig.fake.hits = {}
    view = mrig.service.scrape()
    assert applied == [2]
    assert (view.generation, view.in_flight, view.unrecorded_rules) == (2, None, 0)
    assert mrig.fake.counter_walks == 2


def test_a_failed_read_still_answers(mrig: MetricsRig) -> None:
    mrig.service.store.ensure()
    (mrig.service.store.root / "current").write_text("garbage\n")
    logged: list[str] = []
    exporter = mrig.exporter()
    exporter.collector.log = logged.append
    text = exporter.text()
    assert value(text, "nodewall_scrape_success") == 0
    assert value(text, "nodewall_build_info", version="9.9.9-test") == 1
    assert value(text, "nodewall_generation") is None
    assert logged and "is not a generation number" in logged[0]
    ready = exporter.readiness()
    assert not ready.ready and "cannot read the kernel" in ready.reason


def test_concurrent_scrapes_take_turns_and_each_parses(mrig: MetricsRig) -> None:
    mrig.service.apply([write_profile(mrig, "a", 80)])
    mrig.fake.hits = {rid: (5, 500) for rid in mrig.fake.rule_ids()}
    exporter = mrig.exporter()
    mrig.fake.pause.set()  # the first read holds inside the counter walk
    texts: list[str] = []
    errors: list[BaseException] = []

    def scrape() -> None:
        try:
            texts.append(exporter.text())
        except BaseException as exc:  # noqa: BLE001 - reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=scrape) for _ in range(6)]
    for t in threads:
        t.start()
    assert mrig.fake.in_counters.wait(10)
    mrig.fake.release.set()
    for t in threads:
        t.join(30)
    assert errors == [] and len(texts) == 6
    assert mrig.fake.counter_walks == 6 and mrig.fake.max_parallel == 1
    for text in texts:
        assert value(text, "nodewall_generation") == 1
        assert {s.value for s in samples(text) if s.name == "nodewall_rule_packets_total"} \
            == {5}


def _view(**overrides) -> ScrapeView:
    base = {
        "generation": 7,
        "rules": (RuleStats(id="r1", profile="p.toml", policy="web", direction="ingress",
                         index=0, action="allow", backend="raw", packets=3, bytes=180),
               RuleStats(id="r1", profile="p.toml", policy="web", direction="ingress",
                         index=0, action="allow", backend="xdp", packets=4, bytes=240)),
        "unrecorded_rules": 0,
        "conntrack": ConntrackInfo(count=12, max=65536, per_cpu=(
            ConntrackCpu(cpu=0, drop=2, insert_failed=1), ConntrackCpu(cpu=3, drop=5))),
        "drift": (), "pending_confirm": PendingConfirm(8, 7, 0.0, 0.0), "panic": True,
        "in_flight": None, "last_revert": None,
        "xdp_actions": (XdpActionCount("deny", 9, 540), XdpActionCount("allow", 4, 240))}
    return ScrapeView(**{**base, **overrides})


def test_every_family_of_a_full_view(mrig: MetricsRig) -> None:
    from nodewall.engine.metrics.exporter import Exporter
    text = Exporter(_view, version="1").text()
    families = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert families["nodewall_rule_packets"] == "counter"
    assert families["nodewall_conntrack_entries"] == "gauge"
    # the same rule in two backends: two series, one per backend
    assert value(text, "nodewall_rule_packets_total", id="r1", backend="raw") == 3
    assert value(text, "nodewall_rule_packets_total", id="r1", backend="xdp") == 4
    assert value(text, "nodewall_conntrack_entries") == 12
    assert value(text, "nodewall_conntrack_max") == 65536
    assert value(text, "nodewall_conntrack_drops_total", cpu="3") == 5
    assert value(text, "nodewall_conntrack_insert_failed_total", cpu="0") == 1
    assert value(text, "nodewall_xdp_packets_total", action="deny") == 9
    assert value(text, "nodewall_xdp_bytes_total", action="allow") == 240
    assert value(text, "nodewall_panic") == 1
    assert value(text, "nodewall_pending_confirm") == 1
    assert value(text, "nodewall_generation") == 7


def test_a_rule_shared_by_two_endpoints_has_a_series_per_interface(mrig: MetricsRig) -> None:
    from nodewall.engine.metrics.exporter import Exporter
    rows = tuple(RuleStats(id="r1", profile="p.toml", policy="web", direction="ingress",
                           index=0, action="allow", backend="filter", packets=n, bytes=60 * n,
                           interface=iface, chain=f"nw-fi-{iface}")
                 for iface, n in (("eth0", 5), ("eth1", 0)))
    text = Exporter(lambda: _view(rules=rows), version="1").text()
    assert value(text, "nodewall_rule_packets_total", id="r1", interface="eth0",
                 chain="nw-fi-eth0") == 5
    assert value(text, "nodewall_rule_packets_total", id="r1", interface="eth1",
                 chain="nw-fi-eth1") == 0
