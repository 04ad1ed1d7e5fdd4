from __future__ import annotations

import ipaddress
import random
from pathlib import Path

import pytest
from nodewall.engine.errors import InputError, Loc
from nodewall.engine.nets.baseline import BaselineStore, delta_members, file_delta
from nodewall.engine.nets.lines import clean_chunk, read_chunks
from nodewall.engine.nets.scan import iter_member_chunks, iter_members, scan_nets_file

LOC = Loc("p.toml", 3, 13)
BIG = 1 << 30


def nets(tmp_path: Path, text: str | bytes, name: str = "n.txt") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def scan(path: Path, max_entries: int = BIG, **kw: object):
    return scan_nets_file(path, LOC, max_entries, **kw)  # type: ignore[arg-type]


MIXED = """\
# header comment
10.0.0.1
   10.0.0.0/8   # spaces around and a comment
\t192.168.1.0/24\t
\r
2001:db8::/32
2001:DB8::1   # upper case
::ffff:1.2.3.4/128

0.0.0.0/0
::/0
172.16.5.4/12
1.2.3.4/32\r
"""


def test_scan_counts_mixed_file(tmp_path: Path) -> None:
    nf = scan(nets(tmp_path, MIXED))
    # v4: 10.0.0.1, 10/8, 192.168.1/24, 0/0 (x2), 172.16/12, 1.2.3.4 ; v6: 4 + ::/0 (x2)
    assert (nf.count_v4, nf.count_v6) == (7, 5)
    assert nf.path == tmp_path / "n.txt" and nf.loc == LOC


def test_members_and_chunks(tmp_path: Path) -> None:
    path = nets(tmp_path, MIXED)
    assert list(iter_members(path, 4)) == [
        "10.0.0.1/32", "10.0.0.0/8", "192.168.1.0/24", "0.0.0.0/1", "128.0.0.0/1",
        "172.16.0.0/12", "1.2.3.4/32"]
    assert list(iter_members(path, 6)) == [
        "2001:db8::/32", "2001:db8::1/128", "::ffff:102:304/128", "::/1", "8000::/1"]
    v4 = b"".join(iter_member_chunks(path, 4))
    assert v4 == (b"10.0.0.1\n10.0.0.0/8\n192.168.1.0/24\n0.0.0.0/1\n128.0.0.0/1\n"
                  b"172.16.5.4/12\n1.2.3.4/32\n")
    v6 = b"".join(iter_member_chunks(path, 6))
    assert v6 == b"2001:db8::/32\n2001:DB8::1\n::ffff:1.2.3.4/128\n::/1\n8000::/1\n"


def test_chunks_are_cut_at_newlines(tmp_path: Path) -> None:
    lines = [f"10.{i // 65536}.{i // 256 % 256}.{i % 256}" for i in range(5000)]
    path = nets(tmp_path, "\n".join(lines))  # no final newline
    chunks = list(iter_member_chunks(path, 4, chunk_size=1000))
    assert len(chunks) > 10
    assert all(c.endswith(b"\n") for c in chunks)
    assert b"".join(chunks).decode().split() == lines
    offsets = [o for o, _ in read_chunks(path, 1000)]
    assert offsets == sorted(offsets) and offsets[0] == 0
    assert scan(path).count_v4 == 5000


def test_plain_chunk_passes_through_unchanged() -> None:
    chunk = b"1.2.3.4\n5.6.7.0/24\n"
    assert clean_chunk(chunk, 4) is chunk
    assert clean_chunk(chunk, 6) == b""


def test_empty_and_comment_only_files(tmp_path: Path) -> None:
    for text in ("", "\n\n", "# nothing\n   # here\n", "#x"):
        nf = scan(nets(tmp_path, text))
        assert (nf.count_v4, nf.count_v6) == (0, 0)
        assert list(iter_member_chunks(tmp_path / "n.txt", 4)) == []


