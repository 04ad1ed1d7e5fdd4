"""Implementations of the CLI commands (engine.cli parses, this does)."""
from __future__ import annotations

import importlib
import importlib.resources
import json
import os
import shlex
import shutil
import sys
import time
from functools import partial
from pathlib import Path

from nodewall.engine.dataplane.preview import PlanPreview
from nodewall.engine.errors import EnvironmentProblem, ExitCode, NodewallError
from nodewall.engine.observe.report import RuleStats, StatusReport
from nodewall.engine.safety.validation import validate_profiles
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
    # no state; the interfaces are looked up in the namespace (--netns), as diff does
    profile = validate_profiles(args.profiles)
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
        print("\n".join(_diff_lines(preview)) if preview.lines else "no changes")
        for rid, where in preview.xdp:
            print(f"  xdp: {rid} -> {where}")
        if preview.lines:
            print(_diff_summary(preview))
    return ExitCode.OK


def _diff_lines(preview: PlanPreview) -> list[str]:
    """The changes; a removed rule also says which policy it was and what it did."""
    if len(preview.entries) != len(preview.lines):
        return list(preview.lines)
    return [f"{line}   [{e.policy}: {e.summary}]" if e.op == "remove" and e.policy else line
            for line, e in zip(preview.lines, preview.entries)]


def _diff_summary(p: PlanPreview) -> str:
    return (f"{p.rules_added} rule(s) added, {p.rules_removed} removed; {p.chains_added} "
            f"chain(s) added, {p.chains_removed} removed; {p.sets_added} set(s) added, "
            f"{p.sets_removed} removed; {p.set_members_added} set member(s) added, "
            f"{p.set_members_removed} removed")


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


def _say(args, text: str, **data) -> None:
    """One result: `text` for humans, `data` for --output json."""
    if args.output == "json":
        _emit_json(data)
    else:
        print(text)


def cmd_confirm(args) -> int:
    n = _service(args).confirm()
    _say(args, f"kept generation {n}", kept=n)
    return ExitCode.OK


def cmd_ack(args) -> int:
    notice = _service(args).acknowledge_revert()
    _say(args, "no automatic revert to acknowledge" if notice is None
         else f"acknowledged: {notice.describe()}",
         acknowledged=None if notice is None else {
             "generation": notice.generation, "reverted_to": notice.reverted_to,
             "at": notice.at, "reason": notice.reason, "text": notice.describe()})
    return ExitCode.OK


def cmd_confirm_watcher(args) -> int:
    _service(args).watch_confirm(args.generation)
    return ExitCode.OK


def cmd_rollback(args) -> int:
    _require_root("rollback")
    target = _service(args).rollback(wait=not args.no_wait, on_wait=_say_wait, to=args.to)
    _say(args, "rolled back: nothing applied now" if target is None
         else f"rolled back to generation {target}", generation=target)
    return ExitCode.OK


def cmd_flush(args) -> int:
    _require_root("flush")
    warnings = _service(args).flush(wait=not args.no_wait, on_wait=_say_wait)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    _say(args, "flushed: nodewall's chains, sets and XDP programs are gone", flushed=True,
         warnings=warnings)
    return ExitCode.OK


def cmd_panic(args) -> int:
    _require_root("panic")
    state = _service(args).set_panic(
        args.state == "on", wait=not args.no_wait, on_wait=_say_wait,
        on_warning=lambda warning: print(f"warning: {warning}", file=sys.stderr))
    if args.output == "json":
        _emit_json({"panic": state is not None,
                    "state": None if state is None else state.describe()})
    elif state is not None:
        print("!!! PANIC MODE ON: every packet is dropped except failsafe traffic !!!")
        print(f"    {state.describe()}")
        if not state.inbound:
            print("    WARNING: no inbound failsafe: remote sessions are cut too",
                  file=sys.stderr)
        print(f"    end it with `nodewall{_ns(args)} panic off` (or `flush`)")
    else:
        print("panic mode off: the applied generation is in force again")
    return ExitCode.OK


def agent_of(svc: Service, args, on_pass=None):
    """The agent the `agent` command's options describe."""
    from nodewall.engine.safety.snapshot import NodeIdentity, parse_labels

    node = NodeIdentity(args.node_name or None, parse_labels(args.node_labels))
    if getattr(args, "output", "text") == "json":
        on_pass = partial(_pass_json, then=on_pass)
    return svc.agent(args.profiles, on_pass=on_pass, node=node, backoff_max=args.backoff_max)


