"""Pure checks of the XDP backend: the Python mirror against bpf/nw_xdp.h, key
packing, set-bit merging, rule rows, slots and failsafe entries."""
from __future__ import annotations

import ctypes
import ipaddress
import re
import struct
from importlib import resources

import pytest
from nodewall.engine.dataplane.xdp import cidr_keys as K
from nodewall.engine.dataplane.xdp import layout as L
from nodewall.engine.dataplane.xdp import source_merge as T
from nodewall.engine.dataplane.xdp import sources as S
from nodewall.engine.dataplane.xdp.rule_rows import (
    allocate_slots,
    failsafe_entry,
    fits,
    iface_value,
    needed_config,
    rule_rows,
)
from nodewall.engine.errors import InputError, Loc
from nodewall.engine.plan.desired import XdpInterface, XdpRule, XdpSetSource, XdpState
from nodewall.engine.profile.model import Failsafe, PortRange

from bench.xdp_keys import pack_chunk

HEADER = resources.files("nodewall.bpf").joinpath("nw_xdp.h").read_text()


def header_defines() -> dict[str, int]:
    return {m[1]: int(m[2]) for m in re.finditer(r"#define (NW_\w+) (\d+)\b", HEADER)}


def test_mirror_constants_match_header():
    d = header_defines()
    cfg = L.BuildConfig()
    for field, value in cfg.to_json().items():
        assert d[f"NW_{field.upper()}"] == value, field
    for name in ("NW_GENERATIONS", "NW_IFARR_SLOTS", "NW_ACTION_ALLOW", "NW_ACTION_DENY",
                 "NW_ACT_NOMATCH",
                 "NW_ACT_ALLOW", "NW_ACT_DENY", "NW_ACT_FAILSAFE", "NW_ACT_NOTIP",
                 "NW_ACT_NOCFG", "NW_ACT_VLAN", "NW_ACT_MAX", "NW_FS_BLOOM_WORDS",
                 "NW_FS_HASH_MUL", "NW_FS_HASH_PROTO", "NW_FS_HASH_DIR"):
        assert getattr(L, name) == d[name], name
    assert len(L.ACT_NAMES) == d["NW_ACT_MAX"]


def test_mirror_struct_sizes_match_header_comments():
    pattern = r"struct (nw_\w+) \{[^}]*\};\s+/\* (\d+) bytes"
    sizes = {m[1]: int(m[2]) for m in re.finditer(pattern, HEADER)}
    assert sizes == {"nw_lpm4": ctypes.sizeof(L.Lpm4), "nw_lpm6": ctypes.sizeof(L.Lpm6),
                     "nw_host6": L.HOST6_KEY_SIZE, "nw_ifkey": ctypes.sizeof(L.IfKey), "nw_port_range": 4,
                     "nw_fs": ctypes.sizeof(L.Fs), "nw_counter": ctypes.sizeof(L.Counter)}
    assert ctypes.sizeof(L.Counter) == L.COUNTER_SIZE
    for cfg in (L.BuildConfig(), L.BuildConfig(max_rules=128, max_fs=32, max_ports=4)):
        st = L.structs(cfg)
        assert ctypes.sizeof(st.rule) == 16 + 4 * cfg.max_ports
        assert ctypes.sizeof(st.iface) == 40 + 40 * cfg.max_fs + (16 + 4 * cfg.max_ports) * \
            cfg.max_rules


def test_cflags_cover_every_build_define():
    flags = L.BuildConfig().cflags()
    guarded = set(re.findall(r"#ifndef (NW_\w+)", HEADER)) - {"NW_XDP_H"}
    assert {f[2:].split("=")[0] for f in flags} == guarded


def test_pack_v4_masks_host_bits_and_defaults_prefix():
    keys, n = pack_chunk("10.1.2.3/8\n192.0.2.7\n\n203.0.113.0/24\n", 4)
    assert n == 3
    got = [struct.unpack_from("<I4s", keys, i * 8) for i in range(n)]
    assert got == [(8, bytes([10, 0, 0, 0])), (32, bytes([192, 0, 2, 7])),
                   (24, bytes([203, 0, 113, 0]))]


def test_pack_v6():
    keys, n = pack_chunk("2001:db8:bad::1/48\nfd77::99\n", 6)
    assert n == 2
    pl, addr = struct.unpack_from("<I16s", keys, 0)
    assert pl == 48 and addr == ipaddress.ip_address("2001:db8:bad::").packed
    assert struct.unpack_from("<I16s", keys, 20)[0] == 128


