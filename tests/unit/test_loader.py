from __future__ import annotations

import math
import textwrap
from pathlib import Path

import pytest
from nodewall.engine.errors import InputError, InputErrors, Loc
from nodewall.engine.nets.baseline import BaselineStore
from nodewall.engine.profile.loader import load_profiles
from nodewall.engine.profile.model import (
    DEFAULT_FAILSAFE_INBOUND,
    DEFAULT_FAILSAFE_OUTBOUND,
    DEFAULT_MAX_SET_ENTRIES,
    IcmpMatch,
    PortRange,
    Profile,
)

DESIGN_EXAMPLE = (Path(__file__).parent.parent / "data" / "design_example.toml").read_text()

BLOCKLIST = "# bad actors\n198.51.100.7\n198.51.100.0/24   # a whole net\n\n2001:db8::1\n"


def write(tmp_path: Path, text: str, name: str = "p.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def load(tmp_path: Path, text: str, **kw: object) -> Profile:
    return load_profiles([write(tmp_path, text)], **kw)  # type: ignore[arg-type]


def errors_of(tmp_path: Path, text: str, name: str = "p.toml") -> list[InputError]:
    path = write(tmp_path, text, name)
    with pytest.raises(InputErrors) as info:
        load_profiles([path])
    for e in info.value.errors:
        assert e.loc.line >= 1 and e.loc.col >= 1
        assert e.exit_code == 2
    return info.value.errors


def one_error(tmp_path: Path, text: str) -> InputError:
    errs = errors_of(tmp_path, text)
    assert len(errs) == 1, [e.render() for e in errs]
    return errs[0]


# ---------------------------------------------------------------- the DESIGN example

def test_design_example(tmp_path: Path) -> None:
    (tmp_path / "blocklist.txt").write_text(BLOCKLIST)
    path = tmp_path / "redis-host.toml"
    path.write_text(DESIGN_EXAMPLE)
    profile = load_profiles([str(path)])
    f = str(path)
    assert profile.files == (f,)
    assert profile.warnings == ()

    s = profile.settings
    assert (s.backend, s.xdp_mode, s.max_set_entries) == ("auto", "auto", DEFAULT_MAX_SET_ENTRIES)
    assert [str(x) for x in s.failsafe_inbound] == ["tcp:22", "udp:68"]
    assert [str(x) for x in s.failsafe_outbound] == ["udp:53", "udp:67", "tcp:443@10.0.0.0/8"]
    assert s.failsafe_outbound[2].loc == Loc(f, 6, 42)
    assert s.loc == Loc(f, 2, 1)

    (hep,) = profile.host_endpoints
    assert (hep.name, hep.interface, hep.expected_ips) == ("uplink", "eth0", ("192.0.2.10",))
    assert dict(hep.labels) == {"hep": "redis-host"}
    assert hep.loc == Loc(f, 8, 1)

    (ns,) = profile.network_sets
    assert ns.name == "blocklist" and dict(ns.labels) == {"list": "drop"}
    assert ns.nets == ("203.0.113.0/24", "2001:db8:bad::/48")
    assert ns.nets_file is not None
    assert ns.nets_file.path == tmp_path / "blocklist.txt"
    assert (ns.nets_file.count_v4, ns.nets_file.count_v6) == (2, 1)
    assert ns.nets_file.loc == Loc(f, 18, 13)
    assert (ns.count(4), ns.count(6)) == (3, 2)

    names = [p.name for p in profile.policies]
    assert names == ["drop-blocklist", "redis-untracked", "ssh-and-icmp"]
    drop, redis, ssh = profile.policies
    assert drop.types == ("ingress",) and drop.tier == "untracked" and drop.order == 10
    assert drop.ingress[0].action == "deny"
    assert drop.ingress[0].source.selector == 'list == "drop"'
    assert drop.ingress[0].loc == Loc(f, 28, 3)
    assert drop.loc == Loc(f, 20, 1) and drop.profile == f

    assert redis.selector == 'has(hep) && hep == "redis-host"'
    assert redis.types == ("ingress", "egress")  # inferred
    (ing,), (eg,) = redis.ingress, redis.egress
    assert ing.protocol == "tcp" and ing.source.nets == ("10.0.0.0/8",)
    assert ing.destination.ports == (PortRange(6379, 6379),)
    assert ing.destination.loc == Loc(f, 43, 17)
    assert eg.source.ports == (PortRange(6379, 6379),)

    assert ssh.tier == "normal" and ssh.types == ("ingress",)
    assert ssh.ingress[0].destination.ports == (PortRange(22, 22), PortRange(8000, 8080))
    assert ssh.ingress[1].protocol == "icmp"


def test_design_example_errors_point_into_the_blocklist(tmp_path: Path) -> None:
    (tmp_path / "blocklist.txt").write_text("10.0.0.1\n10.0.0.300/24\n")
    path = tmp_path / "redis-host.toml"
    path.write_text(DESIGN_EXAMPLE)
    with pytest.raises(InputErrors) as info:
        load_profiles([path])
    (err,) = info.value.errors
    assert err.loc == Loc(str(tmp_path / "blocklist.txt"), 2, 1)
    assert "bad CIDR '10.0.0.300/24'" in err.message


# ---------------------------------------------------------------- defaults and inference

def test_minimal_profile_defaults(tmp_path: Path) -> None:
    p = load(tmp_path, """
        [[policies]]
        name = "p"
    """)
    assert [str(x) for x in p.settings.failsafe_inbound] == list(DEFAULT_FAILSAFE_INBOUND)
    assert [str(x) for x in p.settings.failsafe_outbound] == list(DEFAULT_FAILSAFE_OUTBOUND)
    (pol,) = p.policies
    assert pol.order == math.inf and pol.selector == "all()" and pol.types == ("ingress",)
    assert (pol.do_not_track, pol.pre_dnat, pol.apply_on_forward) == (False, False, False)


def test_empty_failsafe_lists_disable(tmp_path: Path) -> None:
    p = load(tmp_path, """
        [settings]
        failsafe_inbound = []
        failsafe_outbound = []
        max_set_entries = 10
    """)
    assert p.settings.failsafe_inbound == () and p.settings.failsafe_outbound == ()
    assert p.settings.max_set_entries == 10


@pytest.mark.parametrize("rules,types", [
    ("", ("ingress",)),
    ("[[policies.ingress]]\naction = 'allow'", ("ingress",)),
    ("[[policies.egress]]\naction = 'allow'", ("egress",)),
    ("[[policies.ingress]]\naction = 'allow'\n[[policies.egress]]\naction = 'allow'",
     ("ingress", "egress")),
])
def test_types_inference(tmp_path: Path, rules: str, types: tuple[str, ...]) -> None:
    p = load(tmp_path, "[[policies]]\nname = 'p'\n" + rules + "\n")
    assert p.policies[0].types == types


def test_explicit_types_normalized(tmp_path: Path) -> None:
    p = load(tmp_path, "[[policies]]\nname = 'p'\ntypes = ['egress', 'ingress']\n")
    assert p.policies[0].types == ("ingress", "egress")


def test_policies_sorted_by_order_then_name_across_files(tmp_path: Path) -> None:
    a = write(tmp_path, """
        [[policies]]
        name = "zz"
        order = 5
        [[policies]]
        name = "last"
    """, "a.toml")
    b = write(tmp_path, """
        [[policies]]
        name = "aa"
        order = 5
        [[policies]]
        name = "first"
        order = -1.5
    """, "b.toml")
    p = load_profiles([str(a), b])
    assert [x.name for x in p.policies] == ["first", "aa", "zz", "last"]
    assert p.files == (str(a), str(b))
    assert p.policies[1].profile == str(b)


def test_rule_fields(tmp_path: Path) -> None:
    p = load(tmp_path, """
        [[policies]]
        name = "p"
        [[policies.ingress]]
        action = "pass"
        protocol = 17
        not_protocol = "TCP"
        ip_version = 6
        source = { nets = ["2001:DB8::1"], not_nets = ["2001:db8::/32"], not_ports = ["1:2"] }
        destination = { selector = "has(a)", not_selector = "b in {'y','x'}" }
        [[policies.ingress]]
        action = "log"
        protocol = "icmpv6"
        icmp = { type = 128, code = 0 }
        not_icmp = { type = 1 }
        [[policies.ingress]]
        action = "deny"
        protocol = 99
    """)
    r1, r2, r3 = p.policies[0].ingress
    assert (r1.protocol, r1.not_protocol, r1.ip_version) == ("udp", "tcp", 6)
    assert r1.source.nets == ("2001:db8::1/128",) and r1.source.not_nets == ("2001:db8::/32",)
    assert r1.source.not_ports == (PortRange(1, 2),)
    assert r1.destination.selector == "has(a)"
    assert r1.destination.not_selector == 'b in {"x", "y"}'
    assert r2.icmp == IcmpMatch(128, 0) and r2.not_icmp == IcmpMatch(1, None)
    assert r3.protocol == "99"


def test_nets_are_normalized(tmp_path: Path) -> None:
    p = load(tmp_path, """
        [[network_sets]]
        name = "n"
        nets = ["10.1.2.3/8", "192.0.2.1", "2001:0db8:0000::/32"]
    """)
    assert p.network_sets[0].nets == ("10.0.0.0/8", "192.0.2.1/32", "2001:db8::/32")


def test_hep_interface_star_and_label_keys(tmp_path: Path) -> None:
    p = load(tmp_path, """
        [[host_endpoints]]
        name = "all-ifaces"
        interface = "*"
        expected_ips = ["2001:DB8::10"]
        labels = { "projectcalico.org/name" = "n1", "role" = "", "a_b.c-d" = "x.y-z_1" }
    """)
    (hep,) = p.host_endpoints
    assert hep.interface == "*" and hep.expected_ips == ("2001:db8::10",)
    assert hep.labels["projectcalico.org/name"] == "n1"


def test_nets_file_relative_to_the_profile(tmp_path: Path) -> None:
    sub = tmp_path / "conf"
    sub.mkdir()
    (sub / "lists").mkdir()
    (sub / "lists" / "x.txt").write_text("10.0.0.0/0\n::/0\n")
    path = write(sub, """
        [[network_sets]]
        name = "n"
        nets_file = "lists/x.txt"
    """)
    p = load_profiles([path])
    nf = p.network_sets[0].nets_file
    assert nf is not None and nf.path == sub / "lists" / "x.txt"
    assert (nf.count_v4, nf.count_v6) == (2, 2)  # a /0 is two /1s


def test_baseline_store_is_used(tmp_path: Path) -> None:
    nets = tmp_path / "n.txt"
    nets.write_text("".join(f"10.0.{i // 256}.{i % 256}\n" for i in range(2000)))
    store = BaselineStore(tmp_path / "state")
    text = "[[network_sets]]\nname = 'n'\nnets_file = 'n.txt'\n"
    p1 = load(tmp_path, text, baselines=store)
    store.put(nets, (p1.network_sets[0].count(4), 0))
    nets.write_text(nets.read_text().replace("10.0.3.7\n", "10.0.3.7\n10.9.9.9\n::1\n"))
    p2 = load(tmp_path, text, baselines=store)
    nf = p2.network_sets[0].nets_file
    assert nf is not None and (nf.count_v4, nf.count_v6) == (2001, 1)
    nets.write_text(nets.read_text().replace("10.9.9.9\n", "10.9.9.x\n"))
    errs = errors_of(tmp_path, text)
    assert errs[0].loc == Loc(str(nets), 777, 1)  # 10.0.3.7 is line 776


# ---------------------------------------------------------------- warnings

def test_asymmetric_untracked_allow_warns(tmp_path: Path) -> None:
    p = load(tmp_path, """
        [[host_endpoints]]
        name = "h"
        interface = "eth0"
        [[policies]]
        name = "u"
        do_not_track = true
        apply_on_forward = true
        [[policies.ingress]]
        action = "allow"
        protocol = "tcp"
    """)
    (w,) = p.warnings
    assert w.startswith(f"{tmp_path / 'p.toml'}:9:1: warning: untracked policy 'u' allows "
                        "ingress on host endpoint 'h'")


def test_symmetric_untracked_allow_in_two_policies_is_quiet(tmp_path: Path) -> None:
    p = load(tmp_path, """
        [[host_endpoints]]
        name = "h"
        interface = "eth0"
        labels = { a = "b" }
        [[policies]]
        name = "in"
        do_not_track = true
        apply_on_forward = true
        [[policies.ingress]]
        action = "allow"
        [[policies]]
        name = "out"
        selector = "a == 'b'"
        do_not_track = true
        apply_on_forward = true
        [[policies.egress]]
        action = "allow"
    """)
    assert p.warnings == ()


def test_untracked_not_selecting_any_hep_does_not_warn(tmp_path: Path) -> None:
    p = load(tmp_path, """
        [[host_endpoints]]
        name = "h"
        interface = "*"
        [[policies]]
        name = "u"
        selector = "has(nothing)"
        do_not_track = true
        apply_on_forward = true
        [[policies.egress]]
        action = "allow"
    """)
    assert p.warnings == ()


# ---------------------------------------------------------------- errors

@pytest.mark.parametrize("text,line,col,message", [
    ("[[policies]]\nname = 'p'\n[[policies.ingress]]\nsorce = {}\naction = 'allow'\n", 4, 1,
     "unknown key 'sorce' in [[policies.ingress]] (did you mean 'source'?)"),
    (("[[policies]]\nname = 'p'\n[[policies.ingress]]\naction = 'allow'\n"
     "source = { nett = [] }\n"), 5, 12, ("unknown key 'nett' in [[policies.ingress]].source "
     "(did you mean 'nets'?)")),
    ("[settings]\nbakend = 'auto'\n", 2, 1, "unknown key 'bakend' in [settings]"),
    ("polices = []\n", 1, 1, ("unknown key 'polices' in the top level (did you mean "
     "'policies'?)")),
    ("[[host_endpoints]]\ninterface = 'eth0'\n", 1, 1,
     "[[host_endpoints]] is missing the required key 'name'"),
    ("[[policies]]\nname = 'p'\n  [[policies.egress]]\n  protocol = 'tcp'\n", 3, 3,
     "missing the required key 'action'"),
    ("[[policies]]\nname = 'p'\norder = 'first'\n", 3, 9,
     "'order' in [[policies]] must be a number, not a string"),
    ("[[policies]]\nname = 'p'\ndo_not_track = 1\n", 3, 16, "must be true or false"),
    (("[[policies]]\nname = 'p'\n[[policies.ingress]]\naction = 'allow'\nprotocol = 'tcp'\n"
     "destination = { ports = [80, 70000] }\n"), 6, 30, "port 70000 out of range 0-65535"),
    (("[[policies]]\nname = 'p'\n[[policies.ingress]]\naction = 'allow'\nprotocol = 'udp'\n"
     "destination = { ports = ['90:80'] }\n"), 6, 26, "reversed port range '90:80'"),
    (("[[policies]]\nname = 'p'\n[[policies.ingress]]\naction = 'allow'\n"
     "destination = { ports = [80] }\n"), 5, 25, "ports need protocol tcp, udp, sctp or udplite"),
    (("[[policies]]\nname = 'p'\n[[policies.ingress]]\naction = 'allow'\nprotocol = 'tcp'\n"
     "icmp = { type = 8 }\n"), 6, 8, "'icmp' needs protocol = \"icmp\" or \"icmpv6\""),
    (("[[policies]]\nname = 'p'\n[[policies.ingress]]\naction = 'allow'\nprotocol = 'icmp'\n"
     "icmp = { code = 8 }\n"), 6, 17, "icmp 'code' needs a 'type'"),
    (("[[policies]]\nname = 'p'\n[[policies.ingress]]\naction = 'allow'\nprotocol = 'icmp'\n"
     "source = { nets = ['10.0.0.0/8', 'fd00::/8'] }\n"), 6, 34, "v4/v6 mix-up"),
    (("[[policies]]\nname = 'p'\n[[policies.ingress]]\naction = 'allow'\nprotocol = 'icmpv6'\n"
     "destination = { not_nets = ['10.0.0.0/8'] }\n"), 6, 29, "v4/v6 mix-up"),
    (("[[policies]]\nname = 'p'\n[[policies.ingress]]\naction = 'allow'\nip_version = 4\n"
     "destination = { nets = ['::1'] }\n"), 6, 25, "v4/v6 mix-up: '::1/128' is IPv6"),
    (("[[policies]]\nname = 'p'\n[[policies.ingress]]\naction = 'allow'\n"
     "source = { nets = ['10.0.0.0/8'] }\ndestination = { nets = ['::1'] }\n"), 6, 25,
     "the rule can never match"),
    (("[[policies]]\nname = 'p'\n[[policies.ingress]]\naction = 'allow'\nprotocol = 'icmp'\n"
     "ip_version = 6\n"), 6, 14, "v4/v6 mix-up: protocol icmp is IPv4-only"),
    ("[[policies]]\nname = 'p'\n[[policies.ingress]]\naction = 'accept'\n", 4, 10,
     "bad action 'accept'"),
    ("[[policies]]\nname = 'p'\nselector = \"role == \\\"x\\\" && \"\n", 3, 30,
     "unexpected end of selector"),
    ("[[policies]]\nname = 'p'\nselector = \"a == \\\"x\\\" b\"\n", 3, 24,
     "unexpected 'b' at end of selector"),
    ("[[policies]]\nname = 'p'\ntypes = ['ingress']\n[[policies.egress]]\naction = 'allow'\n",
     3, 9, "policy has egress rules but types does not include \"egress\""),
    (("[[policies]]\nname = 'p'\npre_dnat = true\napply_on_forward = true\n"
     "types = ['ingress', 'egress']\n"), 5, 9, "pre_dnat policy cannot have type \"egress\""),
    ("[[host_endpoints]]\nname = 'h'\ninterface = 'eth0'\nexpected_ips = ['10.0.0.0/8']\n",
     4, 17, "bad IP address '10.0.0.0/8': write an address, not a CIDR"),
    ("[[host_endpoints]]\nname = 'h'\ninterface = 'eth0'\nlabels = { a = 1 }\n", 4, 16,
     "label 'a' must be a string, not an integer"),
    ("[[host_endpoints]]\nname = 'h'\ninterface = 'eth0'\nlabels = { a = 'has space' }\n",
     4, 16, "bad label value 'has space'"),
    ("[[host_endpoints]]\nname = 'h'\ninterface = 'a-very-long-interface'\n", 3, 13,
     "must be 1-15 bytes long"),
    (("[[host_endpoints]]\nname = 'a'\ninterface = 'eth0'\n[[host_endpoints]]\nname = 'b'\n"
     "interface = 'eth0'\n"), 4, 1, "interface 'eth0' is already used by host endpoint 'a'"),
    ("host_endpoints = 'x'\n", 1, 1, "'host_endpoints' must be an array of tables"),
    ("[host_endpoints]\nname = 'x'\n", 1, 2, "'host_endpoints' must be an array of tables"),
    (("[[network_sets]]\nname = 'n'\nnets = ['10.0.0.0/8', 'fd00::/8', '::/0']\n"
     "[settings]\nmax_set_entries = 2\n"), 3, 8, "network set 'n' has 3 IPv6 members"),
    ("[[network_sets]]\nname = 'n'\nnets_file = '.'\n", 3, 13, "is a directory"),
    ("[[policies]]\nname = 'p'\norder = nan\n", 3, 9, "must be a number, not nan"),
])
def test_located_errors(tmp_path: Path, text: str, line: int, col: int, message: str) -> None:
    err = errors_of(tmp_path, text)[0]
    assert (err.loc.line, err.loc.col) == (line, col), err.render()
    assert err.loc.file == str(tmp_path / "p.toml")
    assert message in err.message, err.render()


def test_errors_are_collected_across_items_and_files(tmp_path: Path) -> None:
    a = write(tmp_path, """
        [[policies]]
        name = "p"
        order = "x"
        [[policies]]
        name = "q"
        selector = "bad"
        [[host_endpoints]]
        name = "h"
    """, "a.toml")
    b = write(tmp_path, "x = [\n", "b.toml")
    c = write(tmp_path, "[[policies]]\nname = 'p'\n", "c.toml")
    with pytest.raises(InputErrors) as info:
        load_profiles([a, b, c])
    got = [(e.loc.file, e.loc.line) for e in info.value.errors]
    assert got == [(str(a), 4), (str(a), 7), (str(a), 8), (str(b), 2)]
    # c's 'p' is not a duplicate: a's 'p' had an error and was left out


def test_duplicate_names_across_files(tmp_path: Path) -> None:
    a = write(tmp_path, "[[policies]]\nname = 'p'\n", "a.toml")
    b = write(tmp_path, "\n[[policies]]\nname = 'p'\n[[network_sets]]\nname = 'p'\n", "b.toml")
    with pytest.raises(InputErrors) as info:
        load_profiles([a, b])
    (err,) = info.value.errors
    assert err.loc == Loc(str(b), 3, 8)
    assert f"policy 'p' already defined at {a}:2:8" in err.message


def test_settings_in_two_files(tmp_path: Path) -> None:
    a = write(tmp_path, "[settings]\nbackend = 'xdp'\n", "a.toml")
    b = write(tmp_path, "[settings]\nbackend = 'iptables'\n", "b.toml")
    with pytest.raises(InputErrors) as info:
        load_profiles([a, b])
    assert "[settings] already defined at" in info.value.errors[0].message


def test_syntax_error_location(tmp_path: Path) -> None:
    err = one_error(tmp_path, "[[policies]]\nname = 'p'\norder = 1 2\n")
    assert (err.loc.line, err.loc.col) == (3, 11)
    assert err.message.startswith("TOML syntax error") and " at line " not in err.message


def test_duplicate_key_points_at_the_second_definition(tmp_path: Path) -> None:
    err = one_error(tmp_path, "[[policies]]\nname = 'p'\n\n\nname = 'q'\n")
    assert (err.loc.line, err.loc.col) == (5, 1)


def test_missing_and_unreadable_profile(tmp_path: Path) -> None:
    with pytest.raises(InputErrors) as info:
        load_profiles([tmp_path / "nope.toml", tmp_path])
    msgs = [e.message for e in info.value.errors]
    assert "cannot read profile" in msgs[0] and "directory" in msgs[1]


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_bytes(b"# ok\nname = '\xff'\n")
    with pytest.raises(InputErrors) as info:
        load_profiles([path])
    assert info.value.errors[0].loc == Loc(str(path), 2, 9)


def test_item_with_error_is_dropped_quietly(tmp_path: Path) -> None:
    # the rule error must not also produce an "egress rules but types ..." error
    errs = errors_of(tmp_path, """
        [[policies]]
        name = "p"
        types = ["ingress"]
        [[policies.ingress]]
        action = "nope"
    """)
    assert len(errs) == 1


def test_untracked_on_star_interface(tmp_path: Path) -> None:
    err = one_error(tmp_path, """
        [[host_endpoints]]
        name = "all"
        interface = "*"
        labels = { x = "y" }
        [[policies]]
        name = "u"
        selector = "x == 'y'"
        do_not_track = true
        apply_on_forward = true
    """)
    assert (err.loc.line, err.loc.col) == (8, 12)
    assert "selects host endpoint 'all' whose interface is \"*\"" in err.message
