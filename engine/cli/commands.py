"""Implementations of the CLI commands (engine.cli parses, this does)."""
from __future__ import annotations

import importlib
import importlib.resources
import json
import os
import shlex
import sys
import time
from functools import partial
from pathlib import Path

from nodewall.engine.errors import EnvironmentProblem, ExitCode, NodewallError
from nodewall.engine.observe.report import StatusReport
from nodewall.engine.profile.loader import load_profiles
from nodewall.engine.service import Service
from nodewall.engine.system import procfs


def _emit_json(data) -> None:
    json.dump(data, sys.stdout, indent=1)
    sys.stdout.write("\n")


def _service(args) -> Service:
    return Service(netns=args.netns, state_dir=args.state_dir)


def _require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise EnvironmentProblem(f"{what} changes the kernel firewall and needs root",
                                 hint="run it with sudo")


def _say_wait(message: str) -> None:
    print(f"nodewall: {message}", file=sys.stderr)


def cmd_validate(args) -> int:
    profile = load_profiles(args.profiles)  # no namespace, no state: pure
    if args.output == "json":
        _emit_json({"valid": True, "warnings": list(profile.warnings),
                    "host_endpoints": len(profile.host_endpoints),
                    "network_sets": len(profile.network_sets),
                    "policies": len(profile.policies)})
    else:
        for w in profile.warnings:
            print(w, file=sys.stderr)
        print(f"ok: {len(profile.host_endpoints)} host endpoint(s), "
              f"{len(profile.network_sets)} network set(s), {len(profile.policies)} policies")
    return ExitCode.OK


def cmd_diff(args) -> int:
    preview = _service(args).diff(args.profiles, backend=args.backend)
    if args.output == "json":
        _emit_json(preview.to_json())
    else:
        for w in preview.warnings:
            print(w, file=sys.stderr)
        print("\n".join(preview.lines) if preview.lines else "no changes")
        for rid, where in preview.xdp:
            print(f"  xdp: {rid} -> {where}")
    return ExitCode.OK


def cmd_apply(args) -> int:
    _require_root("apply")
    svc = _service(args)
    result = svc.apply(args.profiles, backend=args.backend, check=args.check,
                       confirm_timeout=args.confirm_timeout, wait=not args.no_wait,
                       on_wait=_say_wait, origin=args.origin)
    if args.output == "json":
        _emit_json(result.to_json())
    else:
        for w in result.warnings:
            print(w, file=sys.stderr)
        if args.check:
            print("\n".join(result.preview.lines))
            print(f"{len(result.preview.lines)} change(s) would be made")
        elif not result.changed:
            print(f"nothing to change: generation {result.generation} is in place")
        else:
            print(f"applied generation {result.generation} in {result.duration_s:.3f}s "
                  f"({len(result.preview.lines)} change(s))")
            if result.superseded is not None:
                print(f"this supersedes generation {result.superseded}, which was waiting "
                      "for confirmation")
            if result.pending_confirm:
                print(f"run `nodewall{_ns(args)} confirm` within "
                      f"{result.pending_confirm.seconds_left:.0f}s or it reverts to generation "
                      f"{result.pending_confirm.previous_generation}")
    return ExitCode.OK


def _ns(args) -> str:
    """The global options a follow-up command needs to reach the same transaction
    (a confirm without the apply's --state-dir would look in the wrong place)."""
    out = f" --netns {shlex.quote(args.netns)}" if args.netns else ""
    if args.state_dir is not None:
        out += f" --state-dir {shlex.quote(str(args.state_dir))}"
    return out


def cmd_confirm(args) -> int:
    n = _service(args).confirm()
    print(f"kept generation {n}")
    return ExitCode.OK


def cmd_ack(args) -> int:
    notice = _service(args).acknowledge_revert()
    print("no automatic revert to acknowledge" if notice is None
          else f"acknowledged: {notice.describe()}")
    return ExitCode.OK


def cmd_confirm_watcher(args) -> int:
    _service(args).watch_confirm(args.generation)
    return ExitCode.OK


def cmd_rollback(args) -> int:
    _require_root("rollback")
    target = _service(args).rollback(wait=not args.no_wait, on_wait=_say_wait)
    print("rolled back: nothing applied now" if target is None
          else f"rolled back to generation {target}")
    return ExitCode.OK


def cmd_flush(args) -> int:
    _require_root("flush")
    for warning in _service(args).flush(wait=not args.no_wait, on_wait=_say_wait):
        print(f"warning: {warning}", file=sys.stderr)
    print("flushed: nodewall's chains, sets and XDP programs are gone")
    return ExitCode.OK


def cmd_panic(args) -> int:
    _require_root("panic")
    state = _service(args).set_panic(
        args.state == "on", wait=not args.no_wait, on_wait=_say_wait,
        on_warning=lambda warning: print(f"warning: {warning}", file=sys.stderr))
    if state is not None:
        print("!!! PANIC MODE ON: every packet is dropped except failsafe traffic !!!")
        print(f"    {state.describe()}")
        if not state.inbound:
            print("    WARNING: no inbound failsafe: remote sessions are cut too",
                  file=sys.stderr)
        print(f"    end it with `nodewall{_ns(args)} panic off` (or `flush`)")
    else:
        print("panic mode off: the applied generation is in force again")
    return ExitCode.OK


def cmd_agent(args) -> int:
    _require_root("agent")
    return _service(args).agent(args.profiles).run(args.interval, once=args.once)


