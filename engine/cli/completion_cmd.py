"""`nodewall completion bash|zsh`: the shell completion script (shtab), completing
commands, options, profile paths (*.toml), Calico YAML files and network
namespace names (/run/netns, what `ip netns list` reads)."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from nodewall.engine.errors import ExitCode


def completers() -> dict[str, Any]:
    """What each argument completes to, by dest (options and positionals alike).
    shtab is imported here: every command registers this module's subparser, only
    `completion` needs shtab."""
    import shtab
    return {
        "profiles": shtab.glob("*.toml"),  # PROFILE… (agent's --profiles DIR: below)
        "files": shtab.glob("*.yaml", "*.yml"),
        "netns": shtab.cmd("ls -1 /run/netns 2>/dev/null"),
        "state_dir": shtab.DIRECTORY,
        "out": shtab.FILE,
    }


def register(sub) -> None:
    sp = sub.add_parser("completion", help="print the bash or zsh completion script")
    sp.add_argument("shell", choices=["bash", "zsh"])
    sp.set_defaults(extra_handler=cmd_completion)


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sp in dict.fromkeys(action.choices.values()):
                found.append(sp)
                found.extend(_subparsers(sp))
    return found


def annotate(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Attach shtab completers to the arguments of `parser` and its subcommands."""
    by_dest = completers()
    for p in (parser, *_subparsers(parser)):
        for action in p._actions:
            complete = by_dest.get(action.dest)
            if action.dest == "profiles" and action.option_strings:  # agent --profiles DIR
                complete = by_dest["state_dir"]  # a directory
            if complete is not None:
                action.complete = complete  # type: ignore[attr-defined]
    return parser


def completion_script(parser: argparse.ArgumentParser, shell: str) -> str:
    import shtab
    return shtab.complete(annotate(parser), shell=shell)


def cmd_completion(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    sys.stdout.write(completion_script(parser, args.shell))
    return ExitCode.OK