@pytest.mark.parametrize("bad", ["10.0.0.300/8", "10.0.0.0/33", "nonsense", "10.0.0.0/x"])
def test_pack_rejects_bad_cidr(bad):
    with pytest.raises(InputError) as exc:
        pack_chunk(f"10.0.0.0/8\n{bad}\n", 4, "blocklist.txt")
    assert bad in exc.value.render() and "blocklist.txt" in exc.value.render()


def _src(bit: int, *nets: str, files=(), file_v4=0, file_v6=0) -> XdpSetSource:
    return XdpSetSource(bit, f"set{bit}", tuple(nets), tuple(files),
                        sum(":" not in n for n in nets) + file_v4,
                        sum(":" in n for n in nets) + file_v6)


def _decode(content: dict[bytes, int]) -> dict[str, int]:
    out = {}
    for k, v in content.items():
        pl = int.from_bytes(k[:4], "little")
        out[f"{ipaddress.ip_address(k[4:])}/{pl}"] = v
    return out


def test_merge_ors_duplicates_and_propagates_ancestor_bits():
    sets = [_src(0, "10.0.0.0/8", "10.1.0.0/16", "fd00::/8"),
            _src(3, "10.1.0.0/16", "10.1.2.0/24", "192.0.2.0/24"), _src(7, "10.1.2.3/32")]
    got = _decode(K.content_dict(T.iter_batches(sets, 4), 4))
    assert got == {"10.0.0.0/8": 1, "10.1.0.0/16": 1 | 8, "10.1.2.0/24": 1 | 8,
                   "192.0.2.0/24": 8, "10.1.2.3/32": 1 | 8 | 128}
    assert _decode(K.content_dict(T.iter_batches(sets, 6), 6)) == {"fd00::/8": 1}


def test_single_set_streams_its_bit_and_reads_files(tmp_path):
    f = tmp_path / "b.txt"
    f.write_text("# comment\n198.51.100.0/24  # trailing\n\n2001:db8::/32\n")
    s = _src(9, "10.0.0.1/32", files=[f], file_v4=1, file_v6=1)
    got = _decode(K.content_dict(T.iter_batches([s], 4), 4))
    assert got == {"10.0.0.1/32": 512, "198.51.100.0/24": 512}
    assert _decode(K.content_dict(T.iter_batches([s], 6), 6)) == {"2001:db8::/32": 512}


def test_source_digest_follows_file_content(tmp_path):
    f = tmp_path / "b.txt"
    f.write_text("10.0.0.0/8\n")
    d1 = S.source_digest([_src(1, files=[f])], 4)
    f.write_text("10.0.0.0/9\n")
    assert S.source_digest([_src(1, files=[f])], 4) != d1
    assert S.source_digest([_src(2, files=[f])], 4) != S.source_digest([_src(1, files=[f])], 4)


def _rule(rid, ports=(), action="deny", bits=1):
    return XdpRule(rid, action, 6, tuple(PortRange(p, p) for p in ports), bits)


def test_rule_rows_split_ports_keep_order_and_slot():
    iface = XdpInterface("eth0", (_rule("a", range(1, 20)), _rule("b", action="allow")), ())
    rows = rule_rows(iface, {"a@eth0": 4, "b@eth0": 2}, 8)
    assert [(r.slot, len(r.ports)) for r in rows] == [(4, 8), (4, 8), (4, 3), (2, 0)]
    assert rows[-1].action == L.NW_ACTION_ALLOW and rows[0].action == L.NW_ACTION_DENY


def test_slots_survive_and_new_ids_avoid_old_slots():
    got = allocate_slots(["x", "y", "z"], {"y": 0, "gone": 1}, 8)
    assert got["y"] == 0 and got["x"] not in (0, 1) and got["z"] not in (0, 1)
    assert len(set(got.values())) == 3


def test_a_rule_on_two_interfaces_counts_in_a_slot_per_interface():
    from nodewall.engine.dataplane.xdp.rule_rows import counted_ids, split_slot_key
    shared = _rule("a")
    xdp = XdpState(interfaces=(XdpInterface("eth0", (shared,), ()),
                               XdpInterface("eth1", (shared,), ())))
    ids = counted_ids(xdp)
    assert [split_slot_key(k) for k in ids] == [("a", "eth0"), ("a", "eth1")]
    slots = allocate_slots(ids, {}, 8)
    cfg = needed_config(xdp)
    first, second = (iface_value(cfg, i, slots).rules[0].slot for i in xdp.interfaces)
    assert first != second
    assert split_slot_key("a") == ("a", "")  # a slot recorded before: no interface


