"""Hand-built Ethernet frames for BPF_PROG_TEST_RUN and AF_PACKET injection (the XDP
tests and bench/xdp_*): IPv4 / IPv6 UDP, optionally 802.1Q-tagged, with correct
IPv4 header checksums (the stack drops frames with a bad one before iptables)."""
from __future__ import annotations

import ipaddress
import struct

ETH_P_IP, ETH_P_IPV6, ETH_P_8021Q = 0x0800, 0x86DD, 0x8100
BROADCAST = b"\xff" * 6


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def ethernet(payload: bytes, ethertype: int, *, src_mac: bytes = b"\x02\0\0\0\0\x01",
             dst_mac: bytes = b"\x02\0\0\0\0\x02", vlan: int | None = None) -> bytes:
    head = dst_mac + src_mac
    if vlan is not None:
        head += struct.pack("!HH", ETH_P_8021Q, vlan & 0x0FFF)
    return head + struct.pack("!H", ethertype) + payload


def udp(src: str, dst: str, sport: int, dport: int, payload: bytes = b"nodewall",
        **eth) -> bytes:
    """An Ethernet frame carrying one UDP datagram (IPv4 or IPv6 by the addresses).
    The UDP checksum is 0 for IPv4 (allowed) and computed for IPv6 (required)."""
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    length = 8 + len(payload)
    if s.version == 4:
        dgram = struct.pack("!HHHH", sport, dport, length, 0) + payload
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + length, 0, 0x4000, 64, 17, 0,
                          s.packed, d.packed)
        hdr = hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:]
        return ethernet(hdr + dgram, ETH_P_IP, **eth)
    pseudo = s.packed + d.packed + struct.pack("!IxxxB", length, 17)
    dgram = struct.pack("!HHHH", sport, dport, length, 0) + payload
    c = checksum(pseudo + dgram) or 0xFFFF
    dgram = dgram[:6] + struct.pack("!H", c) + dgram[8:]
    hdr = struct.pack("!IHBB16s16s", 6 << 28, length, 17, 64, s.packed, d.packed)
    return ethernet(hdr + dgram, ETH_P_IPV6, **eth)
