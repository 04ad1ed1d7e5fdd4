"""load_profiles: located errors, collected across items and files; unreadable,
not UTF-8, duplicate definitions."""
from __future__ import annotations

from pathlib import Path

import pytest
from nodewall.engine.errors import InputErrors, Loc
from nodewall.engine.profile.loader import load_profiles

from tests.helpers.profile_kit import errors_of, one_error, write

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
    assert "profile does not exist" in msgs[0] and "directory" in msgs[1]


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
