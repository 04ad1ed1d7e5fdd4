"""Profile files on disk: atomic saves and validation of unsaved text."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nodewall.engine.errors import InputError, InputErrors, NodewallError
from nodewall.engine.system.files import atomic_write_text, replace_if_unchanged

from .merge import merge3


def atomic_write(path: Path, text: str) -> None:
    """Write beside the target, fsync, then os.replace (keeps the file's mode)."""
    atomic_write_text(Path(path), text)


@dataclass(frozen=True)
class Problem:
    text: str  # "file:line:col: message" with the real profile's name
    line: int | None  # 1-based, in the edited file; None when elsewhere / unknown
    col: int | None


def validate_text(validate, path: Path, text: str, others: Sequence[Path]):
    """Validate `text` as the content of `path`, together with the other profiles, in
    memory (nothing is written beside the operator's file).  Returns (problems,
    warnings).  `validate` is EngineClient.validate."""
    path = Path(path)
    try:
        profile = validate([path, *[p for p in others if Path(p) != path]],
                           texts={str(path): text})
    except InputErrors as exc:
        return [_problem(e, path) for e in exc.errors], []
    except InputError as exc:
        return [_problem(exc, path)], []
    except NodewallError as exc:
        return [Problem(exc.render(), None, None)], []
    return [], list(getattr(profile, "warnings", ()))


def _problem(err: InputError, path: Path) -> Problem:
    here = Path(err.loc.file) == path
    return Problem(err.render(), err.loc.line if here else None,
                   err.loc.col if here else None)


@dataclass
class Buffer:
    """One profile file as the editor holds it."""

    path: Path
    saved: str  # the text on disk when loaded or last saved
    text: str
    edits: int = 0  # bumped on every change; stale validation results are dropped
    checked: int = -1  # `edits` value the problems below belong to
    problems: tuple = ()
    warnings: tuple = ()

    @classmethod
    def load(cls, path: Path) -> Buffer:
        try:
            text = Path(path).read_text()
        except FileNotFoundError:
            text = ""
        return cls(Path(path), text, text)

    @property
    def dirty(self) -> bool:
        return self.text != self.saved

    def set_text(self, text: str) -> None:
        if text != self.text:
            self.text = text
            self.edits += 1

    def save(self) -> None:
        """Write the buffer, unless the file changed on disk since it was loaded or
        saved (raises ConcurrentEdit; nothing is written)."""
        replace_if_unchanged(self.path, self.saved, self.text)
        self.saved = self.text

    def disk_text(self) -> str:
        try:
            return self.path.read_text()
        except FileNotFoundError:
            return ""

    def overwrite(self, seen_on_disk: str) -> None:
        """Write the buffer over the version of the file the operator was shown
        (still refused if the file changed again since)."""
        replace_if_unchanged(self.path, seen_on_disk, self.text)
        self.saved = self.text

    def merge_disk(self, disk: str) -> int:
        """Merge the change made on disk into the buffer (three-way, against the text
        it was opened with); from now on the buffer is based on `disk`.  Returns the
        number of conflicts left marked in the text."""
        merged = merge3(self.saved, self.text, disk)
        self.saved = disk
        self.set_text(merged.text)
        return merged.conflicts
