"""Pure translation of XdpState into the program's rule tables: rule rows (a rule
with more port ranges than NW_MAX_PORTS becomes several consecutive rows with the
same slot and action, so first-match order is unchanged), failsafe entries,
counter-slot allocation that keeps slots of surviving rule ids, and the build
configuration big enough for it all.

Failsafe entries count into slots too, under the ids of the raw chain's failsafe
rules (engine.planner_chains: synthetic ids from the role ("failsafe", "ingress",
"<entry>", "raw") for inbound entries and ("failsafe-return", "egress", "<entry>",
"raw") for the return traffic of outbound entries), so XDP failsafe hits show
under the same rule id as the iptables failsafe rule."""
from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from nodewall.engine.dataplane.xdp.layout import (
    NW_ACTION_ALLOW,
    NW_ACTION_DENY,
    BuildConfig,
    fs_bloom_bit,
    round_up,
    structs,
)
from nodewall.engine.errors import KernelError
from nodewall.engine.plan.desired import XdpInterface, XdpState
from nodewall.engine.plan.rule_ids import synthetic_id
from nodewall.engine.profile.model import Failsafe

_PROTO = {"tcp": 6, "udp": 17}


@dataclass(frozen=True)
class Row:
    slot: int
    action: int
    proto: int
    family: int
    ports: tuple[tuple[int, int], ...]
    src_bits: int


