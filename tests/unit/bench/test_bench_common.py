"""bench/common.py: the CIDR generator's mix and safety, file streaming, Row ratios."""
from __future__ import annotations

import ipaddress

from bench.common import PROBE_SRC, Row, cidr_lines, mix_of, write_cidr_file


def test_cidr_mix_is_kinvolk_like():
    lines = list(cidr_lines(50_000, seed=3))
    mix = mix_of(lines)
    assert set(mix) == {16, 24, 32}
    assert abs(mix[32] - 0.89) < 0.01
    assert abs(mix[24] - 0.10) < 0.01
    assert abs(mix[16] - 0.01) < 0.003


def test_cidrs_are_valid_and_never_cover_the_lab_or_probes():
    lab = [ipaddress.ip_network(x) for x in ("10.0.0.0/8", "127.0.0.0/8", "203.0.113.0/24",
                                            "198.18.0.0/15", "224.0.0.0/3")]
    for line in cidr_lines(20_000, seed=11):
        net = ipaddress.ip_network(line, strict=True)  # host bits clear
        assert net.version == 4
        assert not any(net.overlaps(x) for x in lab), line


def test_generator_is_deterministic_per_seed():
    assert list(cidr_lines(100, seed=5)) == list(cidr_lines(100, seed=5))
    assert list(cidr_lines(100, seed=5)) != list(cidr_lines(100, seed=6))


def test_write_cidr_file_streams_all_lines_and_extra(tmp_path):
    path = write_cidr_file(tmp_path / "x.txt", 70_000, seed=1, extra=(PROBE_SRC,))
    lines = path.read_text().splitlines()
    assert len(lines) == 70_001
    assert lines[-1] == PROBE_SRC
    assert lines[:10] == list(cidr_lines(10, seed=1))


def test_row_ratio_and_goal():
    r = Row("s", "c", "raw", 2.0, 1.0, "s", goal=1.0)
    assert r.ratio == 0.5 and r.met is True
    assert Row("s", "c", "raw", 1.0, 3.0, "x", goal=2.5, higher_is_better=True).met is True
    assert Row("s", "c", "raw", 1.0, 2.0, "x", goal=2.5, higher_is_better=True).met is False
    assert Row("s", "c", "raw", None, 2.0, "s", goal=1.0).met is None
    assert Row("s", "c", "raw", 1.0, 2.0, "s").met is None
