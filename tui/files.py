"""Profile files on disk: atomic saves and validation of unsaved text."""
from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nodewall.engine.errors import InputError, InputErrors, NodewallError
from nodewall.engine.system.files import atomic_write_text

_counter = itertools.count()


def atomic_write(path: Path, text: str) -> None:
    """Write beside the target, fsync, then os.replace (keeps the file's mode)."""
    atomic_write_text(Path(path), text)


@dataclass(frozen=True)
class Problem:
    text: str  # "file:line:col: message" with the real profile's name
    line: int | None  # 1-based, in the edited file; None when elsewhere / unknown
    col: int | None


def _scratch_path(path: Path) -> Path:
    """A scratch file beside the profile (so relative nets_file paths resolve)."""
    name = f".{path.stem}.nwcheck{os.getpid()}-{next(_counter)}{path.suffix}"
    return path.with_name(name)


def validate_text(validate, path: Path, text: str, others: Sequence[Path]):
    """Validate `text` as if it were `path`, together with the other profiles.
    Returns (problems, warnings).  `validate` is EngineClient.validate."""
    path = Path(path)
    scratch = _scratch_path(path)
    try:
        scratch.write_text(text)
    except OSError:  # profile dir not writable: nets_file paths may not resolve
        scratch = Path(tempfile.gettempdir()) / scratch.name
        scratch.write_text(text)

    def real(s: str) -> str:
        return s.replace(str(scratch), str(path)).replace(scratch.name, path.name)

    try:
        profile = validate([scratch, *[p for p in others if Path(p) != path]])
    except InputErrors as exc:
        return [_problem(e, scratch, real) for e in exc.errors], []
    except InputError as exc:
        return [_problem(exc, scratch, real)], []
    except NodewallError as exc:
        return [Problem(real(exc.render()), None, None)], []
    finally:
        scratch.unlink(missing_ok=True)
    return [], [real(w) for w in getattr(profile, "warnings", ())]


def _problem(err: InputError, scratch: Path, real) -> Problem:
    here = Path(err.loc.file).name == scratch.name
    return Problem(real(err.render()), err.loc.line if here else None,
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
        atomic_write(self.path, self.text)
        self.saved = self.text
