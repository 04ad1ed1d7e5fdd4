"""Collect a StatusReport: links, conntrack, per-rule counters (iptables and XDP)
mapped back to the TOML rules through the current generation's rule metadata,
the pending confirm, panic mode, drift against the recorded generation (with the
panic chains when panic is on), and what other tools have next to nodewall's objects
(foreign rules that reference them, foreign XDP programs), as warnings.

Counters are cheap to read; drift and foreign objects are not (the ipset headers of a
1M-entry set, `iptables-legacy-save`).  A caller that asks every half second (the
TUI's tick) passes a ChecksCache and a maximum age: drift and foreign found for the same
generation and panic state no longer ago than that are reused, and the report says how
old they are (`checks_age_s`).  Without a maximum age every call checks afresh."""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from nodewall.engine.dataplane.orchestrator import Orchestrator, Snapshot
from nodewall.engine.dataplane.protocol import ChainCounters
from nodewall.engine.dataplane.shape import ExpectedShape
from nodewall.engine.observe.conntrack import conntrack_info
from nodewall.engine.observe.links import list_interfaces
from nodewall.engine.observe.report import RuleStats, StatusReport
from nodewall.engine.plan.naming import chain_interface
from nodewall.engine.safety import panic as panic_mod
from nodewall.engine.safety.results import PendingConfirm
from nodewall.engine.safety.state_dir import StateStore, generation_words


def _hep_for(interfaces, heps: dict[str, str]):
    out = []
    wildcard = heps.get("*")
    for i in interfaces:
        name = heps.get(i.name) or (wildcard if i.name != "lo" else None)
        out.append(i if name is None else dataclasses.replace(i, host_endpoint=name))
    return out


def rule_stats(counters: ChainCounters, rules_meta: Mapping[str, Mapping[str, Any]]
               ) -> tuple[list[RuleStats], list[tuple[str, str]]]:
    """The kernel's counters ({(rule_id, backend, chain): (packets, bytes)}) as RuleStats
    of the recorded rules, one per chain (a rule shared by two host endpoints has a row
    per interface), in rule-id order, and the (rule_id, backend) pairs not recorded."""
    rules: list[RuleStats] = []
    unknown: list[tuple[str, str]] = []
    for (rid, backend, chain), (pkts, nbytes) in sorted(counters.items()):
        m = rules_meta.get(rid)
        if m is None:
            if (rid, backend) not in unknown:
                unknown.append((rid, backend))
            continue
        rules.append(RuleStats(id=rid, profile=m["profile"], policy=m["policy"],
                               direction=m["direction"], index=m["index"], action=m["action"],
                               backend=backend, packets=pkts, bytes=nbytes, tier=m["tier"],
                               summary=m["summary"], loc=m["loc"],
                               eval_order=m.get("eval_order", -1),
                               interface=chain_interface(chain), chain=chain))
    return rules, unknown


WRITES = {"iptables": "iptables-legacy (raw, mangle, filter), ipset",
          "nftables": "nftables (table inet nodewall)"}
RECOMMEND_NFT = ("this host's `iptables` is iptables-nft, so `iptables -S` and `nft list "
                 "ruleset` show none of nodewall's rules (they are in legacy xtables); "
                 "set [settings] packet_filter = \"nftables\" (or backend = \"nftables\") "
                 "to write them as nftables")


def packet_filter_lines(kernel: Orchestrator, packet_filter: str | None) -> dict[str, object]:
    """The StatusReport fields about iptables and the packet filter: where other tools'
    rules are, what `iptables` is, what nodewall writes, and whether nftables would
    suit this host better (the generation uses iptables on an iptables-nft host)."""
    mode = kernel.iptables_mode()
    writes = WRITES.get(packet_filter or "iptables", WRITES["iptables"]) + ", XDP"
    advice = RECOMMEND_NFT if packet_filter == "iptables" and mode.default == "nft" else None
    return {"iptables_mode": mode.kind, "iptables_command": mode.default, "writes": writes,
            "packet_filter": packet_filter, "recommendation": advice}


def _xdp_owned(interfaces, snapshot):
    """Whether each interface's XDP program is nodewall's, as the XDP dataplane knows
    it (by the ids of the programs nodewall pinned, not by the program's name)."""
    attachments = getattr(snapshot.observed.get("xdp"), "attachments", {})
    return [dataclasses.replace(i, xdp_owned=bool(a.owned))
            if (a := attachments.get(i.name)) is not None else i for i in interfaces]


