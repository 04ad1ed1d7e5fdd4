"""The packet to explain: `SRC DST[:PORT][/PROTO]`, with an interface and a direction
(forward: arrives on `iface`, leaves via `out_iface`).  ICMP carries a type and code:
`/icmp` is an echo request (a ping), `/icmp:TYPE` or `/icmp:TYPE:CODE` another."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

from nodewall.engine.errors import InputError, Loc
from nodewall.engine.plan.xdp import protocol_number

Direction = Literal["ingress", "egress", "forward"]
ICMP_PROTOCOLS = {1: 8, 58: 128}  # protocol -> its echo request type
PORT_PROTOCOLS = frozenset({6, 17, 132, 136})
PROTOCOL_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6", 132: "sctp", 136: "udplite"}


@dataclass(frozen=True)
class Packet:
    """A new connection's first packet (conntrack state NEW, no mark)."""

    src: ipaddress.IPv4Address | ipaddress.IPv6Address
    dst: ipaddress.IPv4Address | ipaddress.IPv6Address
    protocol: int  # IP protocol number
    dst_port: int | None
    src_port: int | None
    iface: str
    direction: Direction
    out_iface: str | None = None  # forward: the interface it leaves by
    icmp_type: int | None = None
    icmp_code: int | None = None

    @property
    def family(self) -> int:
        return self.src.version

    @property
    def in_iface(self) -> str | None:
        """The interface it arrives on (None: sent by this host)."""
        return None if self.direction == "egress" else self.iface

    @property
    def leaves_by(self) -> str | None:
        """The interface it leaves by (None: for this host, or not known)."""
        return self.iface if self.direction == "egress" else self.out_iface

    @property
    def remote(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        return self.src if self.direction == "ingress" else self.dst

    def describe(self) -> str:
        proto = PROTOCOL_NAMES.get(self.protocol, str(self.protocol))
        sport = f":{self.src_port}" if self.src_port is not None else ""
        dport = f":{self.dst_port}" if self.dst_port is not None else ""
        icmp = f" type {self.icmp_type} code {self.icmp_code}" if self.icmp_type is not None \
            else ""
        via = {"ingress": f"in on {self.iface}", "egress": f"out via {self.iface}",
               "forward": f"forwarded from {self.iface} to {self.out_iface or '(any)'}"}
        return (f"{proto}{icmp} {_host(self.src)}{sport} -> {_host(self.dst)}{dport} "
                f"{via[self.direction]}")


def _host(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    return f"[{addr}]" if addr.version == 6 else str(addr)


def _bad(text: str, message: str) -> InputError:
    return InputError(Loc("<packet>", 1, 1), f"{text!r}: {message}",
                      hint="write SRC DST[:PORT][/PROTO], e.g. 203.0.113.7 10.0.0.1:22/tcp "
                           "([2001:db8::1]:22 for IPv6)")


def _split_port(text: str, whole: str) -> tuple[str, int | None]:
    """'10.0.0.1:22' / '[2001:db8::1]:22' / '2001:db8::1' -> (address, port)."""
    if text.startswith("["):
        addr, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise _bad(whole, "unbalanced [ ] around an IPv6 address")
        port_text = rest[1:] if rest else ""
    elif text.count(":") == 1:
        addr, _, port_text = text.partition(":")
    else:
        addr, port_text = text, ""
    if not port_text:
        return addr, None
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise _bad(whole, f"port {port_text!r} is not a number 0-65535")
    return addr, int(port_text)


def _address(text: str, whole: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise _bad(whole, f"{text!r} is not an IP address") from None


def _icmp(proto: int, text: str, whole: str) -> tuple[int | None, int | None]:
    """(type, code) of an ICMP packet from "TYPE[:CODE]" ("": the echo request)."""
    if proto not in ICMP_PROTOCOLS:
        if text:
            raise _bad(whole, f"only icmp and icmpv6 take a type ({text!r})")
        return None, None
    if not text:
        return ICMP_PROTOCOLS[proto], 0
    parts = text.split(":")
    if len(parts) > 2 or not all(p.isdigit() and int(p) <= 255 for p in parts):
        raise _bad(whole, f"ICMP type[:code] {text!r}: numbers 0-255")
    return int(parts[0]), int(parts[1]) if len(parts) == 2 else 0


def parse_packet(src: str, dst: str, *, iface: str, direction: Direction,
                 out_iface: str | None = None) -> Packet:
    """SRC[:SPORT] and DST[:PORT][/PROTO[:TYPE[:CODE]]] -> Packet.  PROTO defaults to
    tcp; icmp / icmpv6 to the echo request."""
    dst_text, _, proto_full = dst.partition("/")
    proto_text, _, icmp_text = proto_full.partition(":")
    proto = protocol_number(proto_text or "tcp")
    if proto is None or proto < 0 or proto > 255:
        raise _bad(dst, f"unknown protocol {proto_text!r}")
    src_addr, sport = _split_port(src, src)
    dst_addr, dport = _split_port(dst_text, dst)
    s, d = _address(src_addr, src), _address(dst_addr, dst)
    if s.version != d.version:
        raise _bad(f"{src} {dst}", "source and destination are of different IP versions")
    if proto not in PORT_PROTOCOLS and (sport is not None or dport is not None):
        raise _bad(dst, f"{PROTOCOL_NAMES.get(proto, proto)} has no ports")
    if ICMP_PROTOCOLS.get(proto) is not None and {1: 4, 58: 6}[proto] != s.version:
        raise _bad(dst, f"{proto_text} is not an IPv{s.version} protocol "
                        f"(use {'icmp' if s.version == 4 else 'icmpv6'})")
    itype, icode = _icmp(proto, icmp_text, dst)
    if direction == "forward" and out_iface is None:  # its out-endpoint's chain decides too
        raise InputError(Loc("<packet>", 1, 1), "a forwarded packet leaves by an interface: "
                         "which one?", hint="pass --out-iface IF (in the TUI: SRC DST IF forward "
                         "OUT-IF)")
    return Packet(s, d, proto, dport, sport, iface, direction, out_iface, itype, icode)
