"""Thin, safe access to legacy xtables through libiptc (python-iptables).

python-iptables caches one Table object per name for the whole process, with
autocommit on; a cached handle opened in one network namespace would commit into
that namespace even after the process (or a forked child) moved elsewhere.  Here
every handle is fresh, uncached and never autocommits: it is a snapshot of one
table of the *current* namespace, changed in memory and written with one commit()
(libiptc replaces the whole table in one setsockopt, so readers see before or after,
never half).  Rule entries are read from their raw bytes (comment, counters, target)
instead of through python-iptables' Match objects, which round-trip through the
process's C stdout.

Each rule also gets a content digest (engine.dataplane.shape): its IP header part
(addresses, interfaces, protocol, flags), its match bytes and its target, as the
kernel hands them back, without what changes when nothing about the rule does: the
counters, the blob offsets (next_offset, comefrom, a jump's verdict: the position of
its chain in the table) and an ipset match's set index (the set is named instead: a
set created again, e.g. by a rollback, may get another index).
"""
from __future__ import annotations

import ctypes as ct
import ctypes.util
import functools
import socket
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from nodewall.engine.dataplane.iptables.iptc_import import import_iptc
from nodewall.engine.dataplane.shape import content_digest
from nodewall.engine.errors import EnvironmentProblem, KernelError
from nodewall.engine.plan.desired import COMMENT_PREFIX, Family, TableName

