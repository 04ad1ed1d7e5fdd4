"""A one-file IPv4 nft set's ranges after a nets_file edit, changed in place from the
recorded ranges (file_delta), are exactly the merge of the whole new file, and the
added/removed ranges are exactly the difference — over random edits of a file dense
enough that members overlap, nest and touch."""
from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

from nodewall.engine.dataplane.nftables import intervals
from nodewall.engine.dataplane.nftables import sets as nft_sets
from nodewall.engine.dataplane.nftables.file_delta import file_delta_ranges, source_record
from nodewall.engine.dataplane.nftables.observe import NftObserved
from nodewall.engine.nets.baseline import BaselineStore
from nodewall.engine.nets.digests import FileDigests
from nodewall.engine.plan.desired import IpSetSpec


def _line(rng: random.Random) -> str:
    c, d = rng.randrange(8), rng.randrange(256)
    kind = rng.random()
    if kind < 0.6:
        return f"10.20.{c}.{d}"
    if kind < 0.8:
        return f"10.20.{c}.{d & ~15}/28"
    if kind < 0.95:
        return f"10.20.{c}.0/24"
    return f"10.21.{c}.{d} # comment"


def _spec(path: Path, inline: tuple[str, ...]) -> IpSetSpec:
    return IpSetSpec("nw-n4-t", 4, "hash:net", inline=inline, files=(path,),
                     expected_count=0, origin="t")


def _one_round(tmp: Path, rng: random.Random, inline: tuple[str, ...]) -> tuple[int, int]:
    path, store = tmp / "nets.txt", BaselineStore(tmp / "base")
    lines = [_line(rng) for _ in range(300)]
    path.write_text("\n".join(lines) + "\n")
    spec = _spec(path, inline)
    old = intervals.member_ranges(spec)
    record = source_record(spec, FileDigests())
    store.put(path, (len(lines), 0))
    for _ in range(rng.randrange(1, 4)):  # replace, delete or insert a few lines
        i = rng.randrange(len(lines))
        what = rng.random()
        if what < 0.4:
            lines[i] = _line(rng)
        elif what < 0.7:
            del lines[i]
        else:
            lines.insert(i, _line(rng))
    path.write_text("\n".join(lines) + "\n")
    got = file_delta_ranges(spec, list(old), record, BaselineStore(tmp / "base"),
                            FileDigests())
    if got is None:
        return 0, 1
    want = intervals.member_ranges(spec)
    assert got.ranges == want
    add, rem = intervals.diff(old, want)
    assert (got.added, got.removed) == (add, rem)
    return 1, 0


def test_in_place_ranges_match_a_full_merge(tmp_path):
    rng = random.Random(11)
    done = fallback = 0
    for i in range(300):
        d = tmp_path / str(i)
        d.mkdir()
        a, b = _one_round(d, rng, ("10.20.3.0/24",) if i % 3 == 0 else ())
        done, fallback = done + a, fallback + b
    assert done > 250  # the in-place path is the common one here


def test_other_content_than_recorded_is_not_changed_in_place(tmp_path):
    path = tmp_path / "nets.txt"
    path.write_text("10.20.0.1\n10.20.0.9\n")
    spec = _spec(path, ())
    store = BaselineStore(tmp_path / "base")
    old = intervals.member_ranges(spec)
    record = source_record(spec, FileDigests())
    store.put(path, (2, 0))
    path.write_text("10.20.0.1\n10.20.0.10\n")
    other_inline = _spec(path, ("192.0.2.0/24",))
    assert file_delta_ranges(other_inline, list(old), record, store, FileDigests()) is None
    record["files"][0][2] = "0" * 64  # the baseline copy is not what was loaded
    assert file_delta_ranges(spec, list(old), record, store, FileDigests()) is None


def test_an_edit_that_keeps_the_ranges_records_the_new_source(tmp_path):
    """A comment added to the nets_file changes nothing in the kernel, but the record of
    what the ranges are made of follows the file, so the next small edit still takes
    the in-place path (a stale record sends every later edit to the full merge)."""
    path, manifests = tmp_path / "nets.txt", tmp_path / "manifests"
    manifests.mkdir()
    path.write_text("10.20.0.1\n10.20.0.9\n")
    spec = _spec(path, ())
    observed = NftObserved(True, True, (), (spec.name,))
    first = nft_sets.plan([spec], observed, manifests).changes[0]
    nft_sets.record([replace(first, ranges=intervals.member_ranges(spec))], manifests)
    path.write_text("10.20.0.1\n# a comment\n10.20.0.9\n")
    edited = nft_sets.plan([spec], observed, manifests).changes[0]
    assert (edited.action, edited.source_edited) == ("none", True)
    nft_sets.record_edited_sources([edited], manifests)
    again = nft_sets.plan([spec], observed, manifests).changes[0]
    assert (again.action, again.source_edited) == ("none", False)