def rows_needed(iface: XdpInterface, max_ports: int) -> int:
    return sum(max(1, -(-len(r.dst_ports) // max_ports)) for r in iface.rules)


def failsafe_id(f: Failsafe, reverse: bool) -> str:
    """The id of the raw chain's failsafe rule for entry f (reverse: the rule that
    accepts the return traffic of an outbound entry)."""
    if reverse:
        return synthetic_id("failsafe-return", "egress", str(f), "raw")
    return synthetic_id("failsafe", "ingress", str(f), "raw")


def failsafe_entries(iface: XdpInterface) -> list[tuple[Failsafe, bool, str]]:
    """(entry, reverse, rule id) in the order the program checks them."""
    return ([(f, False, failsafe_id(f, False)) for f in iface.failsafe]
            + [(f, True, failsafe_id(f, True)) for f in iface.failsafe_return])


def slot_key(rule_id: str, iface: str) -> str:
    """The counter slot's key of `rule_id` on interface `iface`."""
    return f"{rule_id}@{iface}"


def split_slot_key(key: str) -> tuple[str, str]:
    """slot_key's inverse: (rule id, interface); interface "" for a key written
    before slots were per interface (a bare rule id)."""
    rid, sep, iface = key.rpartition("@")
    return (rid, iface) if sep else (key, "")


def counted_ids(xdp: XdpState) -> list[str]:
    """Every slot key that needs a counter slot: each interface's rules, then its
    failsafe entries (no repeats)."""
    ids = [slot_key(r.rule_id, i.iface) for i in xdp.interfaces for r in i.rules]
    ids += [slot_key(rid, i.iface) for i in xdp.interfaces for _, _, rid in failsafe_entries(i)]
    return list(dict.fromkeys(ids))


def needed_config(xdp: XdpState, base: BuildConfig | None = None) -> BuildConfig:
    """A config that fits xdp, at least as big as base (so growing never shrinks)."""
    b = base or BuildConfig()
    rows = max((rows_needed(i, b.max_ports) for i in xdp.interfaces), default=0)
    fs = max((len(i.failsafe) + len(i.failsafe_return) for i in xdp.interfaces), default=0)
    return BuildConfig(
        max_rules=round_up(rows, b.max_rules), max_fs=round_up(fs, b.max_fs),
        max_ports=b.max_ports, max_slots=round_up(len(counted_ids(xdp)), b.max_slots),
        max_ifaces=round_up(len(xdp.interfaces), b.max_ifaces),
        v6_ext_depth=b.v6_ext_depth)


def fits(cfg: BuildConfig, xdp: XdpState) -> bool:
    need = needed_config(xdp, BuildConfig(max_rules=1, max_fs=1, max_slots=1, max_ifaces=1,
                                          max_ports=cfg.max_ports))
    return (need.max_rules <= cfg.max_rules and need.max_fs <= cfg.max_fs
            and need.max_slots <= cfg.max_slots and need.max_ifaces <= cfg.max_ifaces)


def allocate_slots(rule_ids: list[str], old: Mapping[str, int], max_slots: int) -> dict[str, int]:
    """Keep the slots of ids that survive; new ids take slots not used by old ones
    (the old generation may still count into those until the flip)."""
    out: dict[str, int] = {}
    taken = set(old.values())
    for rid in rule_ids:
        if rid in old and rid not in out:
            out[rid] = old[rid]
    free = (s for s in range(max_slots) if s not in taken)
    for rid in rule_ids:
        if rid not in out:
            try:
                out[rid] = next(free)
            except StopIteration:
                reused = sorted(set(range(max_slots)) - set(out.values()))
                if not reused:
                    raise KernelError("out of XDP counter slots",
                                      hint="fewer untracked rules, or recompile") from None
                out[rid] = reused[0]
    return out


def rule_rows(iface: XdpInterface, slots: Mapping[str, int], max_ports: int) -> list[Row]:
    """`slots`: slot key (slot_key) -> counter slot."""
    rows: list[Row] = []
    for r in iface.rules:
        action = NW_ACTION_DENY if r.action == "deny" else NW_ACTION_ALLOW
        ports = [(p.first, p.last) for p in r.dst_ports]
        chunks = [tuple(ports[i:i + max_ports]) for i in range(0, len(ports), max_ports)] or [()]
        for ch in chunks:
            rows.append(Row(slots[slot_key(r.rule_id, iface.iface)], action, r.protocol or 0, r.family, ch, r.src_bits))
    return rows


def failsafe_entry(f: Failsafe) -> tuple[int, int, int, tuple[int, int], tuple[int, int]]:
    """(proto, family, port, addr q[2], mask q[2]) with the address words as the
    program reads them (raw network-order bytes loaded as little-endian u64)."""
    if f.net is None:
        return _PROTO[f.protocol], 0, f.port, (0, 0), (0, 0)
    net = ipaddress.ip_network(f.net, strict=False)
    width = 4 if net.version == 4 else 16
    addr = net.network_address.packed.ljust(16, b"\0")
    mask = net.netmask.packed[:width].ljust(16, b"\0")
    q = (int.from_bytes(addr[:8], "little"), int.from_bytes(addr[8:], "little"))
    m = (int.from_bytes(mask[:8], "little"), int.from_bytes(mask[8:], "little"))
    return _PROTO[f.protocol], net.version, f.port, q, m


def iface_value(cfg: BuildConfig, iface: XdpInterface, slots: Mapping[str, int]):
    """The struct nw_iface value for one interface."""
    st = structs(cfg)
    v = st.iface()
    rows = rule_rows(iface, slots, cfg.max_ports)
    fss = failsafe_entries(iface)
    if len(rows) > cfg.max_rules or len(fss) > cfg.max_fs:
        raise KernelError(f"{iface.iface}: {len(rows)} XDP rule rows / {len(fss)} "
                          f"failsafe entries exceed the program's {cfg.max_rules} / "
                          f"{cfg.max_fs}", hint="internal: the program should have been "
                          "recompiled bigger")
    v.n_rules, v.n_fs, v.present = len(rows), len(fss), 1
    for i, (f, reverse, rid) in enumerate(fss):
        proto, fam, port, q, m = failsafe_entry(f)
        e = v.fs[i]
        e.proto, e.family, e.port = proto, fam, port
        e.slot, e.sport = slots[slot_key(rid, iface.iface)], int(reverse)
        bit = fs_bloom_bit(proto, reverse, port)
        v.fs_bloom[bit >> 6] |= 1 << (bit & 63)
        e.addr[0], e.addr[1] = q
        e.mask[0], e.mask[1] = m
    for i, row in enumerate(rows):
        r = v.rules[i]
        r.src_bits, r.slot, r.action = row.src_bits, row.slot, row.action
        r.proto, r.family, r.n_ports = row.proto, row.family, len(row.ports)
        for j, (lo, hi) in enumerate(row.ports):
            r.ports[j].lo, r.ports[j].hi = lo, hi
    return v