def pass_json(result) -> dict:
    """One agent pass for machines (`agent --output json`: a line per pass)."""
    return {"outcome": result.outcome, "exit": result.exit_code,
            "generation": result.generation, "changed": result.changed,
            "drift": list(result.drift), "message": result.message,
            "source": result.source or None}


def _pass_json(result, then=None) -> None:
    print(json.dumps(pass_json(result)), flush=True)
    if then is not None:
        then(result)


def cmd_agent(args) -> int:
    _require_root("agent")
    agent = agent_of(_service(args), args)
    return agent.run(args.interval, once=args.once, watch=not args.no_watch)


DIRECTIONS = {"ingress": 0, "egress": 1, "forward": 2}


def _status_head(report: StatusReport, scope: str) -> list[str]:
    """What must stay on screen: where, what is applied, what needs attention
    (panic, pending confirm, reverts, drift)."""
    ns = report.netns or "host"
    out = [f"netns {ns}   iptables mode {report.iptables_mode} (`iptables` is "
           f"{report.iptables_command}; nodewall writes {report.writes})   "
           + ("nothing applied" if report.generation is None
              else f"generation {report.generation}")]
    if report.recommendation:
        out.append(f"recommendation: {report.recommendation}")
    if report.panic:
        out.append("!!! PANIC MODE: everything but failsafe traffic is dropped !!!")
    if report.pending_confirm:
        p = report.pending_confirm
        back = "nothing applied" if p.previous_generation is None else p.previous_generation
        out.append(f"PENDING CONFIRM: generation {p.generation} reverts to {back} "
                   f"in {p.seconds_left:.0f}s unless `nodewall{scope} confirm`")
    out += [f"DRIFT: {d}" for d in report.drift]
    c = report.conntrack
    out.append(f"conntrack {c.count}/{c.max} ({100 * c.fill:.1f}%)")
    return out


def _rule_groups(report: StatusReport) -> list[list[RuleStats]]:
    """Rules in evaluation order per direction, a group for each run of one policy
    (failsafe in raw and again in filter are two groups, as the kernel meets them)."""
    groups: list[list[RuleStats]] = []
    for r in sorted(report.rules, key=lambda r: (DIRECTIONS.get(r.direction, 3),
                                                 r.eval_order, r.id, r.backend,
                                                 r.chain)):
        last = groups[-1][-1] if groups else None
        if last is not None and (last.direction, last.policy) == (r.direction, r.policy):
            groups[-1].append(r)
        else:
            groups.append([r])
    return groups


def _status_lines(report: StatusReport) -> list[str]:
    out = ["interfaces:"]
    for i in report.interfaces:
        xdp = f" xdp={i.xdp_mode}:{i.xdp_prog_name or i.xdp_prog_id}" if i.xdp_mode else ""
        hep = f" hep={i.host_endpoint}" if i.host_endpoint else ""
        out.append(f"  {i.name:<12} {i.state:<5} {','.join(i.addresses)}{xdp}{hep}")
    out.append(f"rules (by policy, in evaluation order):\n"
               f"    {'id':<17}{'backend':<8}{'action':<7}{'packets':>10}{'bytes':>12}  rule")
    for group in _rule_groups(report):
        out.append(f"  {group[0].policy} {group[0].direction}")
        out += [f"    {r.id:<17}{r.backend:<8}{r.action:<7}{r.packets:>10}{r.bytes:>12}  "
                f"[{r.index}] {r.summary}{f' on {r.interface}' if r.interface else ''}"
                for r in group]
    out += [f"warning: {w}" for w in report.warnings]
    return out


def _print_status(report: StatusReport, scope: str = "", rows: int | None = None) -> None:
    """The status for humans; `rows` (with --watch): fit the terminal, the head first
    and always shown, the rest cut with a note."""
    head, body = _status_head(report, scope), "\n".join(_status_lines(report)).splitlines()
    if rows is not None and len(head) + len(body) > rows - 1:
        keep = max(0, rows - 2 - len(head))
        more = f"… {len(body) - keep} more line(s): a taller terminal, or no --watch"
        body = [*body[:keep], more]
    print("\n".join(head + body))


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
            rows = None
            if args.watch:
                print("\033[H\033[2J", end="")
                rows = shutil.get_terminal_size().lines
            _print_status(report, _ns(args), rows)
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
