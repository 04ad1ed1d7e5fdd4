"""The one read-only guard.  Every mutating action in the TUI (apply, keep,
revert, saving or editing a profile) is declared with @mutating and goes through
Guard.permit(); the engine client checks the same guard again before it calls a
mutating Service method.  `--readonly` and a non-root user both switch it on."""
from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

MUTATING: set[str] = set()  # action names (without "action_") declared mutating


class ReadOnlyError(RuntimeError):
    """A mutating call reached the engine client while the guard is read-only."""


class Guard:
    def __init__(self, readonly: bool = False, reason: str = ""):
        self._readonly = readonly
        self.reason = reason or ("--readonly" if readonly else "")

    @property
    def readonly(self) -> bool:
        return self._readonly

    def make_readonly(self, reason: str) -> None:
        self._readonly = True
        self.reason = self.reason or reason

    def banner(self) -> str:
        return f"READ-ONLY ({self.reason})" if self._readonly else ""

    def permit(self, action: str, notify: Callable[..., Any] | None = None) -> bool:
        if not self._readonly:
            return True
        if notify is not None:
            notify(f"read-only ({self.reason}): '{action}' is disabled", severity="warning")
        return False

    def require(self, action: str) -> None:
        if self._readonly:
            raise ReadOnlyError(f"read-only ({self.reason}): '{action}' refused")

    def check_action(self, action: str) -> bool | None:
        """For Textual's check_action: None shows a mutating binding disabled."""
        if self._readonly and action in MUTATING:
            return None
        return True


def mutating(fn: Callable) -> Callable:
    """Decorate an `action_*` method (sync or async) of a screen or the app."""
    name = fn.__name__.removeprefix("action_")
    MUTATING.add(name)

    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def async_wrapper(self, *args, **kwargs):
            if self.app.guard.permit(name, self.app.notify):
                return await fn(self, *args, **kwargs)
            return None
        return async_wrapper

    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        if self.app.guard.permit(name, self.app.notify):
            return fn(self, *args, **kwargs)
        return None
    return wrapper
