"""`nodewall import calico FILE…` and `nodewall export calico PROFILE…` (README,
Calico interop).  Pure file work: no namespace, no kernel, no state."""
from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

from nodewall.engine.errors import ExitCode, InputError, Loc


def register(sub) -> None:
    sp = sub.add_parser("import", help="write a TOML profile from Calico YAML")
    sp.add_argument("format", choices=["calico"])
    sp.add_argument("files", nargs="+", type=Path, metavar="FILE",
                    help="projectcalico.org/v3 YAML (multi-document files and List kinds)")
    sp.add_argument("-o", "--output-file", dest="out", type=Path, metavar="OUT",
                    help="write the profile here (default: stdout)")
    sp.add_argument("--skip-unsupported", action="store_true",
                    help="leave out what nodewall cannot express, with a warning each")
    sp.set_defaults(extra_handler=cmd_import)

    sp = sub.add_parser("export", help="write profiles as Calico YAML")
    sp.add_argument("format", choices=["calico"])
    sp.add_argument("profiles", nargs="+", type=Path, metavar="PROFILE",
                    help="TOML profile file(s)")
    sp.add_argument("-o", "--output-file", dest="out", type=Path, metavar="OUT",
                    help="write the YAML here (default: stdout)")
    sp.add_argument("--node", default=socket.gethostname(),
                    help="the Calico node name for HostEndpoint.spec.node "
                         "(default: this host's name)")
    sp.set_defaults(extra_handler=cmd_export)


def _write(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text)
        return
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, out)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise InputError(Loc(str(out), 1, 1), f"cannot write: {e.strerror}") from None


def cmd_import(args: argparse.Namespace, _parser: argparse.ArgumentParser) -> int:
    from nodewall.engine.profile.calico.importer import import_calico
    result = import_calico(args.files, skip_unsupported=args.skip_unsupported,
                           out_name=str(args.out) if args.out else "<imported profile>")
    for warning in result.warnings:
        print(warning, file=sys.stderr)
    _write(result.toml, args.out)
    return ExitCode.OK


def cmd_export(args: argparse.Namespace, _parser: argparse.ArgumentParser) -> int:
    from nodewall.engine.profile.calico.exporter import export_calico
    from nodewall.engine.profile.loader import load_profiles
    _write(export_calico(load_profiles(args.profiles), args.node), args.out)
    return ExitCode.OK
