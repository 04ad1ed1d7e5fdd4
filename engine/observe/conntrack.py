"""Conntrack of the CURRENT network namespace: the count/max gauge, per-CPU statistics
and a bounded sample of the table summarised for the operator.

Everything is read through files that follow the reading task's namespace
(/proc/sys/net/netfilter, /proc/net/...) or netlink sockets opened in it.  The sample
stops after `limit` entries: a table of a million flows is never dumped every tick.

Note: since Linux 4.10 a namespace tracks nothing until a rule needs conntrack
(`-m conntrack`, `-m state`, NAT, ...).  A count of 0 may mean "not in use here".
"""
from __future__ import annotations

import ipaddress
import shutil
import subprocess
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nodewall.engine.errors import EnvironmentProblem, KernelError
from nodewall.engine.observe.report import ConntrackCpu, ConntrackInfo
from nodewall.engine.system import procfs
from nodewall.engine.system.netns import current_name

PROC_SYS = Path("/proc/sys/net/netfilter")
PROC_STAT = Path("/proc/net/stat/nf_conntrack")
PROC_TABLE = Path("/proc/net/nf_conntrack")
TOP = 10
TOOL_TIMEOUT_S = 10.0
_CPU_FIELDS = ("found", "invalid", "insert", "insert_failed", "drop", "early_drop", "error",
               "search_restart")
# a (protocol, port) is worth an untracked policy when it holds this share of the sample
HINT_MIN_SHARE = 0.10
HINT_MIN_ENTRIES = 10


@dataclass(frozen=True)
class Entry:
    """One conntrack entry, original direction."""

    family: str  # "ipv4" / "ipv6"
    protocol: str  # "tcp", "udp", "icmp", "icmpv6", "sctp", "unknown", ...
    state: str | None  # TCP/SCTP/DCCP state, None for the others
    src: str
    dst: str
    sport: int | None
    dport: int | None


@dataclass(frozen=True)
class UntrackedHint:
    protocol: str
    port: int
    entries: int
    share: float  # of the sampled entries
    short_lived: int  # TCP entries already closing (TIME_WAIT, CLOSE, FIN_WAIT, ...)

    @property
    def advice(self) -> str:
        return (f"{self.protocol}/{self.port} holds {self.entries} sampled entries "
                f"({self.share:.0%}); an untracked policy (do_not_track allow on ingress "
                f"with an egress return rule from port {self.port}) keeps these flows out "
                f"of conntrack")


@dataclass(frozen=True)
class ConntrackSample:
    """A bounded look at the table: at most `limit` entries were read."""

    sampled: int
    limit: int
    truncated: bool  # the table had more entries than were read
    source: str  # "procfs" / "conntrack-tool" / "unavailable"
    by_protocol: tuple[tuple[str, int], ...] = ()
    tcp_states: tuple[tuple[str, int], ...] = ()
    top_sources: tuple[tuple[str, int], ...] = ()
    top_destinations: tuple[tuple[str, int], ...] = ()
    top_dports: tuple[tuple[str, int, int], ...] = ()  # (protocol, port, entries)
    untracked_hints: tuple[UntrackedHint, ...] = ()
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "sampled": self.sampled, "limit": self.limit, "truncated": self.truncated,
            "source": self.source, "note": self.note,
            "by_protocol": dict(self.by_protocol), "tcp_states": dict(self.tcp_states),
            "top_sources": [{"address": a, "entries": n} for a, n in self.top_sources],
            "top_destinations": [{"address": a, "entries": n}
                                 for a, n in self.top_destinations],
            "top_dports": [{"protocol": p, "port": port, "entries": n}
                           for p, port, n in self.top_dports],
            "untracked_hints": [{"protocol": h.protocol, "port": h.port, "entries": h.entries,
                                 "share": round(h.share, 4), "short_lived": h.short_lived,
                                 "advice": h.advice} for h in self.untracked_hints],
        }


# --- count, max, per-CPU -------------------------------------------------------------

