"""`nodewall` command line (README, Using it).

Exit codes: 0 ok / applied, 1 failed (rolled back), 2 bad input (nothing changed),
3 nothing to do (`apply --check` when the kernel already matches).  `agent --once`
returns its apply's code.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from nodewall.engine.cli import metrics_cmd
from nodewall.engine.errors import ExitCode, NodewallError
from nodewall.engine.system import netns as netns_mod


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
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
        sp.add_argument("--output", "-o", choices=["text", "json"], default="text")

    sp = sub.add_parser("tui", help="the terminal app (default with no command)")
    profiles(sp, required=False)
    sp.add_argument("--interval", type=float, default=1.0, help="refresh interval, seconds")
    sp.add_argument("--readonly", action="store_true", help="disable every mutating action")
    sp.add_argument("--confirm-timeout", type=float, default=30.0, metavar="S",
                    help="seconds an apply from the TUI waits for keep before it reverts")

    sp = sub.add_parser("validate", help="check profiles; exit 0, or 2 with file:line:col errors")
    profiles(sp)
    output(sp)

    sp = sub.add_parser("diff", help="the plan against the kernel")
    profiles(sp)
    sp.add_argument("--backend", choices=["auto", "iptables", "xdp", "nftables"])
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

    sub.add_parser("confirm", help="keep the pending apply")
    sub.add_parser("ack", help="acknowledge the last automatic revert (status stops showing it)")
    sp = sub.add_parser("rollback", help="return to the previous generation")
    sp.add_argument("--no-wait", action="store_true")

    sp = sub.add_parser("status", help="interfaces, conntrack, rules with hits, drift")
    output(sp)
    sp.add_argument("--watch", action="store_true", help="refresh every --interval seconds")
    sp.add_argument("--interval", type=float, default=2.0)

    sp = sub.add_parser("flush", help="remove everything nodewall owns, nothing else")
    sp.add_argument("--no-wait", action="store_true")

    sp = sub.add_parser("panic", help="drop everything except failsafe traffic")
    sp.add_argument("state", choices=["on", "off"])
    sp.add_argument("--no-wait", action="store_true")

    sp = sub.add_parser("agent", help="reconcile continuously (repairs drift)")
    sp.add_argument("--profiles", type=Path, required=True, metavar="DIR",
                    help="directory of *.toml profiles")
    sp.add_argument("--interval", type=float, default=10.0)
    sp.add_argument("--once", action="store_true", help="one reconcile pass, then exit")

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
    for module in _extra_command_modules():
        module.register(sub)

    sp = sub.add_parser("_confirm-watcher", help=argparse.SUPPRESS)
    sp.add_argument("--generation", type=int, required=True)
    return p


def _extra_command_modules() -> list:
    """Command modules that add their own subparsers (`register(sub)`) and set
    `extra_handler(args, root_parser)`."""
    from nodewall.engine.cli import calico_cmd, completion_cmd
    return [calico_cmd, completion_cmd]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args([*(argv if argv is not None else sys.argv[1:]), "tui"])
    try:
        return _run(args, parser)
    except NodewallError as exc:
        print(f"nodewall: {exc.render()}" if exc.exit_code != ExitCode.BAD_INPUT else exc.render(),
              file=sys.stderr)
        return exc.exit_code
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
    if args.netns:
        netns_mod.enter(args.netns)
    handler = getattr(args, "handler", None) or \
        getattr(commands, "cmd_" + args.command.replace("-", "_").lstrip("_"))
    return handler(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
