"""One error hierarchy.  Every error carries a hint the operator can act on and
the exit code the CLI returns for it (see README "Exit codes")."""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    """What the `nodewall` command returns (README "Exit codes")."""

    OK = 0  # done / applied / in place
    FAILED = 1  # failed (an apply was rolled back)
    BAD_INPUT = 2  # file:line:col errors; nothing changed
    NOTHING_TO_DO = 3  # `apply --check`: the kernel already matches
    LOCK_BUSY = 4  # another transaction holds the lock (--no-wait)
    NETNS_NOT_FOUND = 5  # --netns names no namespace
    NOTHING_PENDING = 6  # nothing to confirm / roll back / explain; no such generation
    FOREIGN_OBJECT = 7  # refused to touch something nodewall does not own
    USAGE = 64  # the command line itself is wrong (argparse; EX_USAGE)


class NodewallError(Exception):
    """Base of every error nodewall raises on purpose."""

    exit_code = ExitCode.FAILED

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def render(self) -> str:
        text = self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    @property
    def kind(self) -> str:
        """The error's class name, for JSON callers (stable: part of the contract)."""
        return type(self).__name__

    def to_json(self) -> list[dict[str, object]]:
        """One JSON error object per problem: message, hint, file, line, col, kind."""
        return [{"message": self.message, "hint": self.hint, "file": None, "line": None,
                 "col": None, "kind": self.kind}]


@dataclass(frozen=True)
class Loc:
    """A place in an input file, 1-based line and column."""

    file: str
    line: int = 1
    col: int = 1

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class InputError(NodewallError):
    """Bad input: a profile, a nets_file, a selector.  Exit 2, kernel untouched."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, loc: Loc, message: str, hint: str | None = None):
        super().__init__(message, hint)
        self.loc = loc

    def render(self) -> str:
        text = f"{self.loc}: {self.message}"
        if self.hint:
            text += f" (hint: {self.hint})"
        return text

    def to_json(self) -> list[dict[str, object]]:
        return [{"message": self.message, "hint": self.hint, "file": self.loc.file,
                 "line": self.loc.line, "col": self.loc.col, "kind": self.kind}]


class InputErrors(NodewallError):
    """Several InputErrors collected in one pass (validate reports them all)."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, errors: list[InputError]):
        super().__init__(f"{len(errors)} error(s) in the input")
        self.errors = errors

    def render(self) -> str:
        return "\n".join(e.render() for e in self.errors)

    def to_json(self) -> list[dict[str, object]]:
        return [item for e in self.errors for item in e.to_json()]


class EnvironmentProblem(NodewallError):
    """The machine lacks something: not root, no ipset binary, no bpffs, ..."""

    exit_code = ExitCode.FAILED


class KernelError(NodewallError):
    """The kernel refused an operation (the transaction rolls back)."""

    exit_code = ExitCode.FAILED


class OwnershipError(NodewallError):
    """Something nodewall does not own is in the way (a foreign XDP program, ...)."""

    exit_code = ExitCode.FOREIGN_OBJECT


class LockBusy(NodewallError):
    """Another nodewall transaction holds the lock and --no-wait was given."""

    exit_code = ExitCode.LOCK_BUSY


class NetnsNotFound(EnvironmentProblem):
    """--netns names a network namespace that does not exist."""

    exit_code = ExitCode.NETNS_NOT_FOUND


class NothingPending(NodewallError):
    """Nothing to act on: no apply waits for confirmation, nothing to roll back, no
    generation applied (explain) or recorded under that number."""

    exit_code = ExitCode.NOTHING_PENDING


class UsageError(NodewallError):
    """The command line is wrong (unknown option, missing argument)."""

    exit_code = ExitCode.USAGE


class NothingToDo(NodewallError):
    """`apply --check` found the kernel already matches (exit 3)."""

    exit_code = ExitCode.NOTHING_TO_DO


class ConfirmPending(NodewallError):
    """A change waits for `nodewall confirm`; a plain apply now would be reverted."""

    exit_code = ExitCode.FAILED


class Quarantined(NodewallError):
    """The agent met content that an automatic revert took back."""

    exit_code = ExitCode.FAILED


class ConcurrentEdit(NodewallError):
    """A file changed on disk after it was read; the write was not made."""

    exit_code = ExitCode.FAILED

    def __init__(self, path: object):
        super().__init__(f"{path} changed on disk since it was opened; not overwritten",
                         hint="reload it (your edit is lost) or merge the two by hand")
        self.path = path