def test_config_grows_to_fit_and_fits():
    rules = tuple(_rule(f"r{i}", range(1, 10)) for i in range(40))  # 2 rows each
    xdp = XdpState(interfaces=(XdpInterface("eth0", rules, ()),))
    cfg = needed_config(xdp)
    assert cfg.max_rules == 128 and fits(cfg, xdp) and not fits(L.BuildConfig(), xdp)
    v = iface_value(cfg, xdp.interfaces[0], {f"r{i}@eth0": i for i in range(40)})
    assert v.n_rules == 80 and v.rules[1].slot == 0 and v.rules[2].slot == 1


def test_failsafe_entry_words_match_raw_address_bytes():
    proto, fam, port, q, m = failsafe_entry(Failsafe("tcp", 22, "10.0.0.0/8", Loc("x")))
    assert (proto, fam, port) == (6, 4, 22)
    assert q[0].to_bytes(8, "little")[:4] == bytes([10, 0, 0, 0]) and q[1] == 0
    assert m[0].to_bytes(8, "little")[:4] == bytes([255, 0, 0, 0]) and m[1] == 0
    assert failsafe_entry(Failsafe("udp", 68, None, Loc("x"))) == (17, 0, 68, (0, 0), (0, 0))
    _, fam6, _, _, m6 = failsafe_entry(Failsafe("tcp", 22, "fd00::/72", Loc("x")))
    assert fam6 == 6 and m6[0] == (1 << 64) - 1 and m6[1] == 0xFF


def test_failsafe_ids_are_the_raw_chain_failsafe_rule_ids():
    from nodewall.engine.dataplane.xdp.rule_rows import failsafe_entries
    from nodewall.engine.plan.planner import plan
    from nodewall.engine.profile.model import EntityMatch

    from tests.helpers.planner_kit import chain, hep, policy, profile, rule
    pol = policy("u", ingress=(rule("deny", src=EntityMatch(nets=("198.51.100.0/24",))),),
                 tier="untracked")
    d = plan(profile(heps=[hep()], policies=[pol], inbound=("tcp:22", "udp:68"),
                     outbound=("udp:53", "tcp:443@10.0.0.0/8")))
    (xi,) = d.xdp.interfaces
    entries = failsafe_entries(xi)
    assert [(str(f), rev) for f, rev, _ in entries] == [
        ("tcp:22", False), ("udp:68", False), ("udp:53", True), ("tcp:443@10.0.0.0/8", True)]
    raw = chain(d, 4, "raw", "nw-rfi-eth0").rules
    # (the return rule of tcp:443@10/8 cannot meet the deny from 198.51.100/24, so raw
    # keeps it behind the policy rules; ids and their order among failsafe rules agree)
    assert [rid for _, _, rid in entries] == [r.rule_id for r in raw
                                              if d.rules[r.rule_id].policy == "(failsafe)"]
    # the raw return rules match the SOURCE port and the remote as the source
    assert raw[2].match.src_ports == (PortRange(53, 53),) and not raw[2].match.dst_ports
    assert raw[4].match.src_net == "10.0.0.0/8"
    assert all(d.rules[rid].tier == "failsafe" for _, _, rid in entries)


def test_iface_value_failsafe_slots_and_source_port_flag():
    from nodewall.engine.dataplane.xdp.rule_rows import counted_ids, failsafe_entries, slot_key
    iface = XdpInterface("eth0", (_rule("a"),), (Failsafe("tcp", 22, None, Loc("x")),),
                         failsafe_return=(Failsafe("udp", 53, "10.0.0.0/8", Loc("x")),))
    xdp = XdpState(interfaces=(iface,))
    ids = counted_ids(xdp)
    assert ids[0] == "a@eth0" and len(ids) == 3
    slots = allocate_slots(ids, {}, 8)
    cfg = needed_config(xdp)
    v = iface_value(cfg, iface, slots)
    (_, _, in_id), (_, _, ret_id) = failsafe_entries(iface)
    assert v.n_fs == 2
    assert (v.fs[0].port, v.fs[0].sport, v.fs[0].slot) == (22, 0, slots[slot_key(in_id, "eth0")])
    assert (v.fs[1].port, v.fs[1].sport, v.fs[1].slot, v.fs[1].proto) == (
        53, 1, slots[slot_key(ret_id, "eth0")], 17)
    assert v.fs[1].addr[0].to_bytes(8, "little")[:4] == bytes([10, 0, 0, 0])
    # 17 inbound + 17 return entries need a bigger failsafe table
    many = tuple(Failsafe("tcp", p, None, Loc("x")) for p in range(1, 18))
    big = XdpState(interfaces=(XdpInterface("eth0", (), many, failsafe_return=many),))
    assert needed_config(big).max_fs == 64 and not fits(L.BuildConfig(), big)


