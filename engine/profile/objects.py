"""[settings], [[host_endpoints]] and [[network_sets]]: TOML tables -> model objects."""
from __future__ import annotations

import ipaddress
import re
from pathlib import Path as FsPath
from typing import Any

from nodewall.engine.errors import Loc
from nodewall.engine.profile.fields import Ctx, parse_cidr
from nodewall.engine.profile.model import (
    DEFAULT_FAILSAFE_INBOUND,
    DEFAULT_FAILSAFE_OUTBOUND,
    DEFAULT_MAX_SET_ENTRIES,
    Failsafe,
    HostEndpoint,
    Settings,
)
from nodewall.engine.profile.toml_locations import Path

SETTINGS_KEYS = ("backend", "packet_filter", "xdp_mode", "failsafe_inbound", "failsafe_outbound",
                 "max_set_entries")
HEP_KEYS = ("name", "interface", "expected_ips", "labels")
NETSET_KEYS = ("name", "labels", "nets", "nets_file")
_FAILSAFE_RE = re.compile(r"(?P<proto>[^:@]*):(?P<port>[^@]*)(?:@(?P<net>.*))?")
_IFNAME_BAD = re.compile(r"[/:\s]")


def _failsafe_entry(text: str, loc: Loc) -> Failsafe | str:
    m = _FAILSAFE_RE.fullmatch(text)
    if not m:
        return f"bad failsafe entry '{text}': expected proto:port[@cidr], e.g. \"tcp:22\""
    proto, port, net = m.group("proto"), m.group("port"), m.group("net")
    if proto not in ("tcp", "udp"):
        return f"bad failsafe entry '{text}': protocol '{proto}' must be tcp or udp"
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        return f"bad failsafe entry '{text}': port '{port}' must be 1-65535"
    norm = None
    if net is not None:
        parsed = parse_cidr(net)
        if isinstance(parsed, str):
            return f"bad failsafe entry '{text}': bad CIDR '{net}': {parsed}"
        norm = str(parsed)
    return Failsafe(proto, int(port), norm, loc)  # type: ignore[arg-type]


def _defaults(texts: tuple[str, ...], loc: Loc) -> tuple[Failsafe, ...]:
    out = [_failsafe_entry(text, loc) for text in texts]
    return tuple(f for f in out if isinstance(f, Failsafe))


def _failsafes(ctx: Ctx, t: dict[str, Any], key: str,
               default: tuple[str, ...]) -> tuple[Failsafe, ...]:
    path: Path = ("settings",)
    if key not in t:
        return _defaults(default, ctx.table_loc(path))
    out = []
    for i, text in ctx.string_array(t, path, key, "[settings]"):
        f = _failsafe_entry(text, ctx.value_loc(path + (key, i)))
        if isinstance(f, str):
            ctx.error(ctx.value_loc(path + (key, i)), f,
                      "entries are \"tcp:22\" or \"udp:53@10.0.0.0/8\"")
        else:
            out.append(f)
    return tuple(out)


def _check_filter(ctx: Ctx, backend: str | None, packet_filter: str | None) -> None:
    """backend = "iptables" / "nftables" IS the packet filter: packet_filter may only
    repeat it."""
    if backend in ("iptables", "nftables") and packet_filter not in (None, "auto", backend):
        ctx.error(ctx.value_loc(("settings", "packet_filter")),
                  f"packet_filter '{packet_filter}' conflicts with backend '{backend}'",
                  f"drop packet_filter, or set backend = \"auto\" or \"xdp\" to run "
                  f"XDP with {packet_filter} behind it")


