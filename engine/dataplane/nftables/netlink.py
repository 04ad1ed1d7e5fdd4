"""Set elements written as ONE nfnetlink batch (one nftables transaction), by hand.

libnftables turns every element into an expression object and checks intervals in
user space: ~1 GB and several seconds for 1M CIDRs.  The ranges here are already
merged (engine.dataplane.nftables.intervals), so the batch is just bytes: per range a
start element and an end element (key = end + 1, flag INTERVAL_END), as nft itself
sends them for an interval set, ~2,700 elements per NEWSETELEM message (an attribute
length is 16 bits).  A flush of the set (DELSETELEM without elements), deletes and
adds go in the same batch, so readers see the old or the new set, never a mix.
"""
from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Iterable, Iterator

from nodewall.engine.errors import KernelError
from nodewall.engine.plan.desired import Family

NETLINK_NETFILTER = 12
SOL_NETLINK = 270
NETLINK_EXT_ACK = 11
NETLINK_CAP_ACK = 10
SO_SNDBUFFORCE = 32
SO_RCVBUFFORCE = 33

NFNL_SUBSYS_NFTABLES = 10
NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END = 16, 17
NFT_MSG_NEWSETELEM, NFT_MSG_DELSETELEM = 12, 14
NFPROTO_INET = 1
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
NLMSG_ERROR = 2
NLA_F_NESTED = 0x8000
NFTA_SET_ELEM_LIST_TABLE, NFTA_SET_ELEM_LIST_SET, NFTA_SET_ELEM_LIST_ELEMENTS = 1, 2, 3
NFTA_LIST_ELEM = 1
NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_FLAGS, NFTA_SET_ELEM_USERDATA = 1, 3, 6
NFTA_DATA_VALUE = 1
NFT_SET_ELEM_INTERVAL_END = 1
# nft's element user data for a range open to the end of the address space
OPEN_INTERVAL_UDATA = b"\x01\x04\x01\x00\x00\x00"
ACK_TIMEOUT_S = 120.0
MAX_ELEMENTS_BYTES = 60000  # per message (the ELEMENTS attribute length is 16 bits)


def _attr(kind: int, payload: bytes) -> bytes:
    n = 4 + len(payload)
    return struct.pack("=HH", n, kind) + payload + b"\0" * (-n % 4)


def _msg(kind: int, flags: int, seq: int, family: int, payload: bytes,
         res_id: int = 0) -> bytes:
    body = struct.pack("=BBH", family, 0, socket.htons(res_id)) + payload
    return struct.pack("=IHHII", 16 + len(body), kind, flags, seq, 0) + body


def _element_templates(family: Family) -> tuple[bytes, bytes]:
    """(prefix of a start element, prefix of an end element); the key bytes follow."""
    klen = 4 if family == 4 else 16
    key_hdr = struct.pack("=HH", 4 + 4 + klen, NFTA_SET_ELEM_KEY | NLA_F_NESTED) + \
        struct.pack("=HH", 4 + klen, NFTA_DATA_VALUE)
    flags = _attr(NFTA_SET_ELEM_FLAGS, struct.pack("!I", NFT_SET_ELEM_INTERVAL_END))
    start = struct.pack("=HH", 4 + len(key_hdr) + klen, NFTA_LIST_ELEM | NLA_F_NESTED) + key_hdr
    end = struct.pack("=HH", 4 + len(key_hdr) + klen + len(flags),
                      NFTA_LIST_ELEM | NLA_F_NESTED) + key_hdr
    return start, end


def elements(ranges: Iterable[int], family: Family) -> Iterator[bytes]:
    """Encoded elements, start then end of each `start << bits | end` range."""
    bits = 32 if family == 4 else 128
    nbytes = bits // 8
    top = (1 << bits) - 1
    start_t, end_t = _element_templates(family)
    flags = _attr(NFTA_SET_ELEM_FLAGS, struct.pack("!I", NFT_SET_ELEM_INTERVAL_END))
    open_udata = _attr(NFTA_SET_ELEM_USERDATA, OPEN_INTERVAL_UDATA)
    open_t = struct.pack("=HH", 4 + len(start_t) - 4 + nbytes + len(open_udata),
                         NFTA_LIST_ELEM | NLA_F_NESTED) + start_t[4:]
    for v in ranges:
        s, e = v >> bits, v & top
        if e == top:
            yield open_t + s.to_bytes(nbytes, "big") + open_udata
        else:
            yield start_t + s.to_bytes(nbytes, "big")
            yield end_t + (e + 1).to_bytes(nbytes, "big") + flags


