"""The lab's traffic generator, run in the lab's client namespace:

    python -m nodewall.engine.lab.traffic --duration 1800 --pidfile /run/nodewall/nwlab/traffic.pid

For at most --duration seconds and at most --rate operations a second (capped at 50)
it mixes: Redis requests (raw RESP) on a few persistent connections and on new ones,
ICMP echo requests, and TCP/UDP/ICMP attempts from the blocklisted source addresses
(203.0.113.7, 2001:db8:bad::7) to 6379 and other ports, over IPv4 and IPv6.

Safety: every destination must lie inside the lab's subnets (checked at start), each
operation is non-blocking or has a 1 s timeout, the loop checks its deadline every
turn, and SIGALRM (the default action kills the process) fires shortly after the
deadline as a backstop.  SIGTERM ends it cleanly.
"""
from __future__ import annotations

import argparse
import ipaddress
import itertools
import os
import signal
import socket
import struct
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from nodewall.engine.lab.net import BLOCKED_V4, BLOCKED_V6, SERVER_V4, SERVER_V6

LAB_NETS = (ipaddress.ip_network("10.0.0.0/24"), ipaddress.ip_network("fd00:77::/64"))
MAX_RATE = 50.0
MAX_DURATION = 7 * 24 * 3600
OP_TIMEOUT_S = 1.0
PENDING_MAX_AGE_S = 2.0
PERSISTENT = 3  # persistent Redis connections per family (v4: 3, v6: 1)
OTHER_PORTS = (22, 80, 443, 8080)


def resp(*args: str) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for a in args:
        b = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo_request(v6: bool, ident: int, seq: int) -> bytes:
    payload = b"nodewall-lab"
    kind = 128 if v6 else 8
    header = struct.pack("!BBHHH", kind, 0, 0, ident, seq)
    if v6:
        return header + payload  # the kernel fills the ICMPv6 checksum
    csum = _checksum(header + payload)
    return struct.pack("!BBHHH", kind, 0, csum, ident, seq) + payload


@dataclass
class Generator:
    server_v4: str
    server_v6: str
    blocked_v4: str
    blocked_v6: str
    port: int
    stats: Counter[str] = field(default_factory=Counter)
    persistent: list[tuple[str, socket.socket | None]] = field(default_factory=list)
    pending: list[tuple[float, socket.socket]] = field(default_factory=list)
    seq: int = 0

    def __post_init__(self) -> None:
        for addr in (self.server_v4, self.server_v6):
            ip = ipaddress.ip_address(addr)
            if not any(ip in net for net in LAB_NETS):
                raise SystemExit(f"lab_traffic: refusing target {addr}: not a lab address")
        self.persistent = [(self.server_v4, None)] * PERSISTENT + [(self.server_v6, None)]

    # --- Redis -------------------------------------------------------------------------
    def _redis_connect(self, host: str, source: str | None = None) -> socket.socket:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(OP_TIMEOUT_S)
        if source:
            sock.bind((source, 0))
        sock.connect((host, self.port))
        return sock

    def _request(self, sock: socket.socket, *cmd: str) -> bytes:
        sock.sendall(resp(*cmd))
        reply = sock.recv(4096)
        if not reply:
            raise ConnectionError("redis closed the connection")
        return reply

    def redis_persistent(self) -> None:
        i = self.seq % len(self.persistent)
        host, sock = self.persistent[i]
        try:
            if sock is None:
                sock = self._redis_connect(host)
                self.persistent[i] = (host, sock)
            key = f"nw:lab:{i}"
            cmd = (("SET", key, str(self.seq)), ("GET", key), ("INCR", "nw:lab:ops"),
                   ("PING",))[self.seq % 4]
            self._request(sock, *cmd)
            self.stats["redis_ok"] += 1
        except OSError:
            self.stats["redis_err"] += 1
            if sock is not None:
                sock.close()
            self.persistent[i] = (host, None)

    def redis_new(self) -> None:
        host = self.server_v6 if self.seq % 5 == 0 else self.server_v4
        try:
            with self._redis_connect(host) as sock:
                self._request(sock, "PING")
            self.stats["redis_new_ok"] += 1
        except OSError:
            self.stats["redis_new_err"] += 1

    # --- ICMP --------------------------------------------------------------------------
    def ping(self, source: str | None = None, v6: bool = False) -> None:
        dst = self.server_v6 if v6 else self.server_v4
        family, proto = ((socket.AF_INET6, socket.IPPROTO_ICMPV6) if v6
                         else (socket.AF_INET, socket.IPPROTO_ICMP))
        try:
            with socket.socket(family, socket.SOCK_RAW, proto) as sock:
                sock.setblocking(False)
                if source:
                    sock.bind((source, 0))
                sock.sendto(echo_request(v6, os.getpid() & 0xFFFF, self.seq & 0xFFFF), (dst, 0))
            self.stats["icmp_sent"] += 1
        except OSError:
            self.stats["icmp_err"] += 1

    # --- attempts from the blocklisted addresses --------------------------------------------
    def blocked_tcp(self, v6: bool, port: int) -> None:
        src, dst = (self.blocked_v6, self.server_v6) if v6 else (self.blocked_v4, self.server_v4)
        sock = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.bind((src, 0))
            sock.connect_ex((dst, port))  # EINPROGRESS; reaped by _reap()
            self.pending.append((time.monotonic(), sock))
            self.stats["blocked_tcp"] += 1
        except OSError:
            sock.close()
            self.stats["blocked_err"] += 1

    def blocked_udp(self, v6: bool, port: int) -> None:
        src, dst = (self.blocked_v6, self.server_v6) if v6 else (self.blocked_v4, self.server_v4)
        try:
            with socket.socket(socket.AF_INET6 if v6 else socket.AF_INET,
                               socket.SOCK_DGRAM) as sock:
                sock.bind((src, 0))
                sock.sendto(b"nodewall-lab", (dst, port))
            self.stats["blocked_udp"] += 1
        except OSError:
            self.stats["blocked_err"] += 1

    def _reap(self, now: float) -> None:
        keep = []
        for started, sock in self.pending:
            if now - started > PENDING_MAX_AGE_S:
                sock.close()
            else:
                keep.append((started, sock))
        self.pending = keep

    def close(self) -> None:
        for _, sock in self.persistent:
            if sock is not None:
                sock.close()
        for _, sock in self.pending:
            sock.close()
        self.pending.clear()

    # --- the schedule ------------------------------------------------------------------------
    def schedule(self) -> list:
        """One round of operations; the loop plays it over and over at the given rate.
        About 60% Redis, 20% ICMP, 20% from the blocklisted sources."""
        p = self.port
        return [
            self.redis_persistent, self.redis_persistent, self.redis_new,
            lambda: self.ping(), self.redis_persistent, self.redis_persistent,
            lambda: self.blocked_tcp(False, p), self.redis_new,
            lambda: self.ping(v6=True), self.redis_persistent,
            lambda: self.blocked_udp(False, p), self.redis_persistent,
            lambda: self.ping(self.blocked_v4), self.redis_new,
            lambda: self.blocked_tcp(True, p), self.redis_persistent,
            lambda: self.blocked_tcp(False, OTHER_PORTS[self.seq % len(OTHER_PORTS)]),
            lambda: self.blocked_udp(True, 53), self.redis_persistent,
            lambda: self.ping(self.blocked_v6, v6=True),
        ]