TABLES: tuple[TableName, ...] = ("raw", "mangle", "filter")
FAMILIES: tuple[Family, ...] = (4, 6)
BUILTIN_CHAINS: dict[str, tuple[str, ...]] = {
    "raw": ("PREROUTING", "OUTPUT"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
}
_NAMES_FILE = {4: Path("/proc/net/ip_tables_names"), 6: Path("/proc/net/ip6_tables_names")}

_MATCH_HEADER = 32  # struct xt_entry_match: u16 size, char name[29], u8 revision
_COMMENT_LEN = 256  # struct xt_comment_info
_TARGET_NAME = slice(2, 31)  # in struct xt_entry_target (as in a match's header)
_SO_IP_SET = 83  # getsockopt(SOL_IP, SO_IP_SET): the ipset requests xt_set itself uses
_IP_SET_OP_GET_BYINDEX = 7
_IPSET_PROTOCOL = 6  # the oldest the kernel accepts for these requests
_IPSET_MAXNAMELEN = 32


def family_label(family: Family) -> str:
    return f"v{family}"


def loaded_tables(family: Family) -> frozenset[str]:
    """Legacy tables that exist in the current namespace (opening one that does not
    exist would create it, which nodewall only does when it has rules for it).  None
    when the module is not loaded, and none readable for a user other than root (the
    file is mode 0440): such a caller could not read the tables anyway."""
    try:
        return frozenset(_NAMES_FILE[family].read_text().split())
    except (FileNotFoundError, PermissionError):
        return frozenset()


def load() -> Any:
    try:
        return import_iptc()
    except Exception as exc:
        raise EnvironmentProblem(
            f"python-iptables cannot load libiptc: {exc}",
            hint="install iptables (legacy xtables libraries) and python-iptables") from exc


def ipset_name(index: int) -> bytes:
    """The name of the ipset at `index` in the current namespace (b"#<index>" when
    the kernel does not say): what `iptables-save` prints for a set match."""
    req = ct.create_string_buffer(
        struct.pack("=II", _IP_SET_OP_GET_BYINDEX, _IPSET_PROTOCOL)
        + struct.pack("=H", index).ljust(_IPSET_MAXNAMELEN, b"\0"))
    size = ct.c_uint(len(req.raw) - 1)  # create_string_buffer adds a NUL
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as sock:
            rv = _libc().getsockopt(sock.fileno(), socket.SOL_IP, _SO_IP_SET, req,
                                    ct.byref(size))
    except OSError:
        rv = -1
    name = req.raw[8:8 + _IPSET_MAXNAMELEN].split(b"\0", 1)[0]
    return name if rv == 0 and name else f"#{index}".encode()


@functools.cache
def _libc() -> Any:
    return ct.CDLL(ctypes.util.find_library("c"), use_errno=True)


@dataclass(frozen=True)
class RawRule:
    comment: str | None  # the text of the first comment match, if any
    target: str  # "ACCEPT", "nw-fi-eth0", "CT", ...
    goto: bool
    packets: int
    bytes: int
    digest: str = ""  # of the content (engine.dataplane.shape.content_digest)
    plain: bool = False  # matches every packet: no address, interface, protocol or
    #                      match but its comment (what a hook jump of nodewall's is)

    @property
    def nw_id(self) -> str | None:
        """The nodewall rule id in the comment ("hook" for a hook), else None."""
        if self.comment and self.comment.startswith(COMMENT_PREFIX):
            return self.comment[len(COMMENT_PREFIX):]
        return None


class Handle:
    """One table of one family of the current namespace, as a libiptc snapshot."""

    def __init__(self, family: Family, table: str):
        iptc = load()
        cls = iptc.Table if family == 4 else iptc.Table6
        self.family: Family = family
        self.name = table
        self._entry_size = ct.sizeof(iptc.ip4tc.ipt_entry if family == 4
                                     else iptc.ip6tc.ip6t_entry)
        self._goto_flag = 0x02 if family == 4 else 0x04
        self._set_names: dict[int, bytes] = {}  # ipset index -> name, for this snapshot
        self._t = object.__new__(cls)  # bypass iptc's per-process Table cache
        try:
            self._t._init(table, False)
        except iptc.IPTCError as exc:
            raise KernelError(
                f"cannot open the legacy {table} table ({family_label(family)}): {exc}",
                hint="is the kernel built with legacy xtables (CONFIG_IP_NF_IPTABLES_LEGACY)? "
                     "`iptables-legacy -t " + table + " -S` shows the same error") from exc

    # -- reading

    def chains(self) -> list[str]:
        lib, h = self._t._iptc, self._t._handle
        out: list[str] = []
        name = lib.iptc_first_chain(h)
        while name:
            out.append(name.decode())
            name = lib.iptc_next_chain(h)
        return out

    def is_chain(self, chain: str) -> bool:
        return bool(self._t.is_chain(chain))

    def rules(self, chain: str) -> Iterator[RawRule]:
        t = self._t
        entry = t.first_rule(chain)
        while entry:
            yield self._parse(entry)
            entry = t.next_rule(entry)

    def _parse(self, entry: Any) -> RawRule:
        raw = ct.string_at(ct.addressof(entry), entry.next_offset)
        comment = None
        ip = entry.ipv6 if self.family == 6 else entry.ip
        content = [raw[:ct.sizeof(ip)]]
        names: list[bytes] = []
        off = self._entry_size
        while off + _MATCH_HEADER <= entry.target_offset:
            size = int.from_bytes(raw[off:off + 2], "little")
            if size < _MATCH_HEADER:
                break
            name = raw[off + 2:off + 31].split(b"\0", 1)[0]
            names.append(name)
            data = raw[off + _MATCH_HEADER:off + size]
            if name == b"comment" and comment is None:
                comment = data[:_COMMENT_LEN].split(b"\0", 1)[0].decode(errors="replace")
            content.append(name + b"\0" + raw[off + 31:off + 32]
                           + self._match_content(name, data))
            off += size
        target = self._t.get_target(entry) or b""
        content.append(self._target_content(raw[entry.target_offset:entry.next_offset],
                                            target))
        return RawRule(comment=comment, target=target.decode(errors="replace"),
                       goto=bool(ip.flags & self._goto_flag),
                       packets=int(entry.counters.pcnt), bytes=int(entry.counters.bcnt),
                       digest=content_digest(b"\0".join(content)),
                       plain=not any(content[0]) and names == [b"comment"])

    @staticmethod
    def _target_content(tbytes: bytes, target: bytes) -> bytes:
        """A target as content: the standard one (name "") by the verdict libiptc
        names (ACCEPT, a chain: its raw verdict is a blob offset), any other by name,
        revision and data.  Header bytes after a name's NUL are left out: the kernel
        keeps a pointer there and hands back whatever the writer left."""
        name = tbytes[_TARGET_NAME].split(b"\0", 1)[0]
        if not name:
            return b"-j " + target
        return name + b"\0" + tbytes[31:32] + tbytes[_MATCH_HEADER:]

    def _match_content(self, name: bytes, data: bytes) -> bytes:
        """A match's data as content (its header is taken as for a target): an ipset
        match names its set (every revision of struct xt_set_info* starts with the
        u16 set index)."""
        if name != b"set" or len(data) < 2:
            return data
        index = int.from_bytes(data[:2], sys.byteorder)
        if index not in self._set_names:
            self._set_names[index] = ipset_name(index)
        return self._set_names[index] + data[2:]

    # -- changing (in memory until commit)

    def _check(self, rv: int, what: str) -> None:
        if rv != 1:
            raise KernelError(f"{self.name} {family_label(self.family)}: {what}: "
                              f"{self._t.strerror()}",
                              hint="nothing was committed for this table")

    def create_chain(self, chain: str) -> None:
        self._check(self._t._iptc.iptc_create_chain(chain.encode(), self._t._handle),
                    f"cannot create chain {chain}")

    def flush_chain(self, chain: str) -> None:
        self._check(self._t._iptc.iptc_flush_entries(chain.encode(), self._t._handle),
                    f"cannot flush chain {chain}")

    def delete_chain(self, chain: str) -> None:
        self._check(self._t._iptc.iptc_delete_chain(chain.encode(), self._t._handle),
                    f"cannot delete chain {chain}")

    def insert(self, chain: str, entry_buf: Any, position: int) -> None:
        """Insert before the rule at 1-based `position` (len+1 appends)."""
        rv = self._t._iptc.iptc_insert_entry(chain.encode(), ct.cast(entry_buf, ct.c_void_p),
                                             position - 1, self._t._handle)
        self._check(rv, f"cannot insert a rule into {chain} at {position}")

    def delete_at(self, chain: str, position: int) -> None:
        rv = self._t._iptc.iptc_delete_num_entry(chain.encode(), position - 1, self._t._handle)
        self._check(rv, f"cannot delete rule {position} of {chain}")

    def commit(self) -> None:
        rv = self._t._iptc.iptc_commit(self._t._handle)
        if rv != 1:
            raise KernelError(
                f"the kernel refused the new {self.name} table ({family_label(self.family)}): "
                f"{self._t.strerror()}",
                hint="the table is unchanged; `dmesg | tail` often names the match or "
                     "target the kernel lacks")

    def close(self) -> None:
        t = self._t
        if t._handle:
            t._iptc.iptc_free(t._handle)
            t._handle = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
