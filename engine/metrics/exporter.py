"""The exporter: a registry holding the collector (and, in the agent, the apply
metrics), the readiness check, and the server that serves them."""
from __future__ import annotations

from importlib import metadata

from nodewall.engine.errors import NodewallError
from nodewall.engine.metrics.applies import AgentMetrics
from nodewall.engine.metrics.collector import NodewallCollector, Scrape
from nodewall.engine.metrics.health import Readiness, readiness
from nodewall.engine.metrics.server import ListenAddress, MetricsServer
from prometheus_client import CollectorRegistry, generate_latest


def nodewall_version() -> str:
    try:
        return metadata.version("nodewall")
    except metadata.PackageNotFoundError:
        return "unknown"


class Exporter:
    def __init__(self, scrape: Scrape, *, agent: bool = False, version: str | None = None):
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = NodewallCollector(scrape, version=version or nodewall_version())
        self.registry.register(self.collector)
        self.agent = AgentMetrics(self.registry) if agent else None

    def readiness(self) -> Readiness:
        try:
            view = self.collector.read()
        except NodewallError as exc:
            return Readiness(False, f"not ready: cannot read the kernel: {exc.render()}")
        last = self.agent.last if self.agent is not None else None
        return readiness(view, last, agent=self.agent is not None)

    def text(self) -> str:
        """What /metrics answers (for tests and `bench`)."""
        return generate_latest(self.registry).decode()

    def server(self, listen: ListenAddress) -> MetricsServer:
        return MetricsServer(listen, self.registry, self.readiness)
