"""Writing files so that a reader (or a crash) never sees half of one."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

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
