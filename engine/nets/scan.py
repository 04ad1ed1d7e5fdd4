"""A whole nets_file: scan it (validate every line and count members per family, or
only the region changed since a baseline) and stream its members back out.

The per-chunk work (the line format, at C speed) is engine.nets.lines.
"""
from __future__ import annotations

import errno
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from nodewall.engine.errors import InputError, Loc
from nodewall.engine.nets.baseline import BaselineStore
from nodewall.engine.nets.lines import (
    MAX_NETS_FILE_BYTES,
    LineCounter,
    Validator,
    clean_chunk,
    count_members,
    read_chunks,
)
from nodewall.engine.system.files import (
    FileTooBig,
    NotRegularFile,
    describe_open_error,
    open_regular,
)


@dataclass(frozen=True)
class NetsFile:
    """A validated nets_file.  Members are never held in memory: backends stream
    the file again (iter_member_chunks) when they load the kernel."""

    path: Path  # absolute
    count_v4: int
    count_v6: int
    loc: Loc  # where `nets_file = ...` is written


def _open_error(path: Path, loc: Loc) -> InputError | None:
    """Why `path` cannot be a nets_file (it must be a regular file of bounded size:
    a FIFO would block with the lock held, /dev/zero never ends), or None."""
    try:
        with open_regular(path, MAX_NETS_FILE_BYTES):
            pass
    except OSError as e:
        hint = ("nets_file is relative to the profile file's directory"
                if e.errno == errno.ENOENT else
                f"a nets_file is a regular file of at most {MAX_NETS_FILE_BYTES >> 30} GiB"
                if isinstance(e, (NotRegularFile, FileTooBig)) else
                "check the file's permissions")
        return InputError(loc, f"nets_file '{path}' {describe_open_error(e)}", hint)
    return None


def _check_limit(path: Path, loc: Loc, v4: int, v6: int, max_entries: int) -> None:
    for fam, n in ((4, v4), (6, v6)):
        if n > max_entries:
            raise InputError(loc, f"nets_file '{path}' has {n} IPv{fam} members, more than "
                             f"max_set_entries = {max_entries}",
                             "raise [settings] max_set_entries or split the set")


def scan_nets_file(path: Path, loc: Loc, max_entries: int,
                   baselines: BaselineStore | None = None) -> NetsFile:
    """Validate every line of `path` and count members per family.

    With `baselines` holding the file as last applied, only the changed region is
    validated and the counts are adjusted; unchanged bulk is compared, not parsed."""
    path = Path(path).absolute()
    err = _open_error(path, loc)
    if err:
        raise err
    try:
        if baselines is not None:
            done = _scan_with_baseline(path, baselines)
            if done is not None:
                _check_limit(path, loc, *done, max_entries)
                return NetsFile(path, done[0], done[1], loc)
        validator = Validator(path, LineCounter(path))
        counter = validator.line_of
        lines = 0
        for offset, chunk in read_chunks(path):
            counter.base_offset, counter.base_lines = offset, lines
            validator.chunk(offset, chunk)
            lines += chunk.count(b"\n")
            if validator.v4 > max_entries or validator.v6 > max_entries:
                break
    except OSError as e:
        raise InputError(loc, f"cannot read nets_file '{path}': {e.strerror}") from e
    _check_limit(path, loc, validator.v4, validator.v6, max_entries)
    return NetsFile(path, validator.v4, validator.v6, loc)


def _terminated(region: bytes) -> bytes:
    return region if region.endswith(b"\n") else region + b"\n"


def _scan_with_baseline(path: Path, baselines: BaselineStore) -> tuple[int, int] | None:
    baseline = baselines.get(path)
    delta = baselines.delta(path) if baseline is not None else None
    if baseline is None or delta is None:
        return None
    validator = Validator(path, LineCounter(path, 0, None))
    if delta.new_region:
        validator.chunk(delta.start, _terminated(delta.new_region))
    old_v4, old_v6 = count_members(_terminated(delta.old_region)) if delta.old_region else (0, 0)
    return (baseline.count_v4 - old_v4 + validator.v4,
            baseline.count_v6 - old_v6 + validator.v6)


def iter_member_chunks(path: Path, family: int, chunk_size: int = 4 << 20) -> Iterator[bytes]:
    """Chunks of b"CIDR\\n" lines of ONE family (comments, blanks and whitespace gone,
    /0 split into two /1s).  Members are as written (host bits are not masked).
    The file must have passed scan_nets_file."""
    for _offset, chunk in read_chunks(path, chunk_size):
        out = clean_chunk(chunk, family)
        if out:
            yield out


def iter_members(path: Path, family: int) -> Iterator[str]:
    """Normalized members of one family, one by one (slow; tests and small files)."""
    for chunk in iter_member_chunks(path, family):
        for raw in chunk.split():
            net = ipaddress.ip_network(raw.decode(), strict=False)
            yield str(net)
