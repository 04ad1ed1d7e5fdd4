"""Set membership for explain: which member of an ipset (inline CIDR or nets_file
line) holds an address.  nets_files are streamed chunk by chunk (memory stays one
chunk whatever the file's size); each (set, address) is looked up once."""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nodewall.engine.nets.scan import iter_member_chunks
from nodewall.engine.plan.desired import IpSetSpec

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class SetHit:
    """`address` is in set `set_name` (a network set, a rule's nets, ...) through
    `member`, written inline or in `file`."""

    set_name: str
    origin: str
    member: str
    file: str | None = None

    def describe(self) -> str:
        where = f" (a line of the nets_file as applied: {self.file})" if self.file else ""
        return f"{self.origin}: {self.member}{where}"

    def to_json(self) -> dict[str, str | None]:
        return {"set": self.set_name, "origin": self.origin, "member": self.member,
                "file": self.file}


def in_net(address: Address, cidr: str) -> bool:
    """Whether the network CIDR (host bits allowed) holds ADDRESS, of either family."""
    net = ipaddress.ip_network(cidr, strict=False)
    return net.version == address.version and address in net


def _first_containing(members: Iterable[str], address: Address) -> str | None:
    for text in members:
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            continue
        if net.version == address.version and address in net:
            return str(net)
    return None


def _v4_candidates(address: Address) -> re.Pattern[bytes]:
    """The only IPv4 lines that can hold `address`: those starting with its first
    octet, and prefixes shorter than /8.  One C-speed regex per chunk instead of
    Python per line (a nets_file holds millions)."""
    first = str(address).split(".", 1)[0].encode()
    return re.compile(rb"^(?:" + first + rb"\.[^\n]*|[^\n]*/[0-7])$", re.MULTILINE)


def _in_file(path: Path, address: Address) -> str | None:
    pattern = _v4_candidates(address) if address.version == 4 else None
    for chunk in iter_member_chunks(path, address.version):
        lines = pattern.findall(chunk) if pattern is not None else chunk.split()
        hit = _first_containing((raw.decode() for raw in lines), address)
        if hit is not None:
            return hit
    return None


class SetIndex:
    """The ipsets of one DesiredState, by name."""

    def __init__(self, specs: Sequence[IpSetSpec]):
        self._specs = {s.name: s for s in specs}
        self._cache: dict[tuple[str, Address], SetHit | None] = {}

    def lookup(self, name: str, address: Address, depth: int = 0) -> SetHit | None:
        key = (name, address)
        if key not in self._cache:
            self._cache[key] = self._lookup(name, address, depth)
        return self._cache[key]

    def _lookup(self, name: str, address: Address, depth: int) -> SetHit | None:
        spec = self._specs.get(name)
        if spec is None or spec.family != address.version or depth > 4:
            return None
        if spec.kind == "list:set":
            for member in spec.members:
                hit = self.lookup(member, address, depth + 1)
                if hit is not None:
                    return hit
            return None
        member = _first_containing(spec.inline, address)
        if member is not None:
            return SetHit(spec.name, spec.origin, member)
        for path in spec.files:
            member = _in_file(path, address)
            if member is not None:
                return SetHit(spec.name, spec.origin, member, str(path))
        return None


def lookup_source(origin: str, inline: Sequence[str], files: Sequence[Path],
                  address: Address) -> SetHit | None:
    """The member of an XDP source (inline CIDRs and nets_files) holding `address`."""
    member = _first_containing(inline, address)
    if member is not None:
        return SetHit("xdp", origin, member)
    for path in files:
        member = _in_file(path, address)
        if member is not None:
            return SetHit("xdp", origin, member, str(path))
    return None
