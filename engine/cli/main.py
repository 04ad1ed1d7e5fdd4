"""`nodewall` command line (README, Using it).

Exit codes (engine.errors.ExitCode, README "Exit codes"): 0 ok / applied, 1 failed
(rolled back), 2 bad input (nothing changed), 3 nothing to do, 4 lock busy, 5 network
namespace not found, 6 nothing to confirm / roll back / explain, 7 refused to touch a
foreign object, 64 usage error.  `agent --once` returns its apply's code.  With
`--output json` an error is also printed on stdout as {"error": {...}, "exit": N}.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import NoReturn

from nodewall.engine.cli import history_cmd, metrics_cmd
from nodewall.engine.errors import ExitCode, NodewallError, UsageError
from nodewall.engine.system import netns as netns_mod


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors exit 64 (EX_USAGE), not 2 (2 is bad input)."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(self.format_usage())
        raise UsageError(message, hint=f"`{self.prog} --help` lists the options")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="nodewall",
        description="Calico-style host-endpoint firewall for one node "
                    "(iptables + ipset, nftables and XDP backends).")
    p.add_argument("--netns", metavar="NAME",
                   help="enter network namespace NAME (ip netns) before doing anything")
    p.add_argument("--state-dir", metavar="DIR", type=Path,
                   help="where generations are recorded (default /var/lib/nodewall, "
                        "or /var/lib/nodewall/netns/NAME with --netns)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def profiles(sp, required=True):
        sp.add_argument("profiles", nargs="+" if required else "*", type=Path,
                        metavar="PROFILE", help="TOML profile file(s)")

    def output(sp):
        sp.add_argument("--output", "-o", choices=["text", "json"], default="text",
                        help="text for humans (default) or json (errors too)")

    sp = sub.add_parser("tui", help="the terminal app (default with no command)")
    profiles(sp, required=False)
    sp.add_argument("--interval", type=float, default=1.0, help="refresh interval, seconds")
    sp.add_argument("--readonly", action="store_true", help="disable every mutating action")
    sp.add_argument("--confirm-timeout", type=float, default=30.0, metavar="S",
                    help="seconds an apply from the TUI waits for keep before it reverts")

    sp = sub.add_parser("validate", help="check profiles; exit 0, or 2 with file:line:col errors")
    profiles(sp)
    output(sp)

    sp = sub.add_parser("diff", help="the plan against the kernel; or two recorded "
                                     "generations (--from N [--to M])")
    profiles(sp, required=False)
    sp.add_argument("--backend", choices=["auto", "iptables", "xdp", "nftables"])
    sp.add_argument("--from", dest="from_generation", type=int, metavar="N",
                    help="compare recorded generation N (profiles and plan) ...")
    sp.add_argument("--to", dest="to_generation", type=int, metavar="M",
                    help="... with generation M (default: the one applied)")
    output(sp)

    sp = sub.add_parser("apply", help="apply profiles as one transaction")
    profiles(sp)
    sp.add_argument("--backend", choices=["auto", "iptables", "xdp", "nftables"],
                    help="override settings.backend")
    sp.add_argument("--check", action="store_true",
                    help="only tell whether anything would change (exit 0 yes, 3 no)")
    sp.add_argument("--confirm-timeout", type=float, metavar="S",
                    help="revert to the previous generation unless `nodewall confirm` "
                         "arrives within S seconds (survives the SSH session)")
    sp.add_argument("--no-wait", action="store_true",
                    help="fail at once if another transaction holds the lock")
    sp.add_argument("--origin", default="cli", metavar="NAME",
                    help="who applies, recorded in the generation (cli, ansible, …)")
    output(sp)

    output(sub.add_parser("confirm", help="keep the pending apply"))
    output(sub.add_parser("ack", help="acknowledge the last automatic revert (status stops "
                                      "showing it)"))
    sp = sub.add_parser("rollback", help="return to the previous generation (or --to N)")
    sp.add_argument("--to", type=int, metavar="N", help="a recorded generation to return to "
                    "(`nodewall history` lists them)")
    sp.add_argument("--no-wait", action="store_true")
    output(sp)

    sp = sub.add_parser("status", help="interfaces, conntrack, rules with hits, drift")
    output(sp)
    sp.add_argument("--watch", action="store_true", help="refresh every --interval seconds")
    sp.add_argument("--interval", type=float, default=2.0, metavar="S",
                    help="seconds between refreshes with --watch (default 2)")

    sp = sub.add_parser("flush", help="remove everything nodewall owns, nothing else")
    sp.add_argument("--no-wait", action="store_true")
    output(sp)

    sp = sub.add_parser("panic", help="drop everything except failsafe traffic")
    sp.add_argument("state", choices=["on", "off"])
    sp.add_argument("--no-wait", action="store_true")
    output(sp)

    sp = sub.add_parser("agent", help="reconcile continuously (repairs drift)")
    sp.add_argument("--profiles", type=Path, required=True, metavar="DIR",
                    help="directory of *.toml profiles")
    sp.add_argument("--interval", type=float, default=10.0, metavar="SECONDS",
                    help="seconds between passes when nothing changes (default 10); "
                         "a change of DIR is seen at once through inotify")
    sp.add_argument("--once", action="store_true", help="one reconcile pass, then exit")
    sp.add_argument("--no-watch", action="store_true",
                    help="do not watch DIR with inotify: only the interval drives passes")
    sp.add_argument("--output", "-o", choices=["text", "json"], default="text",
                    help="text (default), or json: each pass as one JSON line on stdout "
                         "(outcome, exit, generation, changed, drift, message), errors too")
    sp.add_argument("--backoff-max", type=float, default=300.0, metavar="SECONDS",
                    help="after failed passes the interval doubles up to this (default 300)")
    sp.add_argument("--node-name", default=os.environ.get("NODE_NAME"),
                    help="this node's name for DIR/nodes.toml (default: $NODE_NAME)")
    sp.add_argument("--node-labels", default=os.environ.get("NODE_LABELS", ""),
                    metavar="K=V,...",
                    help="this node's labels for DIR/nodes.toml (default: $NODE_LABELS)")

    sp = sub.add_parser("demo", help="start the lab and open the TUI on it")
    sp.add_argument("--keep-lab", action="store_true", help="leave the lab running on exit")
    sp.add_argument("--new-lab", action="store_true",
                    help="replace a lab that is already running (default: ask on a "
                         "terminal, else reuse it)")

    sp = sub.add_parser("lab", help="throwaway namespaces with Redis and traffic")
    sp.add_argument("action", choices=["up", "down", "status"])
    sp.add_argument("--prefix", default="nwlab")
    sp.add_argument("--duration", type=int, default=1800,
                    help="seconds the traffic generator runs before stopping itself")

    metrics_cmd.register(sub)  # runs in the namespace: sets `handler`
    history_cmd.register(sub)  # explain, history, show: `handler` too
    for module in _extra_command_modules():
        module.register(sub)

    sp = sub.add_parser("_confirm-watcher")
    sp.add_argument("--generation", type=int, required=True)
    # internal: runnable, but not listed (help=SUPPRESS would print "==SUPPRESS==")
    sub._choices_actions = [a for a in sub._choices_actions if a.dest != "_confirm-watcher"]
    return p


def _extra_command_modules() -> list:
    """Command modules that add their own subparsers (`register(sub)`) and set
    `extra_handler(args, root_parser)`."""
    from nodewall.engine.cli import calico_cmd, completion_cmd
    return [calico_cmd, completion_cmd]


def _wants_json(argv: list[str]) -> bool:
    """--output json / -o json / --output=json anywhere on the line (a usage error has
    no parsed args to ask)."""
    for i, word in enumerate(argv):
        if word in ("--output=json", "-ojson"):
            return True
        if word in ("--output", "-o") and argv[i + 1:i + 2] == ["json"]:
            return True
    return False


def error_json(exc: NodewallError) -> dict:
    """The JSON error document: {"error": {message, hint, file, line, col, kind},
    "exit": N}; several input errors also as "errors" (the first is "error")."""
    items = exc.to_json()
    out: dict = {"error": items[0], "exit": int(exc.exit_code)}
    if len(items) > 1:
        out["errors"] = items
    if exc.exit_code == ExitCode.NOTHING_TO_DO:
        out["changed"] = False
    return out


def _report(exc: NodewallError, as_json: bool) -> int:
    print(f"nodewall: {exc.render()}" if exc.exit_code != ExitCode.BAD_INPUT else exc.render(),
          file=sys.stderr)
    if as_json:
        json.dump(error_json(exc), sys.stdout, indent=1)
        sys.stdout.write("\n")
    return exc.exit_code


def main(argv: list[str] | None = None) -> int:
    words = list(argv if argv is not None else sys.argv[1:])
    parser = build_parser()
    try:
        args = parser.parse_args(words)
        if args.command is None:
            args = parser.parse_args([*words, "tui"])
    except NodewallError as exc:
        return _report(exc, _wants_json(words))
    try:
        return _run(args, parser)
    except NodewallError as exc:
        return _report(exc, getattr(args, "output", "text") == "json")
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `nodewall status | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.OK


def _run(args, parser: argparse.ArgumentParser) -> int:
    if getattr(args, "extra_handler", None) is not None:  # file work: no namespace
        return args.extra_handler(args, parser)
    from nodewall.engine.cli import commands  # the command implementations (kernel work)

    if args.command == "lab":
        return commands.cmd_lab(args)
    if args.command == "demo":
        return commands.cmd_demo(args)
    if args.command == "diff" and (args.from_generation is not None
                                   or args.to_generation is not None):
        if args.profiles or args.from_generation is None:
            raise UsageError("diff: give PROFILE... (the plan against the kernel) or "
                             "--from N [--to M] (two recorded generations), not both",
                             hint="`nodewall diff --from 3 --to 5`")
        args.handler = history_cmd.cmd_diff_generations
    elif args.command == "diff" and not args.profiles:
        raise UsageError("diff: give PROFILE... or --from N [--to M]",
                         hint="`nodewall diff profiles/redis-host.toml`")
    if args.netns:
        netns_mod.enter(args.netns)
    handler = getattr(args, "handler", None) or \
        getattr(commands, "cmd_" + args.command.replace("-", "_").lstrip("_"))
    return handler(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
