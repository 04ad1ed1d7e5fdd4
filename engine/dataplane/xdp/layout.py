"""The one Python mirror of bpf/nw_xdp.h: build configuration, constants, map
names and ctypes struct layouts.  tests/unit/test_xdp_layout.py parses the header
and checks every value here against it."""
from __future__ import annotations

import ctypes
from dataclasses import asdict, dataclass
from functools import cache

PROG_NAME = "nw_xdp"  # kernel program name (ownership: XDP programs named nw_...)
PROG_FILE = "nw_xdp.c"
HEADER_FILE = "nw_xdp.h"
OWNED_PREFIX = "nw_"

# fixed constants (#define in nw_xdp.h)
NW_GENERATIONS = 2
NW_IFARR_SLOTS = 128  # ifindexes below: rule table in the array nw_ifarr, else the hash
NW_ACTION_ALLOW = 1
NW_ACTION_DENY = 2
NW_ACT_NOMATCH = 0
NW_ACT_ALLOW = 1
NW_ACT_DENY = 2
NW_ACT_FAILSAFE = 3
NW_ACT_NOTIP = 4
NW_ACT_NOCFG = 5
NW_ACT_VLAN = 6
NW_ACT_MAX = 7
ACT_NAMES = ("nomatch", "allow", "deny", "failsafe", "notip", "nocfg", "vlan")

# maps the program declares (bcc table names = kernel map names)
MAP_ACTIVE = "nw_active"
MAP_IFCFG = "nw_ifcfg"
MAP_IFARR = "nw_ifarr"
MAP_SRC4 = "nw_src4"
MAP_SRC6 = "nw_src6"
MAP_HOST4 = "nw_host4"  # exact-match hash of the /32 entries (checked before the trie)
MAP_HOST6 = "nw_host6"  # ... of the /128 entries
MAP_CNT = "nw_cnt"
MAP_ACT = "nw_act"
PROGRAM_MAPS = (MAP_ACTIVE, MAP_IFARR, MAP_IFCFG, MAP_SRC4, MAP_SRC6, MAP_HOST4, MAP_HOST6,
                MAP_CNT, MAP_ACT)
# added after the first pinned layout: older pins lack them (their program is rebuilt)
LATER_MAPS = (MAP_IFARR, MAP_HOST4, MAP_HOST6)
# created by Python, not used by the program: the JSON metadata (slots -> rule ids, ...)
MAP_META = "nw_meta"
META_VALUE_SIZE = 256 * 1024
PIN_PROG = "prog"
# a freshly compiled program, pinned before it is attached anywhere (so that, even
# after a kill -9 before the full pin, nodewall knows the program is its own)
PIN_PROG_NEXT = "prog_next"

LPM4_KEY_SIZE = 8
LPM6_KEY_SIZE = 20
LPM_VALUE_SIZE = 8
HOST4_KEY_SIZE = 4
HOST6_KEY_SIZE = 16
FS_SIZE = 40
COUNTER_SIZE = 16
NW_FS_BLOOM_WORDS = 4
NW_FS_HASH_MUL = 2654435761
NW_FS_HASH_PROTO = 40503
NW_FS_HASH_DIR = 97


def fs_bloom_bit(proto: int, sport: bool, port: int) -> int:
    """The failsafe pre-filter bit of an entry (nw_fs_maybe in nw_xdp.c)."""
    h = (port * NW_FS_HASH_MUL + proto * NW_FS_HASH_PROTO + int(sport) * NW_FS_HASH_DIR)
    return (h & 0xFFFFFFFF) >> 24


@dataclass(frozen=True)
class BuildConfig:
    """The -D flags a program was compiled with (recorded in the pinned metadata)."""

    max_rules: int = 32
    max_fs: int = 16
    max_ports: int = 8
    max_slots: int = 256
    max_ifaces: int = 64
    v6_ext_depth: int = 4

    def cflags(self) -> list[str]:
        return [f"-DNW_{k.upper()}={v}" for k, v in asdict(self).items()]

    def to_json(self) -> dict[str, int]:
        return asdict(self)

    @staticmethod
    def from_json(d: dict[str, int]) -> BuildConfig:
        fields = BuildConfig.__dataclass_fields__
        return BuildConfig(**{k: int(v) for k, v in d.items() if k in fields})

    def rule_size(self) -> int:
        return 16 + 4 * self.max_ports

    def iface_size(self) -> int:
        return (8 + 8 * NW_FS_BLOOM_WORDS + FS_SIZE * self.max_fs
                + self.rule_size() * self.max_rules)


class Lpm4(ctypes.Structure):
    _fields_ = [("prefixlen", ctypes.c_uint32), ("addr", ctypes.c_uint8 * 4)]


class Lpm6(ctypes.Structure):
    _fields_ = [("prefixlen", ctypes.c_uint32), ("addr", ctypes.c_uint8 * 16)]


class IfKey(ctypes.Structure):
    _fields_ = [("ifindex", ctypes.c_uint32), ("gen", ctypes.c_uint32)]


class PortRange(ctypes.Structure):
    _fields_ = [("lo", ctypes.c_uint16), ("hi", ctypes.c_uint16)]


class Fs(ctypes.Structure):
    _fields_ = [("proto", ctypes.c_uint8), ("family", ctypes.c_uint8),
                ("port", ctypes.c_uint16), ("slot", ctypes.c_uint16),
                ("sport", ctypes.c_uint8), ("_pad", ctypes.c_uint8),
                ("addr", ctypes.c_uint64 * 2), ("mask", ctypes.c_uint64 * 2)]


class Counter(ctypes.Structure):
    _fields_ = [("packets", ctypes.c_uint64), ("bytes", ctypes.c_uint64)]


@dataclass(frozen=True)
class Structs:
    rule: type[ctypes.Structure]
    iface: type[ctypes.Structure]


@cache
def structs(cfg: BuildConfig) -> Structs:
    """struct nw_rule / nw_iface for one build configuration.  Memoized for the
    process: a pure function of a frozen config, and a process meets only the few
    configs of the programs it compiles or opens (sizes grow in powers of two)."""
    rule = type("Rule", (ctypes.Structure,), {"_fields_": [
        ("src_bits", ctypes.c_uint64), ("slot", ctypes.c_uint16),
        ("action", ctypes.c_uint8), ("proto", ctypes.c_uint8),
        ("family", ctypes.c_uint8), ("n_ports", ctypes.c_uint8),
        ("_pad", ctypes.c_uint16), ("ports", PortRange * cfg.max_ports)]})
    iface = type("Iface", (ctypes.Structure,), {"_fields_": [
        ("n_fs", ctypes.c_uint16), ("n_rules", ctypes.c_uint16), ("present", ctypes.c_uint32),
        ("fs_bloom", ctypes.c_uint64 * NW_FS_BLOOM_WORDS), ("fs", Fs * cfg.max_fs),
        ("rules", rule * cfg.max_rules)]})
    assert ctypes.sizeof(rule) == cfg.rule_size()
    assert ctypes.sizeof(iface) == cfg.iface_size()
    return Structs(rule=rule, iface=iface)


def ifarr_index(ifindex: int, gen: int) -> int | None:
    """The nw_ifarr slot of (ifindex, gen); None when the table lives in the hash."""
    return ifindex * NW_GENERATIONS + gen if 0 <= ifindex < NW_IFARR_SLOTS else None


def round_up(n: int, floor: int) -> int:
    """Next power of two >= max(n, floor): sizes grow in steps so that small profile
    changes do not force a recompile."""
    v = floor
    while v < n:
        v *= 2
    return v
