"""The HTTP endpoint: /metrics (Prometheus text format), /healthz (200 while the
process serves) and /readyz (200 or 503 with the reason) on one port.  Each request is
answered in its own thread; the collector serializes the kernel reads."""
from __future__ import annotations

import ipaddress
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from nodewall.engine.errors import EnvironmentProblem, InputError, Loc
from nodewall.engine.metrics.health import Readiness
from prometheus_client import CollectorRegistry, make_wsgi_app

_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")


@dataclass(frozen=True)
class ListenAddress:
    host: str
    port: int

    @property
    def family(self) -> socket.AddressFamily:
        return socket.AF_INET6 if ":" in self.host else socket.AF_INET

    def url(self, path: str = "/metrics") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{path}"


def parse_listen(text: str, option: str = "--listen") -> ListenAddress:
    """HOST:PORT, [IPV6]:PORT or :PORT (every IPv4 address).  Bad values are input
    errors (exit 2) naming the option."""
    def bad(why: str) -> InputError:
        return InputError(Loc("<command line>"), f"{option} {text!r}: {why}",
                          hint="give HOST:PORT, e.g. 127.0.0.1:9617 or [::1]:9617")

    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise bad("an IPv6 address in brackets must be followed by :PORT")
    else:
        host, sep, port = text.rpartition(":")
        if not sep:
            raise bad("no port")
        if ":" in host:
            raise bad("put an IPv6 address in brackets")
    host = host or "0.0.0.0"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise bad(f"port {port!r} is not a number from 0 to 65535")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if ":" in host or not _HOSTNAME.match(host):
            raise bad(f"{host!r} is neither an IP address nor a host name") from None
    return ListenAddress(host, int(port))


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args) -> None:
        return None  # one line per scrape would flood the journal


def make_app(registry: CollectorRegistry, ready: Callable[[], Readiness]):
    metrics_app = make_wsgi_app(registry)

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            return metrics_app(environ, start_response)
        if path == "/healthz":
            status, body = "200 OK", "ok\n"
        elif path == "/readyz":
            r = ready()
            status, body = ("200 OK" if r.ready else "503 Service Unavailable"), r.reason + "\n"
        elif path == "/":
            status, body = "200 OK", "nodewall exporter: /metrics /healthz /readyz\n"
        else:
            status, body = "404 Not Found", "not found: try /metrics, /healthz or /readyz\n"
        data = body.encode()
        start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                                ("Content-Length", str(len(data)))])
        return [data]

    return app


class MetricsServer:
    """Serves make_app() on `listen` in a background thread until stop()."""

    def __init__(self, listen: ListenAddress, registry: CollectorRegistry,
                 ready: Callable[[], Readiness]):
        self.listen = listen
        self._app = make_app(registry, ready)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> ListenAddress:
        """Bind and serve; returns the bound address (the port chosen for port 0)."""
        server_class = type("Server", (_Server,), {"address_family": self.listen.family})
        try:
            self._server = make_server(self.listen.host, self.listen.port, self._app,
                                       server_class, _QuietHandler)
        except OSError as exc:
            raise EnvironmentProblem(
                f"cannot listen on {self.listen.host}:{self.listen.port}: {exc.strerror or exc}",
                hint="is another exporter on that port, or the address not on this "
                     "node (or namespace)?") from exc
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="nodewall-metrics", daemon=True)
        self._thread.start()
        return ListenAddress(self.listen.host, self._server.server_address[1])

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