@pytest.mark.parametrize("line,col,message", [
    ("10.0.0.256", 1, "bad CIDR '10.0.0.256': Octet 256 (> 255) not permitted"),
    ("  10.0.0.1/33", 3, "bad CIDR '10.0.0.1/33'"),
    ("10.0.0/8", 1, "bad CIDR '10.0.0/8'"),
    ("010.0.0.1", 1, "bad CIDR '010.0.0.1'"),
    ("10.0.0.1/024", 1, "the prefix length has a leading zero"),
    ("10.0.0.0/255.0.0.0", 1, "the prefix must be a length, not a netmask"),
    ("10.0.0.1 10.0.0.2", 10, "bad CIDR '10.0.0.1': unexpected text after it"),
    ("hello", 1, "bad CIDR (not shown): not an IPv4 or IPv6 address"),
    ("2001:db8::/129", 1, "bad CIDR '2001:db8::/129'"),
    ("\t2001:db8:::1", 2, "bad CIDR '2001:db8:::1'"),
    ("1.2.3.4:80", 1, "bad CIDR '1.2.3.4:80'"),
    ("fe80::1%eth0", 1, "bad CIDR 'fe80::1%eth0'"),
    ("10.0.0.1/", 1, "bad CIDR '10.0.0.1/'"),
])
def test_bad_lines_are_located(tmp_path: Path, line: str, col: int, message: str) -> None:
    path = nets(tmp_path, f"# ok\n10.1.1.1\n\n{line}\n10.2.2.2\n")
    with pytest.raises(InputError) as info:
        scan(path)
    assert info.value.loc == Loc(str(path), 4, col)
    assert message in info.value.message
    assert info.value.exit_code == 2


def test_bad_line_in_a_later_chunk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nodewall.engine.nets import lines
    from nodewall.engine.nets import scan as netsfile

    monkeypatch.setattr(lines, "CHUNK", 64)
    good = [f"10.0.{i // 256}.{i % 256}" for i in range(300)]
    good[257] = "10.0.1.999"
    path = nets(tmp_path, "\n".join(good) + "\n")
    with pytest.raises(InputError) as info:
        netsfile.scan_nets_file(path, LOC, BIG)
    assert info.value.loc == Loc(str(path), 258, 1)


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        scan(tmp_path / "nope.txt")
    assert info.value.loc == LOC and "does not exist" in info.value.message
    with pytest.raises(InputError) as info:
        scan(tmp_path)
    assert info.value.loc == LOC and "is a directory" in info.value.message


def test_over_the_limit(tmp_path: Path) -> None:
    path = nets(tmp_path, "1.1.1.1\n2.2.2.2\n::1\n")
    assert scan(path, max_entries=2).count_v4 == 2
    with pytest.raises(InputError) as info:
        scan(path, max_entries=1)
    assert info.value.loc == LOC
    assert "2 IPv4 members, more than max_set_entries = 1" in info.value.message
    with pytest.raises(InputError):
        scan(nets(tmp_path, "::/0\n"), max_entries=1)  # a /0 is two members


# ---------------------------------------------------------------- baselines and deltas

def random_v4_lines(n: int, seed: int = 7) -> list[str]:
    """89% /32 (bare), 10% /24, 1% /16, random."""
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        a = rnd.getrandbits(32)
        r = rnd.random()
        o = (a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255)
        if r < 0.89:
            out.append(f"{o[0]}.{o[1]}.{o[2]}.{o[3]}")
        elif r < 0.99:
            out.append(f"{o[0]}.{o[1]}.{o[2]}.0/24")
        else:
            out.append(f"{o[0]}.{o[1]}.0.0/16")
    return out


def test_store_roundtrip(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path / "state")
    path = nets(tmp_path, "1.1.1.1\n")
    assert store.get(path) is None
    b = store.put(path, (1, 0))
    assert store.get(path) == b and b.copy_path.read_bytes() == b"1.1.1.1\n"
    path.write_text("2.2.2.2\n")  # the copy is a copy, not a link
    assert b.copy_path.read_bytes() == b"1.1.1.1\n"
    other = nets(tmp_path, "x", "other.txt")
    assert store.get(other) is None
    store.drop(path)
    assert store.get(path) is None


