"""`nodewall metrics` and `nodewall agent --metrics-listen`: the Prometheus exporter
(engine.metrics).  register() adds the command and the agent option to the parser;
the handlers import the exporter only when run."""
from __future__ import annotations

import signal
import sys
import threading

from nodewall.engine.errors import ExitCode

DEFAULT_LISTEN = "127.0.0.1:9617"  # engine.metrics.server.DEFAULT_LISTEN, kept import-free


def register(sub) -> None:
    sp = sub.add_parser("metrics", help="serve Prometheus metrics (/metrics, /healthz, "
                                        "/readyz) until SIGTERM/SIGINT")
    sp.add_argument("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT",
                    help=f"address to serve on (default {DEFAULT_LISTEN}; "
                         "[::1]:PORT for IPv6, :PORT for every IPv4 address)")
    sp.set_defaults(handler=cmd_metrics)
    agent = sub.choices["agent"]
    agent.add_argument("--metrics-listen", metavar="HOST:PORT",
                       help="also serve the metrics endpoint, with the agent's apply "
                            "durations and outcomes")
    agent.set_defaults(handler=cmd_agent)


def _say(message: str) -> None:
    print(f"nodewall metrics: {message}", file=sys.stderr, flush=True)


def _wait_for_signal() -> None:
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def cmd_metrics(args) -> int:
    from nodewall.engine.cli.commands import _service
    from nodewall.engine.metrics.exporter import Exporter
    from nodewall.engine.metrics.server import parse_listen

    listen = parse_listen(args.listen)  # bad input: exit 2 before anything else
    exporter = Exporter(_service(args).scrape)
    server = exporter.server(listen)
    bound = server.start()
    _say(f"serving {bound.url()} (and /healthz, /readyz)")
    try:
        _wait_for_signal()
    finally:
        server.stop()
    _say("stopped")
    return ExitCode.OK


def cmd_agent(args) -> int:
    from nodewall.engine.cli import commands

    if args.metrics_listen is None:
        return commands.cmd_agent(args)
    from nodewall.engine.metrics.exporter import Exporter
    from nodewall.engine.metrics.server import parse_listen

    listen = parse_listen(args.metrics_listen, "--metrics-listen")
    commands._require_root("agent")
    svc = commands._service(args)
    exporter = Exporter(svc.scrape, agent=True)
    agent = commands.agent_of(svc, args, on_pass=exporter.agent.observe)
    server = exporter.server(listen)
    bound = server.start()
    _say(f"serving {bound.url()} (and /healthz, /readyz)")
    try:
        return agent.run(args.interval, once=args.once, watch=not args.no_watch)
    finally:
        server.stop()
