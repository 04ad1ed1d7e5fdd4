"""`nodewall explain`, `history`, `show N` and `diff --from N --to M`: read the
recorded generations (engine.safety.history, engine.explain); this module only
parses and formats."""
from __future__ import annotations

import json
import sys
import time
from typing import Any

from nodewall.engine.errors import ExitCode, NothingPending


def _emit_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=1)
    sys.stdout.write("\n")


def _output(sp) -> None:
    sp.add_argument("--output", "-o", choices=["text", "json"], default="text",
                    help="text for humans (default) or json")


def register(sub) -> None:
    sp = sub.add_parser("explain", help="the path a packet takes through the applied rules")
    sp.add_argument("src", metavar="SRC", help="source address, e.g. 203.0.113.7 "
                                               "(SRC:PORT for a source port)")
    sp.add_argument("dst", metavar="DST[:PORT][/PROTO]",
                    help="destination, e.g. 10.0.0.1:22/tcp (protocol default tcp; "
                         "[2001:db8::1]:22 for IPv6; 10.0.0.1/icmp is a ping, "
                         "/icmp:TYPE[:CODE] another ICMP type)")
    sp.add_argument("--iface", metavar="IF", help="the interface the packet uses "
                    "(default: the only named host endpoint's; \"any\" with only interface = \"*\")")
    sp.add_argument("--direction", choices=["ingress", "egress", "forward"],
                    default="ingress", help="ingress: arrives on IF (default); egress: "
                    "leaves via IF; forward: arrives on IF and is routed on (--out-iface)")
    sp.add_argument("--out-iface", metavar="IF", help="forward: the interface the packet "
                    "leaves by (its host endpoint's forward egress rules apply)")
    sp.add_argument("--generation", type=int, metavar="N",
                    help="explain against recorded generation N instead of the applied one")
    _output(sp)
    sp.set_defaults(handler=cmd_explain)

    sp = sub.add_parser("history", help="recorded generations: when, by whom, outcome")
    _output(sp)
    sp.set_defaults(handler=cmd_history)

    sp = sub.add_parser("show", help="one recorded generation: its profiles and rules")
    sp.add_argument("generation", type=int, metavar="N")
    _output(sp)
    sp.set_defaults(handler=cmd_show)


def _service(args):
    from nodewall.engine.service import Service
    return Service(netns=args.netns, state_dir=args.state_dir)


def cmd_explain(args) -> int:
    e = _service(args).explain(args.src, args.dst, iface=args.iface,
                               direction=args.direction, out_iface=args.out_iface,
                               generation=args.generation)
    if args.output == "json":
        _emit_json(e.to_json())
        return ExitCode.OK
    print("\n".join(e.text_lines()))
    return ExitCode.OK


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def cmd_history(args) -> int:
    entries = _service(args).history()
    if args.output == "json":
        _emit_json({"schema": 1, "generations": [e.to_json() for e in entries]})
        return ExitCode.OK
    from nodewall.engine.safety.history import history_lines
    print("\n".join(history_lines(entries)))
    return ExitCode.OK


def cmd_show(args) -> int:
    rec = _service(args).show_generation(args.generation)
    if args.output == "json":
        _emit_json(rec.to_json())
        return ExitCode.OK
    e = rec.entry
    print(f"generation {e.generation}: {e.outcome}, applied {_when(e.created)} by "
          f"{e.origin or 'unknown'}, backend {e.backend}, content {e.content or '-'}")
    print(f"sources: {' '.join(e.sources)}")
    for f in e.files:
        print(f"  {f.name}  sha256 {f.sha256}")
    for name, text in rec.profiles:
        print(f"--- {name}")
        print(text.rstrip("\n"))
    print(f"rules ({len(rec.rules)}):")
    for rid, m in sorted(rec.rules.items(), key=lambda kv: (kv[1].get("policy", ""), kv[0])):
        print(f"  {rid:<17} {m.get('policy', '')} {m.get('direction', '')} "
              f"{m.get('summary', '')}")
    return ExitCode.OK


def cmd_diff_generations(args) -> int:
    svc = _service(args)
    after = args.to_generation if args.to_generation is not None else svc.store.current()
    if after is None:
        raise NothingPending("no generation is applied to compare with; pass --to M")
    d = svc.diff_generations(args.from_generation, after)
    if args.output == "json":
        _emit_json({"schema": 1, **d.to_json()})
        return ExitCode.OK
    print(f"generation {d.before} -> {d.after}: {len(d.files_changed)} file(s) changed, "
          f"{len(d.rules_added)} rule(s) added, {len(d.rules_removed)} removed")
    if d.backend[0] != d.backend[1]:
        print(f"backend: {d.backend[0]} -> {d.backend[1]}")
    for name, a, b in d.files_changed:
        if not name.startswith("profiles/"):
            print(f"~ {name}: {(a or 'absent')[:12]} -> {(b or 'absent')[:12]}")
    for line in d.profile_diff:
        print(line)
    for rid, m in d.rules_removed:
        print(f"- rule {rid} {m.get('policy', '')} {m.get('direction', '')}: "
              f"{m.get('summary', '')}")
    for rid, m in d.rules_added:
        print(f"+ rule {rid} {m.get('policy', '')} {m.get('direction', '')}: "
              f"{m.get('summary', '')}")
    return ExitCode.OK
