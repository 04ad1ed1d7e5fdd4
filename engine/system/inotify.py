"""The kernel's inotify, through libc (ctypes): watch one directory for entries being
created, written, renamed or removed.

    with DirEvents(Path("/etc/nodewall/profiles")) as events:
        if events.wait(5.0):      # True: something changed in the directory (drained)
            ...

Only the directory itself is watched (not subdirectories): the kubelet's update of a
mounted ConfigMap ends with the rename of a `..data_tmp` symlink over `..data` inside
the mount point, which is an IN_MOVED_TO of the directory.
"""
from __future__ import annotations

import ctypes
import errno
import functools
import os
import select
import struct
from pathlib import Path
from typing import Self

IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_IGNORED = 0x00008000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

DIR_CHANGES = (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO
               | IN_CREATE | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF)
GONE = IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED
_READ_SIZE = 64 * 1024
_EVENT = struct.Struct("iIII")  # struct inotify_event without its name
_MAX_DRAIN_READS = 64  # a burst of events is read in at most this many reads


class InotifyUnavailable(OSError):
    """inotify cannot be used here (no libc symbol, no watch, limits reached)."""


@functools.cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)  # the C library the interpreter runs on
    if not hasattr(libc, "inotify_init1"):
        raise InotifyUnavailable(errno.ENOSYS, "this libc has no inotify_init1")
    libc.inotify_init1.argtypes = [ctypes.c_int]
    libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    return libc


class DirEvents:
    """An inotify instance watching one directory.  Raises InotifyUnavailable when
    it cannot be set up (the caller falls back to polling)."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        libc = _libc()
        fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise InotifyUnavailable(err, f"inotify_init1: {os.strerror(err)}")
        self.fd = fd
        wd = libc.inotify_add_watch(fd, os.fsencode(self.directory), DIR_CHANGES)
        if wd < 0:
            err = ctypes.get_errno()
            os.close(fd)
            raise InotifyUnavailable(err, f"inotify watch on {self.directory}: "
                                          f"{os.strerror(err)}")
        self.gone = False  # the watched directory was removed or moved away

    def wait(self, timeout: float) -> bool:
        """Block at most `timeout` seconds for events; True when some came (all
        pending ones are read, so the next wait blocks again)."""
        if self.fd < 0:
            return False
        ready, _, _ = select.select([self.fd], [], [], max(timeout, 0.0))
        return bool(ready) and self._drain()

    def _drain(self) -> bool:
        got = False
        for _ in range(_MAX_DRAIN_READS):
            try:
                data = os.read(self.fd, _READ_SIZE)
            except BlockingIOError:
                break
            if not data:
                break
            got = True
            if any(mask & GONE for mask in _masks(data)):
                self.gone = True
        return got

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _masks(data: bytes) -> list[int]:
    """The event masks of a buffer of struct inotify_event (wd, mask, cookie, len,
    name[len])."""
    masks, offset = [], 0
    while offset + _EVENT.size <= len(data):
        _wd, mask, _cookie, name_len = _EVENT.unpack_from(data, offset)
        masks.append(mask)
        offset += _EVENT.size + name_len
    return masks
