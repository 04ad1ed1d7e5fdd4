"""Writing files so that a reader (or a crash) never sees half of one; opening input
files only when they are regular files of bounded size."""
from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

from nodewall.engine.errors import ConcurrentEdit


def atomic_write_text(path: Path, text: str, mode: int | None = None) -> None:
    """Write a temp file beside `path`, fsync it, rename it over `path`.  The file
    keeps its mode (an existing file's, else `mode`, else 0644); a failure leaves
    `path` as it was and no temp file behind."""
    path = Path(path)
    if mode is None:
        mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, data: Any, mode: int | None = None) -> None:
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n", mode)


def replace_if_unchanged(path: Path, expected: str, text: str) -> None:
    """Write `text` to `path` only if the file still holds `expected` (what the writer
    read): someone else's edit made meanwhile is never silently overwritten."""
    path = Path(path)
    try:
        now = path.read_text()
    except FileNotFoundError:
        now = ""
    if now != expected:
        raise ConcurrentEdit(path)
    atomic_write_text(path, text)


class NotRegularFile(OSError):
    """An input that is not a regular file (a FIFO, a device, a directory, a socket):
    reading it could block forever or never end."""


class FileTooBig(OSError):
    """An input larger than its limit."""


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def describe_open_error(exc: OSError) -> str:
    """Why an input could not be opened, in words an operator acts on."""
    if isinstance(exc, (NotRegularFile, FileTooBig)):
        return str(exc.strerror)
    if exc.errno == errno.ELOOP:
        return "is a symlink loop (too many levels of symbolic links)"
    if exc.errno == errno.ENOENT:
        return "does not exist"
    return f"cannot be read: {exc.strerror}"


def open_regular(path: Path, max_bytes: int | None = None) -> BinaryIO:
    """Open `path` for reading only if it is a regular file (following symlinks) of at
    most `max_bytes`.  The open itself never blocks (O_NONBLOCK: a FIFO with no
    writer); the checks are made on the opened file, so a swap cannot slip past."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = next((k for test, k in _KINDS if test(st.st_mode)), "not a regular file")
            raise NotRegularFile(errno.EINVAL, f"is {kind}, not a regular file")
        if max_bytes is not None and st.st_size > max_bytes:
            raise FileTooBig(errno.EFBIG, f"is {st.st_size} bytes, more than the limit "
                                          f"of {max_bytes} bytes")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: Path, max_bytes: int) -> bytes:
    """The whole content of a regular file of at most `max_bytes` (checked while
    reading too: a file that grows meanwhile cannot make the read unbounded)."""
    with open_regular(path, max_bytes) as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FileTooBig(errno.EFBIG, f"is more than the limit of {max_bytes} bytes")
    return data