@pytest.mark.parametrize("old,new,old_region,new_region", [
    ("a\nb\nc\n", "a\nb\nc\n", b"", b""),
    ("a\nb\nc\n", "a\nB\nc\n", b"b\n", b"B\n"),
    ("a\nb\nc\n", "a\nb\nc\nd\n", b"", b"d\n"),
    ("a\nb\nc\n", "z\na\nb\nc\n", b"", b"z\n"),
    ("a\nb\nc\n", "a\nc\n", b"b\n", b""),
    ("ab\nc\n", "a\nb\nc\n", b"ab\n", b"a\nb\n"),
    ("xa\n", "x\na\n", b"xa\n", b"x\na\n"),
    ("a\nb", "a\nbc", b"b", b"bc"),
    ("", "1\n", b"", b"1\n"),
    ("1\n", "", b"1\n", b""),
    ("10.0.0.1\n10.0.0.1\n", "10.0.0.1\n", b"10.0.0.1\n", b""),
])
def test_file_delta_regions(tmp_path: Path, old: str, new: str, old_region: bytes,
                            new_region: bytes) -> None:
    a, b = nets(tmp_path, old, "old"), nets(tmp_path, new, "new")
    d = file_delta(a, b)
    assert d is not None
    assert (d.old_region, d.new_region) == (old_region, new_region)
    # the regions really are what differs: splicing reproduces the files
    ob, nb = a.read_bytes(), b.read_bytes()
    assert ob[:d.start] + d.old_region + ob[d.old_end:] == ob
    assert nb[:d.start] + d.new_region + nb[d.new_end:] == nb
    assert ob[:d.start] == nb[:d.start] and ob[d.old_end:] == nb[d.new_end:]
    for buf, start in ((ob, d.start), (nb, d.start)):
        assert start == 0 or buf[start - 1:start] == b"\n"


def test_file_delta_limits(tmp_path: Path) -> None:
    a = nets(tmp_path, "1\n" * 100, "old")
    b = nets(tmp_path, "2\n" * 100, "new")
    assert file_delta(a, b, max_region=100) is None
    assert file_delta(a, b, max_region=200) is not None
    assert file_delta(tmp_path / "missing", b) is None


def test_delta_members_multiset(tmp_path: Path) -> None:
    old = "1.1.1.1\n10.0.0.0/24\n2.2.2.2\n2001:db8::1\n3.3.3.3\n9.9.9.9\n"
    # 10.0.0.0/24 is removed from the region but still present (other spelling) below;
    # 2.2.2.2 is removed; 4.4.4.4 added; 2001:db8::1 removed; 9.9.9.9 stays (suffix)
    new = "1.1.1.1\n4.4.4.4\n3.3.3.3\n9.9.9.9\n10.0.0.77/24  # same set member\n"
    a, b = nets(tmp_path, old, "old"), nets(tmp_path, new, "new")
    d = file_delta(a, b)
    assert d is not None
    assert delta_members(d, 4) == (["4.4.4.4/32"], ["2.2.2.2/32"])
    assert delta_members(d, 6) == ([], ["2001:db8::1/128"])


def test_delta_members_duplicates_and_short_prefixes(tmp_path: Path) -> None:
    old = ("6.0.0.0/7\n6.6.6.6\n5.5.5.5\n"
           "7.0.0.0/7\n6.6.6.6/32\n::/0\n1.1.1.0/24\n"  # the changed region
           "9.9.9.9\n")
    new = "6.0.0.0/7\n6.6.6.6\n5.5.5.5\n9.9.9.9\n"
    a, b = nets(tmp_path, old, "old"), nets(tmp_path, new, "new")
    d = file_delta(a, b)
    assert d is not None and d.new_region == b""
    # 7.0.0.0/7 == 6.0.0.0/7 (no fixed octet: full scan) and 6.6.6.6 are still in the
    # unchanged prefix, so only 1.1.1.0/24 leaves the kernel set
    assert delta_members(d, 4) == ([], ["1.1.1.0/24"])
    assert delta_members(d, 6) == ([], ["8000::/1", "::/1"])  # the /0 was two /1s