def test_host_entries_split_from_prefixes_and_round_trip():
    hk, nh, nk, nn = K.pack_split(["10.1.2.3/8", "192.0.2.7", "198.51.100.9/32"], 4)
    assert (nh, nn) == (2, 1) and hk == bytes([192, 0, 2, 7, 198, 51, 100, 9])
    assert nk == struct.pack("<I4s", 8, bytes([10, 0, 0, 0]))
    sets = [_src(0, "10.0.0.0/8", "fd00::/8", "fd00::1"), _src(2, "10.0.0.1/32", "fd00::1/128")]
    for fam, host, full in ((4, "10.0.0.1/32", "10.0.0.0/8"), (6, "fd00::1/128", "fd00::/8")):
        batches = list(T.iter_batches(sets, fam))
        assert {b.host for b in batches} == {True, False}
        assert all(len(b.keys) == b.count * K.key_size(fam, b.host) for b in batches)
        content = K.content_dict(batches, fam)
        assert _decode(content) == {full: 1, host: 1 | 4}  # the host carries A's bit
        again = K.content_dict(K.batches_from_dict(content, fam), fam)
        assert again == content
    single = list(T.iter_batches([_src(3, "10.0.0.1", "10.0.0.0/24")], 4))
    assert [(b.host, b.count) for b in single] == [(True, 1), (False, 1)]


@pytest.mark.parametrize("family", [4, 6])
def test_merge_matches_brute_force_containment(family):
    import random
    rng = random.Random(family)
    base = ipaddress.ip_network("10.0.0.0/16" if family == 4 else "fd00::/112")
    w = base.max_prefixlen
    nets = []
    for _ in range(300):  # dense: many duplicates and nested prefixes across 3 sets
        pl = rng.choice([w - 12, w - 8, w - 4, w, w, w])
        addr = base.network_address + rng.randrange(base.num_addresses)
        nets.append(ipaddress.ip_network(f"{addr}/{pl}", strict=False))
    members: dict[int, list] = {0: [], 2: [], 5: []}
    for n in nets:
        members[rng.choice(list(members))].append(n)
    sets = [_src(bit, *(str(n) for n in ns)) for bit, ns in members.items()]
    got = _decode(K.content_dict(T.iter_batches(sets, family), family))
    want = {}
    for n in set(nets):
        want[str(n)] = sum(1 << bit for bit, ns in members.items()
                           if any(n.subnet_of(m) for m in ns))
    assert got == want


@pytest.mark.parametrize("family", [4, 6])
def test_one_big_set_streams_beside_small_ones_like_the_merge(family, tmp_path, monkeypatch):
    """One set above SMALL_MERGE streams (its entries never held together) beside small
    ones; values must equal the brute-force containment bits, duplicates included."""
    import random
    rng = random.Random(10 + family)
    base = ipaddress.ip_network("10.0.0.0/16" if family == 4 else "fd00::/112")
    w = base.max_prefixlen

    def nets(k: int) -> list:
        out = []
        for _ in range(k):
            pl = rng.choice([w - 12, w - 8, w - 4, w, w, w])
            addr = base.network_address + rng.randrange(base.num_addresses)
            out.append(ipaddress.ip_network(f"{addr}/{pl}", strict=False))
        return out

    big, s1, s2 = nets(400), nets(25), nets(25)
    big += s1[:5] + big[:10]  # shared with a small set, and duplicated
    f = tmp_path / "big.txt"
    f.write_text("".join(f"{n}\n" for n in big[3:]))
    monkeypatch.setattr(T, "SMALL_MERGE", 60)
    monkeypatch.setattr(T, "CHUNK_LINES", 37)  # many chunks
    members = {0: big, 2: s1, 5: s2}
    sets = [_src(0, *(str(n) for n in big[:3]), files=[f], file_v4=len(big),
                 file_v6=len(big)),
            _src(2, *(str(n) for n in s1)), _src(5, *(str(n) for n in s2))]
    streamed = list(T.streamed_batches(sets[0], sets[1:], family))
    assert sum(b.count for b in streamed) >= len(big)  # went through the stream
    got = _decode(K.content_dict(T.iter_batches(sets, family), family))
    want = {str(n): sum(1 << bit for bit, ns in members.items()
                        if any(n.subnet_of(m) for m in ns))
            for n in {*big, *s1, *s2}}
    assert got == want
    assert _decode(K.content_dict(streamed, family)) == want