def parse_settings(ctx: Ctx, t: dict[str, Any]) -> Settings:
    path: Path = ("settings",)
    what = "[settings]"
    ctx.check_keys(t, path, SETTINGS_KEYS, what)
    backend = ctx.enum(t, path, "backend", ("auto", "iptables", "xdp", "nftables"),
                       what)
    packet_filter = ctx.enum(t, path, "packet_filter", ("auto", "iptables", "nftables"), what)
    _check_filter(ctx, backend, packet_filter)
    mode = ctx.enum(t, path, "xdp_mode", ("auto", "native", "generic"), what)
    max_entries = ctx.int_in(t, path, "max_set_entries", 1, 1 << 32, what)
    return Settings(
        backend=backend or "auto",  # type: ignore[arg-type]
        packet_filter=packet_filter or "auto",  # type: ignore[arg-type]
        xdp_mode=mode or "auto",  # type: ignore[arg-type]
        failsafe_inbound=_failsafes(ctx, t, "failsafe_inbound", DEFAULT_FAILSAFE_INBOUND),
        failsafe_outbound=_failsafes(ctx, t, "failsafe_outbound", DEFAULT_FAILSAFE_OUTBOUND),
        max_set_entries=max_entries or DEFAULT_MAX_SET_ENTRIES,
        loc=ctx.table_loc(path))


def default_settings(file: str) -> Settings:
    """Settings when no file has a [settings] table."""
    loc = Loc(file, 1, 1)
    return Settings(failsafe_inbound=_defaults(DEFAULT_FAILSAFE_INBOUND, loc),
                    failsafe_outbound=_defaults(DEFAULT_FAILSAFE_OUTBOUND, loc))


def _interface(ctx: Ctx, t: dict[str, Any], path: Path, what: str) -> str | None:
    if not ctx.require(t, path, "interface", what):
        return None
    value = ctx.string(t, path, "interface", what)
    if value is None or value == "*":
        return value
    why = None
    if not 1 <= len(value.encode()) <= 15:
        why = "must be 1-15 bytes long"
    elif _IFNAME_BAD.search(value):
        why = "must not contain '/', ':' or whitespace"
    elif value in (".", ".."):
        why = "is reserved"
    if why:
        ctx.error(ctx.value_loc(path + ("interface",)), f"bad interface name '{value}': {why}",
                  "a Linux interface name like \"eth0\", or \"*\" for all interfaces")
        return None
    return value


def parse_host_endpoint(ctx: Ctx, t: dict[str, Any], path: Path) -> HostEndpoint | None:
    what = "[[host_endpoints]]"
    mark = ctx.mark()
    ctx.check_keys(t, path, HEP_KEYS, what)
    name = ctx.name(t, path, what)
    interface = _interface(ctx, t, path, what)
    ips = []
    for i, text in ctx.string_array(t, path, "expected_ips", what):
        try:
            ips.append(str(ipaddress.ip_address(text.strip())))
        except ValueError:
            why = "write an address, not a CIDR" if "/" in text else "not an IP address"
            ctx.error(ctx.value_loc(path + ("expected_ips", i)),
                      f"bad IP address '{text}': {why}")
    labels = ctx.labels(t, path, what)
    if not ctx.clean_since(mark) or name is None or interface is None:
        return None
    return HostEndpoint(name, interface, tuple(ips), labels, ctx.table_loc(path),
                        ctx.value_loc(path + ("interface",)))


class NetworkSetDraft:
    """A [[network_sets]] entry before its nets_file is scanned."""

    def __init__(self, name: str, labels: dict[str, str], nets: tuple[str, ...],
                 nets_file: FsPath | None, path: Path, ctx: Ctx):
        self.name, self.labels, self.nets, self.nets_file = name, labels, nets, nets_file
        self.path, self.ctx = path, ctx


def parse_network_set(ctx: Ctx, t: dict[str, Any], path: Path) -> NetworkSetDraft | None:
    what = "[[network_sets]]"
    mark = ctx.mark()
    ctx.check_keys(t, path, NETSET_KEYS, what)
    name = ctx.name(t, path, what)
    labels = ctx.labels(t, path, what)
    nets = tuple(n for _, n in ctx.cidrs(t, path, "nets", what))
    file_text = ctx.string(t, path, "nets_file", what)
    nets_file = None
    if file_text is not None:
        if not file_text.strip():
            ctx.error(ctx.value_loc(path + ("nets_file",)), "nets_file is empty")
        else:
            base = FsPath(ctx.file).absolute().parent
            nets_file = base / file_text
    if not ctx.clean_since(mark) or name is None:
        return None
    return NetworkSetDraft(name, labels, nets, nets_file, path, ctx)
