"""The TUI's only way to the engine: wraps the injected Service factory.

Called from thread workers only (never the UI thread).  One lock serializes every
call (the Service is safe from one thread at a time); the mutating calls check the
read-only guard again, so a binding that slipped through still cannot change the
kernel."""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .guard import Guard

CHECKS_EVERY_S = 5.0  # the tick reuses drift and foreign checks up to this old


class EngineClient:
    def __init__(self, factory: Callable[[], Any], guard: Guard):
        self._factory = factory
        self._guard = guard
        self._service: Any = None
        self._lock = threading.Lock()
        self._seq = 0  # numbers every call in the order the engine saw them

    def connect(self) -> bool:
        """Build the Service (may touch the kernel); returns whether it runs as root."""
        with self._lock:
            if self._service is None:
                self._service = self._factory()
            return bool(getattr(self._service, "is_root", False))

    @property
    def connected(self) -> bool:
        return self._service is not None

    def _call(self, name: str, *args, **kwargs):
        return self._seq_call(name, *args, **kwargs)[1]

    def _seq_call(self, name: str, *args, **kwargs) -> tuple[int, Any]:
        with self._lock:
            if self._service is None:
                self._service = self._factory()
            self._seq += 1
            return self._seq, getattr(self._service, name)(*args, **kwargs)

    # -- read-only ------------------------------------------------------------------
    def status(self) -> tuple[int, Any]:
        """(sequence number, StatusReport): counters every call, drift and foreign
        objects re-checked at most every CHECKS_EVERY_S seconds (the engine's
        expensive reads; the report's checks_age_s says how old they are)."""
        return self._seq_call("status", checks_max_age=CHECKS_EVERY_S)

    def conntrack_sample(self, limit: int = 2000):
        return self._call("conntrack_sample", limit)

    def validate(self, paths: Sequence[Path], texts: dict[str, str] | None = None):
        return self._call("validate", list(paths), texts=texts)

    def diff(self, paths: Sequence[Path]):
        return self._call("diff", list(paths))

    def rendered_rule(self, rule_id: str):
        return self._call("rendered_rule", rule_id)

    def rules_holding(self, address: str):
        return self._call("rules_holding", address)

    def explain(self, src: str, dst: str, *, iface: str | None, direction: str,
                out_iface: str | None):
        return self._call("explain", src, dst, iface=iface, direction=direction,
                          out_iface=out_iface)

    def history_lines(self) -> list[str]:
        return self._call("history_lines", files=False)

    # -- mutating: through the guard ------------------------------------------------
    def apply(self, paths: Sequence[Path], confirm_timeout: float | None):
        self._guard.require("apply")
        return self._seq_call("apply", list(paths), confirm_timeout=confirm_timeout,
                              origin="tui")

    def confirm(self) -> int:
        self._guard.require("keep")
        return self._seq_call("confirm")[0]

    def rollback(self, pending_generation: int | None = None) -> int:
        """Revert; given the pending generation, the engine refuses when the watcher
        already reverted it (no second rollback)."""
        self._guard.require("revert")
        return self._seq_call("rollback", pending_generation=pending_generation)[0]

    def set_panic(self, on: bool) -> tuple[int, Any]:
        """Panic on (only failsafe traffic passes) or off (the generation's rules)."""
        self._guard.require("panic")
        return self._seq_call("set_panic", on)

    def acknowledge_revert(self) -> tuple[int, Any]:
        """Clear the notice of an automatic revert (`nodewall ack`)."""
        self._guard.require("ack")
        return self._seq_call("acknowledge_revert")

    def rollback_generation(self) -> tuple[int, Any]:
        """Back to the generation before the current one (no apply pending)."""
        self._guard.require("rollback")
        return self._seq_call("rollback")