def test_scan_with_baseline_validates_only_the_region(tmp_path: Path) -> None:
    lines = random_v4_lines(20000)
    path = nets(tmp_path, "\n".join(lines) + "\n")
    store = BaselineStore(tmp_path / "state")
    full = scan(path)
    store.put(path, (full.count_v4, full.count_v6))
    lines[12345] = "2001:db8::5  # now v6"
    lines.insert(100, "# a comment")
    lines.append("0.0.0.0/0")
    path.write_text("\n".join(lines) + "\n")
    inc = scan(path, baselines=store)
    again = scan(path)
    assert (inc.count_v4, inc.count_v6) == (again.count_v4, again.count_v6)
    assert (inc.count_v4, inc.count_v6) == (full.count_v4 - 1 + 2, 1)
    lines[15000] = "300.0.0.1"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError) as info:
        scan(path, baselines=store)
    assert info.value.loc == Loc(str(path), 15001, 1)


def test_one_line_edit_of_a_million_lines(tmp_path: Path) -> None:
    lines = random_v4_lines(1_000_000, seed=11)
    body = ("\n".join(lines) + "\n").encode()
    path = nets(tmp_path, body)
    full = scan(path)
    assert (full.count_v4, full.count_v6) == (1_000_000, 0)
    store = BaselineStore(tmp_path / "state")
    store.put(path, (full.count_v4, full.count_v6))
    old_line = lines[654321]
    lines[654321] = "203.0.113.99"
    path.write_text("\n".join(lines) + "\n")
    baseline = store.get(path)
    assert baseline is not None
    d = file_delta(baseline.copy_path, path)
    assert d is not None
    assert (d.old_region, d.new_region) == ((old_line + "\n").encode(), b"203.0.113.99\n")
    old_norm = str(ipaddress.ip_network(old_line, strict=False))
    first = old_line.split(".")[0] + "."
    still_there = any(str(ipaddress.ip_network(x, strict=False)) == old_norm
                      for i, x in enumerate(lines) if i != 654321 and x.startswith(first))
    assert delta_members(d, 4) == (["203.0.113.99/32"], [] if still_there else [old_norm])
    inc = scan(path, baselines=store)
    assert inc.count_v4 == 1_000_000


def test_common_prefix_and_suffix_match_a_naive_reference(tmp_path):
    """memcmp on raw mappings, block-wise then bisected, against a byte loop."""
    import os as _os
    import random as _random

    from nodewall.engine.nets import baseline as nb

    rnd = _random.Random(7)
    for case in range(60):
        size = rnd.choice([0, 1, 5, 4095, 4096, 70_000, (1 << 20) + 3])
        base = bytes(rnd.getrandbits(8) for _ in range(min(size, 2000))) * (size // 2000 + 1)
        a = base[:size]
        b = bytearray(a)
        if b and case % 3:
            b[rnd.randrange(len(b))] ^= 0xFF  # one flipped byte anywhere
        if case % 4 == 0:
            b = b + b"tail"  # different lengths
        if case % 5 == 0 and b:
            b = b[rnd.randrange(len(b)):]  # cut the front
        pa, pb = tmp_path / f"a{case}", tmp_path / f"b{case}"
        pa.write_bytes(a)
        pb.write_bytes(bytes(b))
        limit = min(len(a), len(b))
        want_p = next((i for i in range(limit) if a[i] != b[i]), limit)
        want_s = next((i for i in range(limit) if a[-1 - i] != b[-1 - i]), limit)
        ra, rb = nb._Raw(pa), nb._Raw(pb)
        try:
            assert nb._common_prefix(ra, rb, limit) == want_p
            assert nb._common_suffix(ra, rb, limit) == want_s
        finally:
            ra.close()
            rb.close()
        _os.unlink(pa)
        _os.unlink(pb)


def test_memfind_matches_bytes_find(tmp_path):
    from nodewall.engine.nets import baseline as nb

    data = b"10.0.0.1\n10.0.0.10\n192.0.2.0/24\n10.0.0.1\n" * 1000
    path = tmp_path / "f"
    path.write_bytes(data)
    raw = nb._Raw(path)
    try:
        for needle in (b"10.0.0.1", b"192.0.2.", b"\n10.0.0.10\n", b"absent", b":"):
            for lo, hi in ((0, len(data)), (5, 40), (17, len(data) - 3), (30, 30)):
                assert nb._memfind(raw, needle, lo, hi) == data.find(needle, lo, hi)
    finally:
        raw.close()
