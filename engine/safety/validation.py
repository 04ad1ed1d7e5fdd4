"""What every path says about profiles before the kernel is touched: load, check and
plan them (`validate`, the TUI's live check, `diff`, `apply` and the agent all use
these), the interfaces that do not exist yet, what `--backend` and packet_filter =
"auto" mean here, and the warnings an operator should hear before an apply."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

from nodewall.engine.errors import InputError, InputErrors
from nodewall.engine.nets.baseline import BaselineStore
from nodewall.engine.plan.desired import DesiredState, PacketFilter
from nodewall.engine.plan.planner import plan
from nodewall.engine.profile.loader import load_profiles
from nodewall.engine.profile.model import HostEndpoint, Profile
from nodewall.engine.system import filters
from nodewall.engine.system.netns import interface_exists


def _missing_interfaces(profile: Profile) -> list[HostEndpoint]:
    return [hep for hep in profile.host_endpoints
            if hep.interface != "*" and not interface_exists(hep.interface)]


def with_interface_warnings(profile: Profile) -> Profile:
    """A host endpoint whose interface does not exist (yet) is allowed, as in Calico:
    its iptables/nftables rules match the name and take effect when it appears (the
    boot unit runs before interfaces exist).  Each one is a warning."""
    warnings = tuple(
        f"{hep.interface_loc or hep.loc}: warning: interface '{hep.interface}' does not "
        f"exist in this network namespace (yet): host endpoint '{hep.name}' takes effect "
        "when it appears" for hep in _missing_interfaces(profile))
    if not warnings:
        return profile
    return dataclasses.replace(profile, warnings=profile.warnings + warnings)


def check_interfaces(profile: Profile, desired: DesiredState) -> None:
    """XDP attaches to an interface, so one it would accelerate must exist."""
    xdp = {x.iface for x in desired.xdp.interfaces}
    errors = [InputError(hep.interface_loc or hep.loc,
                         f"unknown interface '{hep.interface}' in this network namespace: "
                         "XDP cannot attach to it",
                         hint="create the interface first, or use backend = \"iptables\" or "
                              "\"nftables\" (their rules wait for it); check `ip link`")
              for hep in _missing_interfaces(profile) if hep.interface in xdp]
    if errors:
        raise InputErrors(errors)


def validate_profiles(paths: Sequence[Path], texts: Mapping[str, str] | None = None,
                      backend: str | None = None) -> Profile:
    """What `validate`, the TUI's live check, `diff` and `apply` all say about
    profiles here: the input errors, and the missing interfaces (warnings; an error
    only where XDP would attach)."""
    profile = with_interface_warnings(with_backend(
        load_profiles([Path(p) for p in paths], texts=texts), backend))
    check_interfaces(profile, plan(profile, auto_packet_filter=auto_packet_filter()))
    return profile


def auto_packet_filter() -> PacketFilter:
    """What packet_filter = "auto" means here: iptables (the legacy xtables nodewall has
    always written, so an old profile keeps its rules where they are) while the kernel
    has legacy xtables; nftables on a kernel built without them, when libnftables'
    binding is installed.  Read from /proc and /lib/modules, nothing loaded."""
    if filters.legacy_xtables() or not filters.nftables_bindings():
        return "iptables"
    return "nftables"


def with_backend(profile: Profile, backend: str | None) -> Profile:
    """`--backend` over [settings] backend; "iptables"/"nftables" name the packet
    filter too, so the profile's packet_filter does not conflict with them."""
    if not backend:
        return profile
    s = profile.settings
    pf = "auto" if backend in ("iptables", "nftables") else s.packet_filter
    return dataclasses.replace(profile, settings=dataclasses.replace(
        s, backend=backend, packet_filter=pf))


def load_and_plan(paths: Sequence[Path], *, backend: str | None = None,
                  baselines: BaselineStore | None = None) -> tuple[Profile, DesiredState]:
    profile = with_interface_warnings(with_backend(
        load_profiles([Path(p) for p in paths], baselines=baselines), backend))
    desired = plan(profile, auto_packet_filter=auto_packet_filter())
    check_interfaces(profile, desired)
    return profile, desired


def risk_warnings(profile: Profile, previous: int | None, panic_on: bool) -> tuple[str, ...]:
    """What an operator should hear before these profiles take effect: an empty
    profile removes every nodewall rule; no inbound failsafe while panic is on drops
    every inbound packet (ssh included)."""
    out = []
    if not profile.host_endpoints and previous is not None:
        out.append(f"warning: {', '.join(profile.files)} define(s) no host endpoint: this "
                   f"removes every rule of generation {previous} (nothing is filtered)")
    if panic_on and not profile.settings.failsafe_inbound:
        out.append("warning: panic mode is on and failsafe_inbound = []: every inbound "
                   "packet is dropped, ssh included; keep this shell open and run "
                   "`nodewall panic off` or apply a failsafe")
    return tuple(out)
