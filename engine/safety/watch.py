"""The agent's wait between passes: until its profiles directory changes (inotify), the
fall-back interval runs out, or it is told to stop.

A change wakes the agent after a short settle time (the kubelet writes a ConfigMap's
new version as a burst of creations and renames: one pass reads the lot).  Where
inotify cannot be had (no such directory yet, the watch limit reached) the interval
alone drives the passes, and the watch is tried again before every wait.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

from nodewall.engine.system.inotify import DirEvents, InotifyUnavailable

SLICE_S = 0.2  # longest uninterrupted block: a stop request is seen within this
SETTLE_S = 0.05  # quiet time that ends a burst of events
MAX_SETTLE_S = 1.0  # a directory that never goes quiet is read after this anyway


class ProfilesWatch:
    def __init__(self, directory: Path, enabled: bool = True):
        self.directory = Path(directory)
        self.enabled = enabled
        self._events: DirEvents | None = None
        self.problem = ""  # why the watch is not in use ("" when it is, or disabled)

    @property
    def active(self) -> bool:
        return self._events is not None

    def open(self) -> None:
        """Start watching (again, if the directory was replaced); a no-op when on."""
        if not self.enabled:
            return
        if self._events is not None and self._events.gone:
            self._events.close()
            self._events = None
        if self._events is None:
            try:
                self._events = DirEvents(self.directory)
                self.problem = ""
            except InotifyUnavailable as exc:
                self.problem = str(exc)

    def wait(self, seconds: float, stop: threading.Event) -> str:
        """"change", "timer" or "stop": why the wait ended (at most `seconds`)."""
        self.open()
        deadline = time.monotonic() + max(seconds, 0.0)
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return "timer"
            step = min(SLICE_S, left)
            if self._events is None:
                stop.wait(step)
            elif self._events.wait(step):
                self._settle(stop)
                return "stop" if stop.is_set() else "change"
        return "stop"

    def _settle(self, stop: threading.Event) -> None:
        assert self._events is not None
        limit = time.monotonic() + MAX_SETTLE_S
        while not stop.is_set() and time.monotonic() < limit:
            if not self._events.wait(SETTLE_S):
                return

    def close(self) -> None:
        if self._events is not None:
            self._events.close()
            self._events = None
