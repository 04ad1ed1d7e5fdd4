"""The sources of a family's XDP source maps: the CIDR text of each set (inline
CIDRs, nets_files in chunks), the digest that says whether the maps must change,
and the record of the sources that the next apply's nets_file deltas start from."""
from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from nodewall.engine.dataplane.xdp.cidr_keys import CHUNK_LINES, is_family
from nodewall.engine.nets.digests import FileDigests
from nodewall.engine.nets.scan import iter_member_chunks
from nodewall.engine.plan.desired import XdpSetSource

FILE_CHUNK_BYTES = 1 << 20  # ~15 MB of str objects at a time


def source_chunks(src: XdpSetSource, family: int) -> Iterator[str]:
    """A set's CIDR lines of one family, in chunks of text: inline first, then files."""
    inline = [c for c in src.inline if is_family(c, family)]
    for i in range(0, len(inline), CHUNK_LINES):
        yield "\n".join(inline[i:i + CHUNK_LINES])
    for path in src.files:
        for chunk in iter_member_chunks(Path(path), family, FILE_CHUNK_BYTES):
            yield chunk.decode("ascii")


def source_size(s: XdpSetSource, family: int) -> int:
    """Upper bound of a set's entries in one family (file counts + inline)."""
    return ((s.count_v4 if family == 4 else s.count_v6)
            + sum(1 for c in s.inline if is_family(c, family)))


def source_digest(sets: Iterable[XdpSetSource], family: int,
                  digests: FileDigests | None = None) -> str:
    """What the family's maps are made from: bits, inline CIDRs, file contents
    (digests: the transaction's memo of file hashes; None hashes afresh)."""
    files = digests if digests is not None else FileDigests()
    h = hashlib.sha256(f"v3 family {family}\n".encode())
    for s in sorted(sets, key=lambda s: s.bit):
        h.update(f"bit {s.bit}\n".encode())
        for c in s.inline:
            if is_family(c, family):
                h.update(c.encode() + b"\n")
        for p in s.files:
            h.update(f"file {files.sha256(p)}\n".encode())  # content, not path
    return h.hexdigest()


def sources_record(sets: Iterable[XdpSetSource], family: int) -> dict[str, dict]:
    """What the metadata keeps of a family's sources for the next apply's file deltas:
    per bit the inline CIDRs (as written) and the nets_files with their sizes."""
    return {str(s.bit): {"inline": [c for c in s.inline if is_family(c, family)],
                         "files": [[str(Path(p).absolute()), os.stat(p).st_size]
                                   for p in s.files]}
            for s in sets}