def _read_int(path: Path) -> int:
    try:
        return int(path.read_text().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0  # nf_conntrack not loaded
    except PermissionError as exc:
        raise EnvironmentProblem(f"cannot read {path}: {exc.strerror}",
                                 hint="run as root (or with CAP_NET_ADMIN)") from exc


def parse_cpu_stats(text: str, cpus: Sequence[int] | None = None) -> tuple[ConntrackCpu, ...]:
    """Parse /proc/net/stat/nf_conntrack: a header of column names, then one row of hex
    numbers per possible CPU (in CPU order; the CPU number itself is not printed)."""
    lines = text.splitlines()
    if not lines:
        return ()
    header = lines[0].split()
    rows = []
    for i, line in enumerate(lines[1:]):
        values = dict(zip(header, (int(v, 16) for v in line.split())))
        cpu = cpus[i] if cpus and i < len(cpus) else i
        rows.append(ConntrackCpu(cpu=cpu, **{f: values.get(f, 0) for f in _CPU_FIELDS}))
    return tuple(rows)


def _cpu_stats_netlink() -> tuple[ConntrackCpu, ...]:
    from pyroute2 import NFCTSocket  # lazy: loads nfnetlink only when procfs is missing

    try:
        with NFCTSocket() as sock:
            msgs = sock.stat()
    except OSError:
        return ()
    rows = []
    for msg in msgs:
        values = {f: int(msg.get_attr(f"CTA_STATS_{f.upper()}") or 0) for f in _CPU_FIELDS}
        rows.append(ConntrackCpu(cpu=int(msg["res_id"]), **values))
    return tuple(sorted(rows, key=lambda r: r.cpu))


def per_cpu_stats() -> tuple[ConntrackCpu, ...]:
    try:
        text = PROC_STAT.read_text()
    except FileNotFoundError:
        return _cpu_stats_netlink() if (PROC_SYS / "nf_conntrack_count").exists() else ()
    return parse_cpu_stats(text, procfs.possible_cpus())


def conntrack_info() -> ConntrackInfo:
    """Count, max and per-CPU statistics of the current namespace (zeros and no rows
    when nf_conntrack is not loaded)."""
    return ConntrackInfo(count=_read_int(PROC_SYS / "nf_conntrack_count"),
                         max=_read_int(PROC_SYS / "nf_conntrack_max"),
                         per_cpu=per_cpu_stats())


# --- the bounded sample --------------------------------------------------------------

def _addr(text: str) -> str:
    if ":" not in text:
        return text
    try:
        return ipaddress.ip_address(text).compressed  # procfs prints IPv6 uncompressed
    except ValueError:
        return text


def parse_entry(line: str) -> Entry | None:
    """One line of /proc/net/nf_conntrack or `conntrack -L -o extended`:
    `ipv4 2 tcp 6 117 ESTABLISHED src=.. dst=.. sport=.. dport=.. src=.. ... [ASSURED] ..`"""
    tokens = line.split()
    if len(tokens) < 6 or tokens[0] not in ("ipv4", "ipv6"):
        return None
    family, protocol = tokens[0], tokens[2]
    rest = tokens[5:]
    state = None
    if rest and "=" not in rest[0] and not rest[0].startswith("["):
        state = rest[0]
    fields: dict[str, str] = {}
    for tok in rest:
        key, eq, value = tok.partition("=")
        if eq and key not in fields:  # the first occurrence is the original direction
            fields[key] = value
    if "src" not in fields or "dst" not in fields:
        return None
    sport, dport = fields.get("sport"), fields.get("dport")
    return Entry(family=family, protocol=protocol, state=state,
                 src=_addr(fields["src"]), dst=_addr(fields["dst"]),
                 sport=int(sport) if sport and sport.isdigit() else None,
                 dport=int(dport) if dport and dport.isdigit() else None)


_CLOSING = {"TIME_WAIT", "CLOSE", "CLOSE_WAIT", "FIN_WAIT", "LAST_ACK"}


def summarise(entries: Iterable[Entry], *, limit: int, truncated: bool,
              source: str, note: str = "") -> ConntrackSample:
    protos: Counter[str] = Counter()
    states: Counter[str] = Counter()
    sources: Counter[str] = Counter()
    dests: Counter[str] = Counter()
    ports: Counter[tuple[str, int]] = Counter()
    closing: Counter[tuple[str, int]] = Counter()
    n = 0
    for e in entries:
        n += 1
        protos[e.protocol] += 1
        sources[e.src] += 1
        dests[e.dst] += 1
        if e.protocol == "tcp" and e.state:
            states[e.state] += 1
        if e.dport is not None and e.protocol in ("tcp", "udp", "sctp", "udplite"):
            ports[(e.protocol, e.dport)] += 1
            if e.state in _CLOSING:
                closing[(e.protocol, e.dport)] += 1
    hints = tuple(
        UntrackedHint(protocol=proto, port=port, entries=count, share=count / n,
                      short_lived=closing[(proto, port)])
        for (proto, port), count in ports.most_common(3)
        if proto in ("tcp", "udp") and count >= HINT_MIN_ENTRIES
        and count / n >= HINT_MIN_SHARE)
    return ConntrackSample(
        sampled=n, limit=limit, truncated=truncated, source=source, note=note,
        by_protocol=tuple(protos.most_common()),
        tcp_states=tuple(states.most_common()),
        top_sources=tuple(sources.most_common(TOP)),
        top_destinations=tuple(dests.most_common(TOP)),
        top_dports=tuple((p, port, c) for (p, port), c in ports.most_common(TOP)),
        untracked_hints=hints)


def _read(lines: Iterable[str], limit: int) -> tuple[list[Entry], bool]:
    """At most LIMIT parsed entries, and whether more lines followed."""
    taken: list[Entry] = []
    for line in lines:
        if len(taken) >= limit:
            return taken, True
        entry = parse_entry(line)
        if entry is not None:
            taken.append(entry)
    return taken, False


def _sample_procfs(limit: int) -> ConntrackSample:
    with PROC_TABLE.open("r", buffering=64 * 1024) as f:  # seq_file: read page by page
        entries, truncated = _read(f, limit)
    return summarise(entries, limit=limit, truncated=truncated, source="procfs")


def _sample_tool(tool: str, limit: int) -> ConntrackSample:
    proc = subprocess.Popen([tool, "-L", "-o", "extended"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    timer = threading.Timer(TOOL_TIMEOUT_S, proc.kill)  # a stuck dump never blocks us
    timer.start()
    try:
        assert proc.stdout is not None
        entries, truncated = _read(proc.stdout, limit)
    finally:
        timer.cancel()
        proc.kill()
        proc.wait(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()
    return summarise(entries, limit=limit, truncated=truncated, source="conntrack-tool")


def conntrack_sample(limit: int = 2000) -> ConntrackSample:
    """Read at most LIMIT entries of the current namespace's table and summarise them."""
    if limit <= 0:
        raise ValueError("limit must be positive")
    if not (PROC_SYS / "nf_conntrack_count").exists():
        return ConntrackSample(sampled=0, limit=limit, truncated=False, source="unavailable",
                               note="nf_conntrack is not loaded")
    try:
        return _sample_procfs(limit)
    except FileNotFoundError:
        pass  # kernel built without CONFIG_NF_CONNTRACK_PROCFS
    except PermissionError as exc:
        raise EnvironmentProblem(f"cannot read {PROC_TABLE}: {exc.strerror}",
                                 hint="run as root (or with CAP_NET_ADMIN)") from exc
    tool = shutil.which("conntrack")
    if tool is None:
        return ConntrackSample(sampled=0, limit=limit, truncated=False, source="unavailable",
                               note="no /proc/net/nf_conntrack and no `conntrack` binary; "
                                    "install conntrack-tools")
    return _sample_tool(tool, limit)


def conntrack_flush(*, allow_host: bool = False) -> None:
    """Delete every conntrack entry of the current namespace.  Refused in the namespace
    the process started in (the host's, usually) unless ALLOW_HOST."""
    if current_name() is None and not allow_host:
        raise EnvironmentProblem(
            "refusing to flush the conntrack table of the starting namespace",
            hint="enter the target namespace first (--netns NAME / netns.run_in_netns)")
    from pyroute2 import NFCTSocket

    try:
        with NFCTSocket() as sock:
            sock.flush()
    except OSError as exc:
        raise KernelError(f"conntrack flush failed: {exc}",
                          hint="is nf_conntrack_netlink available? (modprobe it)") from exc
