"""deploy/grafana/nodewall.json queries only metrics the exporter serves, and shows
every metric the README's table lists."""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from nodewall.engine.metrics.exporter import Exporter

from tests.conftest import REPO
from tests.helpers.metrics_kit import names_in, sample_names

from .test_collector import _view

DASHBOARD = REPO / "deploy" / "grafana" / "nodewall.json"
QUERY_KEYS = ("expr", "query", "definition")
# the metrics issue 11 asks for, by the name a query uses (histograms by their _bucket)
REQUIRED = {
    "nodewall_rule_packets_total", "nodewall_rule_bytes_total", "nodewall_conntrack_entries",
    "nodewall_conntrack_max", "nodewall_conntrack_drops_total",
    "nodewall_conntrack_insert_failed_total", "nodewall_generation", "nodewall_drift_objects",
    "nodewall_pending_confirm", "nodewall_panic", "nodewall_apply_duration_seconds_bucket",
    "nodewall_applies_total", "nodewall_xdp_packets_total", "nodewall_build_info",
}


def _queries(node: Any) -> Iterator[str]:
    """Every PromQL string of the dashboard: targets, variables, annotations."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in QUERY_KEYS and isinstance(value, str):
                yield value
            else:
                yield from _queries(value)
    elif isinstance(node, list):
        for item in node:
            yield from _queries(item)


def _served() -> set[str]:
    return sample_names(Exporter(_view, agent=True, version="1").text())


def test_every_query_names_only_served_metrics() -> None:
    queries = list(_queries(json.loads(DASHBOARD.read_text())))
    assert len(queries) >= 15
    used = names_in(queries)
    assert used - _served() == set()


def test_the_dashboard_shows_every_required_metric() -> None:
    used = names_in(_queries(json.loads(DASHBOARD.read_text())))
    assert REQUIRED <= _served()
    assert REQUIRED - used == set()


def test_the_readme_table_lists_every_served_family() -> None:
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("## Metrics"):]
    table = table[:table.index("\n## ", 4)]
    served = {n.removesuffix("_bucket").removesuffix("_count").removesuffix("_sum")
              for n in _served() if not n.endswith("_created")}
    assert {n for n in served if f"`{n}`" not in table} == set()
