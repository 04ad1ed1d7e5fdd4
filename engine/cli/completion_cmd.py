"""`nodewall completion bash|zsh`: the shell completion script (shtab), completing
commands, options, profile paths (*.toml), Calico YAML files and network
namespace names (/run/netns, what `ip netns list` reads)."""
from __future__ import annotations

import argparse
import sys

import shtab
from nodewall.engine.errors import ExitCode

PROFILE_FILES = shtab.glob("*.toml")
YAML_FILES = shtab.glob("*.yaml", "*.yml")
NETNS_NAMES = shtab.cmd("ls -1 /run/netns 2>/dev/null")

# What each argument completes to, by dest (options and positionals alike).
_BY_DEST = {
    "profiles": PROFILE_FILES,  # PROFILE… (agent's --profiles DIR is handled below)
    "files": YAML_FILES,
    "netns": NETNS_NAMES,
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
    for p in (parser, *_subparsers(parser)):
        for action in p._actions:
            complete = _BY_DEST.get(action.dest)
            if action.dest == "profiles" and action.option_strings:  # agent --profiles DIR
                complete = shtab.DIRECTORY
            if complete is not None:
                action.complete = complete  # type: ignore[attr-defined]
    return parser


def completion_script(parser: argparse.ArgumentParser, shell: str) -> str:
    return shtab.complete(annotate(parser), shell=shell)


def cmd_completion(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    sys.stdout.write(completion_script(parser, args.shell))
    return ExitCode.OK