@dataclass(frozen=True)
class Checks:
    """Drift and foreign objects found at `taken` (the cache's clock) for `key`
    (generation, panic marker)."""
    drift: tuple[str, ...]
    foreign: tuple[str, ...]
    key: tuple[object, ...]
    taken: float


class ChecksCache:
    """The last drift and foreign checks of one Service, for status calls that accept
    results up to some seconds old."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.last: Checks | None = None

    def recent(self, key: tuple[object, ...], max_age: float) -> Checks | None:
        """The last checks when they are for `key` and at most `max_age` s old."""
        last = self.last
        if last is None or max_age <= 0 or last.key != key \
                or self.clock() - last.taken > max_age:
            return None
        return last

    def record(self, drift: tuple[str, ...], foreign: tuple[str, ...],
               key: tuple[object, ...]) -> Checks:
        self.last = Checks(drift, foreign, key, self.clock())
        return self.last


def _checks(kernel: Orchestrator, expected: ExpectedShape, key: tuple[object, ...],
            cache: ChecksCache | None, max_age: float) -> tuple[Snapshot, Checks, float]:
    """(snapshot, checks, age in s): a counters-only snapshot and the cached checks when
    they are recent enough, else a full snapshot and checks run now (age 0)."""
    recent = cache.recent(key, max_age) if cache is not None else None
    if recent is not None:
        return kernel.counters_snapshot(), recent, max(0.0, cache.clock() - recent.taken)
    snapshot = kernel.snapshot()  # one read of every dataplane for counters and checks
    drift = tuple(str(d) for d in kernel.drift(expected, snapshot))
    foreign = tuple(kernel.foreign(snapshot))
    if cache is None:
        return snapshot, Checks(drift, foreign, key, 0.0), 0.0
    return snapshot, cache.record(drift, foreign, key), 0.0


def collect_status(store: StateStore, kernel: Orchestrator, *, netns: str | None,
                   checks: ChecksCache | None = None,
                   checks_max_age: float = 0.0) -> StatusReport:
    generation = store.current()
    meta = store.meta(generation) if generation is not None else None
    panic = panic_mod.read_marker(store.root)
    rules_meta = dict(meta.rules) if meta else {}
    heps = dict(meta.expected.host_endpoints) if meta else {}
    warnings: list[str] = []
    expected = meta.expected if meta else ExpectedShape()
    if panic is not None:
        rules_meta.update(panic_mod.rule_metas(panic))
        expected = panic_mod.overlay_shape(expected, panic)
        warnings.append(f"PANIC MODE since {time.ctime(panic.since)}: only failsafe traffic "
                        f"passes ({panic.describe()}); `nodewall panic off` ends it")

    key = (generation, None if panic is None else panic.since)
    snapshot, found, checks_age = _checks(kernel, expected, key, checks, checks_max_age)
    rules, unknown = rule_stats(kernel.chain_counters(snapshot), rules_meta)
    warnings += [f"kernel rule nw:{rid} ({backend}) is not in {generation_words(generation)}"
                 for rid, backend in unknown]

    pending = store.pending()
    pending_confirm = None
    if pending is not None:
        pending_confirm = PendingConfirm(pending.generation, pending.previous, pending.deadline,
                                         pending.seconds_left)
    warnings += [f"foreign: {f}" for f in found.foreign]
    notice = store.revert_notice()
    if notice is not None:
        warnings.insert(0, f"REVERTED: {notice.describe()}; `nodewall ack` acknowledges it")
    journal = store.journal()
    if journal is not None:
        warnings.append(f"an interrupted {journal.action} (pid {journal.pid}) is pending "
                        "recovery; the next nodewall command completes it")
    return StatusReport(
        netns=netns,
        **packet_filter_lines(kernel, meta.expected.packet_filter if meta else None),
        interfaces=tuple(_hep_for(_xdp_owned(list_interfaces(), snapshot), heps)),
        conntrack=conntrack_info(),
        rules=tuple(rules),
        generation=generation,
        pending_confirm=pending_confirm,
        drift=found.drift,
        checks_age_s=checks_age,
        panic=panic is not None,
        timestamp=time.time(),
        last_revert=None if notice is None else dataclasses.asdict(notice),
        quarantined=tuple(sorted(store.quarantine())),
        warnings=tuple(warnings),
    )