def _print_status(report: StatusReport, scope: str = "") -> None:
    ns = report.netns or "host"
    print(f"netns {ns}   iptables mode {report.iptables_mode} (`iptables` is "
          f"{report.iptables_command}; nodewall writes {report.writes})   "
          f"generation {report.generation}")
    if report.recommendation:
        print(f"recommendation: {report.recommendation}")
    if report.panic:
        print("!!! PANIC MODE: everything but failsafe traffic is dropped !!!")
    if report.pending_confirm:
        p = report.pending_confirm
        print(f"PENDING CONFIRM: generation {p.generation} reverts to {p.previous_generation} "
              f"in {p.seconds_left:.0f}s unless `nodewall{scope} confirm`")
    c = report.conntrack
    print(f"conntrack {c.count}/{c.max} ({100 * c.fill:.1f}%)")
    print("interfaces:")
    for i in report.interfaces:
        xdp = f" xdp={i.xdp_mode}:{i.xdp_prog_name or i.xdp_prog_id}" if i.xdp_mode else ""
        hep = f" hep={i.host_endpoint}" if i.host_endpoint else ""
        print(f"  {i.name:<12} {i.state:<5} {','.join(i.addresses)}{xdp}{hep}")
    print("rules:")
    print(f"  {'id':<17}{'backend':<8}{'action':<7}{'packets':>10}{'bytes':>12}  policy")
    for r in report.rules:
        print(f"  {r.id:<17}{r.backend:<8}{r.action:<7}{r.packets:>10}{r.bytes:>12}  "
              f"{r.policy} {r.direction}[{r.index}] {r.summary}")
    for d in report.drift:
        print(f"DRIFT: {d}")
    for w in report.warnings:
        print(f"warning: {w}")


def cmd_status(args) -> int:
    if not procfs.has_capability(procfs.CAP_NET_ADMIN):
        raise EnvironmentProblem("status reads the kernel's firewall (iptables, ipsets, XDP "
                                 "maps) and needs root",
                                 hint="run it with sudo (or with CAP_NET_ADMIN)")
    svc = _service(args)
    code = ExitCode.OK
    if os.geteuid() == 0:  # finish an interrupted transaction nobody else is running
        try:
            message = svc.recover_if_idle()
        except NodewallError as exc:  # status still shows what is there, and fails
            message, code = exc.render(), exc.exit_code
        if message:
            print(f"nodewall: {message}", file=sys.stderr)
    while True:
        report = svc.status()
        if args.output == "json":
            _emit_json(report.to_json())
        else:
            if args.watch:
                print("\033[H\033[2J", end="")
            _print_status(report, _ns(args))
        if not args.watch:
            return code
        sys.stdout.flush()
        time.sleep(args.interval)


def cmd_tui(args) -> int:
    # Imported lazily and by name: the engine never imports the TUI (or textual).
    app = importlib.import_module("nodewall.tui.app")
    readonly = args.readonly or os.geteuid() != 0
    return app.run(lambda: Service(netns=args.netns, state_dir=args.state_dir),
                   list(args.profiles), interval=args.interval, readonly=readonly,
                   confirm_timeout=args.confirm_timeout)


def cmd_lab(args) -> int:
    from nodewall.engine.lab import lifecycle as lab
    if args.action == "up":
        _require_root("lab up")
        info = lab.lab_up(args.prefix, duration=args.duration)
        print(f"lab up: server namespace {info.server_ns}, client namespace {info.client_ns}")
        print(f"  try: nodewall --netns {info.server_ns} apply profiles/redis-host.toml")
        print(f"       nodewall --netns {info.server_ns} status")
    elif args.action == "down":
        _require_root("lab down")
        lab.lab_down(args.prefix)
        print("lab down")
    else:
        info = lab.lab_status(args.prefix)
        print("no lab" if info is None else info)
    return ExitCode.OK


def demo_profile() -> Path:
    """The example Redis profile, from the installed package data."""
    profile = Path(str(importlib.resources.files("nodewall.profiles") / "redis-host.toml"))
    if not profile.is_file():
        raise NodewallError(f"demo profile {profile} not found",
                            hint="reinstall nodewall: the example profiles ship as package "
                                 "data (nodewall.profiles)")
    return profile


def cmd_demo(args) -> int:
    """Start the lab, apply the demo profile in its server namespace, open the TUI."""
    from nodewall.engine.lab import lifecycle as lab
    from nodewall.engine.system import netns
    _require_root("demo")
    profile = demo_profile()
    info, started = lab.lab_for_demo("nwlab", partial(_running_lab_answer, args.new_lab))
    if info is None:
        print("left the running lab alone")
        return ExitCode.OK
    netns.enter(info.server_ns)
    svc = Service(netns=info.server_ns, state_dir=args.state_dir)
    svc.apply([profile])
    app = importlib.import_module("nodewall.tui.app")
    try:
        return app.run(lambda: Service(netns=info.server_ns, state_dir=args.state_dir),
                       [profile], interval=1.0, readonly=False)
    finally:
        if started and not args.keep_lab:  # a lab it reused is not its own to remove
            lab.lab_down("nwlab")


def _running_lab_answer(new_lab: bool, running) -> str:
    """A lab is already running: --new-lab replaces it; a terminal is asked; without
    one the running lab is reused."""
    if new_lab:
        return "new"
    if not sys.stdin.isatty():
        print(f"reusing the running lab ({running.server_ns}); --new-lab replaces it",
              file=sys.stderr)
        return "reuse"
    reply = input(f"a lab is already running ({running.server_ns}, "
                  f"{running.client_ns}): [r]euse it, [n]ew (replaces it), [q]uit? ")
    return {"r": "reuse", "n": "new"}.get(reply.strip().lower()[:1], "quit")
