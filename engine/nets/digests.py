"""Content digests of nets_files, memoized for ONE transaction (the plan and the apply
of every dataplane ask).  A nets_file is known by its content, never by the path it
is named by: the same file through another path, or the generation's own copy of it,
is the same file."""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from nodewall.engine.system.files import open_regular

RACY_NS = 100_000_000


class FileDigests:
    """sha256 of nets_files, memoized for ONE transaction (its plan and its fill both
    ask), keyed by (path, inode, size, mtime).  Like git's racy-timestamp rule, a file
    modified less than RACY_NS before hashing began is not memoized (file times come
    from a coarse clock: a second same-size edit may keep the same mtime)."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, int, int, int], str] = {}

    def sha256(self, path: str | Path) -> str:
        st = os.stat(path)
        key = (str(Path(path).absolute()), st.st_ino, st.st_size, st.st_mtime_ns)
        if key in self._known:
            return self._known[key]
        started = time.time_ns()
        h = hashlib.sha256()
        with open_regular(path) as fh:  # a FIFO swapped in never blocks
            while block := fh.read(1 << 20):
                h.update(block)
        if started - st.st_mtime_ns > RACY_NS:
            self._known[key] = h.hexdigest()
        return h.hexdigest()