class Batch:
    """One nfnetlink batch for table `inet <table>` (one transaction)."""

    def __init__(self, table: str):
        self.table = table
        self.parts: list[bytes] = []
        self.seq = 1
        self.messages = 0

    def _head(self, set_name: str) -> bytes:
        return (_attr(NFTA_SET_ELEM_LIST_TABLE, self.table.encode() + b"\0")
                + _attr(NFTA_SET_ELEM_LIST_SET, set_name.encode() + b"\0"))

    def _add(self, kind: int, flags: int, payload: bytes) -> None:
        self.seq += 1
        self.messages += 1
        self.parts.append(_msg((NFNL_SUBSYS_NFTABLES << 8) | kind,
                               NLM_F_REQUEST | NLM_F_ACK | flags, self.seq, NFPROTO_INET,
                               payload))

    def flush_set(self, set_name: str) -> None:
        self._add(NFT_MSG_DELSETELEM, 0, self._head(set_name))

    def set_elements(self, set_name: str, encoded: Iterable[bytes], delete: bool = False) -> int:
        """Add (or delete) encoded elements, in as many messages as needed."""
        head = self._head(set_name)
        kind = NFT_MSG_DELSETELEM if delete else NFT_MSG_NEWSETELEM
        flags = 0 if delete else NLM_F_CREATE
        count = 0
        chunk: list[bytes] = []
        size = 0
        for el in encoded:
            chunk.append(el)
            size += len(el)
            count += 1
            if size >= MAX_ELEMENTS_BYTES:
                self._add(kind, flags, head + _nested_elements(chunk, size))
                chunk, size = [], 0
        if chunk:
            self._add(kind, flags, head + _nested_elements(chunk, size))
        return count

    def send(self) -> None:
        """Send the batch and wait for every message's answer; raise on any error."""
        if not self.messages:
            return
        begin = _msg(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, 1, 0, b"", NFNL_SUBSYS_NFTABLES)
        end = _msg(NFNL_MSG_BATCH_END, NLM_F_REQUEST, self.seq + 1, 0, b"",
                   NFNL_SUBSYS_NFTABLES)
        data = b"".join([begin, *self.parts, end])
        self.parts = []
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER) as sock:
            sock.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, len(data) + 65536)
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 1 << 22)
            sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
            sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
            sock.bind((0, 0))
            sock.settimeout(ACK_TIMEOUT_S)
            sent = sock.send(data)
            if sent != len(data):
                raise KernelError(f"nftables set update: sent {sent} of {len(data)} bytes")
            del data
            _read_acks(sock, self.messages)


def _nested_elements(chunk: list[bytes], size: int) -> bytes:
    return struct.pack("=HH", 4 + size, NFTA_SET_ELEM_LIST_ELEMENTS | NLA_F_NESTED) + \
        b"".join(chunk)


def _read_acks(sock: socket.socket, expected: int) -> None:
    """The kernel handled the whole batch inside send(): every answer is queued."""
    acked = 0
    errors: list[str] = []
    while acked < expected:
        try:
            buf = sock.recv(1 << 20)
        except TimeoutError:
            if errors:  # the kernel stops answering after some errors
                break
            raise KernelError("nftables set update: no answer from the kernel") from None
        except OSError as exc:
            raise KernelError(f"nftables set update: reading the answer failed: {exc}") from exc
        off = 0
        while off + 16 <= len(buf):
            length, kind, _flags, _seq, _pid = struct.unpack_from("=IHHII", buf, off)
            if kind == NLMSG_ERROR:
                (code,) = struct.unpack_from("=i", buf, off + 16)
                acked += 1
                if code:
                    sock.settimeout(0.2)
                    errors.append(f"{os.strerror(-code)} ({errno.errorcode.get(-code, code)})")
            off += max(16, (length + 3) & ~3)
    if errors:
        raise KernelError("nftables set update failed (nothing was changed): "
                          + "; ".join(sorted(set(errors))),
                          hint="`nft list table inet nodewall` shows the table")


NFT_MSG_GETSETELEM = 13
NLM_F_DUMP = 0x300
NLMSG_DONE = 3
DUMP_TIMEOUT_S = 10.0


def _attrs(buf: bytes, off: int, end: int) -> Iterator[tuple[int, bytes]]:
    """(type without flags, payload) of each attribute in buf[off:end]."""
    while off + 4 <= end:
        n, kind = struct.unpack_from("=HH", buf, off)
        if n < 4:
            return
        yield kind & 0x3FFF, buf[off + 4:off + n]
        off += (n + 3) & ~3