def run(gen: Generator, duration: float, rate: float) -> Counter[str]:
    deadline = time.monotonic() + duration
    interval = 1.0 / min(max(rate, 0.1), MAX_RATE)
    next_at = time.monotonic()
    for op in itertools.cycle(gen.schedule()):
        now = time.monotonic()
        if next_at > now:
            time.sleep(min(next_at - now, max(deadline - now, 0.0)))
        if time.monotonic() >= deadline:
            break
        next_at = max(next_at + interval, time.monotonic() - 1.0)  # no burst to catch up
        op()
        gen.seq += 1
        gen._reap(time.monotonic())
    gen.close()
    return gen.stats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nodewall.engine.lab.traffic",
                                 description="bounded traffic for the nodewall lab")
    ap.add_argument("--duration", type=float, required=True, help="seconds, then exit")
    ap.add_argument("--rate", type=float, default=30.0, help=f"ops/s (<= {MAX_RATE:g})")
    ap.add_argument("--port", type=int, default=6379)
    ap.add_argument("--server-v4", default=SERVER_V4)
    ap.add_argument("--server-v6", default=SERVER_V6)
    ap.add_argument("--pidfile", type=Path)
    args = ap.parse_args(argv)
    if not 0 < args.duration <= MAX_DURATION:
        ap.error(f"--duration must be in (0, {MAX_DURATION}]")
    if not 0 < args.rate <= MAX_RATE:
        ap.error(f"--rate must be in (0, {MAX_RATE:g}]")
    signal.alarm(int(args.duration) + 15)  # backstop: default SIGALRM action ends us
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    gen = Generator(args.server_v4, args.server_v6, BLOCKED_V4, BLOCKED_V6, args.port)
    if args.pidfile:
        args.pidfile.write_text(f"{os.getpid()}\n")
    try:
        stats = run(gen, args.duration, args.rate)
        print("lab_traffic done:", dict(sorted(stats.items())), flush=True)
    finally:
        gen.close()
        if args.pidfile:
            try:
                if args.pidfile.read_text().strip() == str(os.getpid()):
                    args.pidfile.unlink()
            except OSError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