def _element(payload: bytes) -> tuple[bytes, bool] | None:
    """(key bytes, is an interval end) of one NFTA_LIST_ELEM."""
    key, end = None, False
    for kind, data in _attrs(payload, 0, len(payload)):
        if kind == NFTA_SET_ELEM_KEY:
            key = next((v for k, v in _attrs(data, 0, len(data)) if k == NFTA_DATA_VALUE), None)
        elif kind == NFTA_SET_ELEM_FLAGS and len(data) >= 4:
            end = bool(struct.unpack("!I", data[:4])[0] & NFT_SET_ELEM_INTERVAL_END)
    return None if key is None else (key, end)


def _dump_messages(sock: socket.socket) -> Iterator[bytes]:
    """The payload (after the nfgenmsg header) of every answer to a dump."""
    while True:
        try:
            buf = sock.recv(1 << 20)
        except (TimeoutError, OSError) as exc:
            raise KernelError(f"nftables set read: {exc}") from exc
        off = 0
        while off + 16 <= len(buf):
            length, kind, _flags, _seq, _pid = struct.unpack_from("=IHHII", buf, off)
            if kind == NLMSG_DONE:
                return
            if kind == NLMSG_ERROR:
                (code,) = struct.unpack_from("=i", buf, off + 16)
                if code:
                    raise KernelError(f"nftables set read: {os.strerror(-code)}")
            else:
                yield buf[off + 20:off + length]
            off += max(16, (length + 3) & ~3)


def set_elements(table: str, set_name: str) -> list[tuple[bytes, bool]]:
    """Every element of an interval set as the kernel holds it: (key, interval end)."""
    payload = (_attr(NFTA_SET_ELEM_LIST_TABLE, table.encode() + b"\0")
               + _attr(NFTA_SET_ELEM_LIST_SET, set_name.encode() + b"\0"))
    request = _msg((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETSETELEM,
                   NLM_F_REQUEST | NLM_F_DUMP, 1, NFPROTO_INET, payload)
    out: list[tuple[bytes, bool]] = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER) as sock:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 1 << 22)
        sock.bind((0, 0))
        sock.settimeout(DUMP_TIMEOUT_S)
        sock.send(request)
        for msg in _dump_messages(sock):
            for kind, data in _attrs(msg, 0, len(msg)):
                if kind != NFTA_SET_ELEM_LIST_ELEMENTS:
                    continue
                for k, el in _attrs(data, 0, len(data)):
                    parsed = _element(el) if k == NFTA_LIST_ELEM else None
                    if parsed is not None:
                        out.append(parsed)
    return out


def ranges_of(elements: list[tuple[bytes, bool]]) -> list[int]:
    """Interval-set elements -> sorted `start << bits | end` ranges (the inverse of
    `elements`); an end element with no open start before it (nft's own zero end
    marker) is skipped, a start with no end runs to the top of the address space."""
    if not elements:
        return []
    bits = 8 * len(elements[0][0])
    top = (1 << bits) - 1
    out: list[int] = []
    start: int | None = None
    # an end sorts before a start at the same key (adjacent ranges)
    for key, is_end in sorted(((int.from_bytes(k, "big"), e) for k, e in elements),
                              key=lambda x: (x[0], not x[1])):
        if is_end:
            if start is not None and key > start:
                out.append(start << bits | (key - 1))
            start = None
        else:
            start = key
    if start is not None:
        out.append(start << bits | top)
    return out


NFT_MSG_GETGEN = 16
NFTA_GEN_ID = 1


def generation() -> int:
    """The nftables generation of the current network namespace: +1 per committed
    transaction (any table's), so a test or a bench can count an apply's."""
    request = _msg((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN, NLM_F_REQUEST, 1, 0, b"")
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER) as sock:
        sock.bind((0, 0))
        sock.settimeout(DUMP_TIMEOUT_S)
        sock.send(request)
        buf = sock.recv(65536)
    length, kind = struct.unpack_from("=IH", buf)
    if kind == NLMSG_ERROR:
        (code,) = struct.unpack_from("=i", buf, 16)
        raise KernelError(f"nftables generation: {os.strerror(-code)}")
    for attr, data in _attrs(buf, 20, length):
        if attr == NFTA_GEN_ID:
            return int(struct.unpack("!I", data[:4])[0])
    raise KernelError("nftables generation: no id in the answer")
