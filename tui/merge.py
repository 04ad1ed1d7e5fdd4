"""A line-based three-way merge: the operator's edit and a change made on disk
meanwhile, both against the text the editor opened.  Changes to different lines
merge; changes to the same lines become a conflict between marker lines (which
the live validation then points at)."""
from __future__ import annotations

import difflib
from dataclasses import dataclass

MINE, THEIRS = "<<<<<<< yours", ">>>>>>> on disk"


@dataclass(frozen=True)
class Change:
    start: int  # base line range [start, end) replaced by `lines`
    end: int
    lines: tuple[str, ...]
    side: str  # "mine" | "theirs"


@dataclass(frozen=True)
class Merged:
    text: str
    conflicts: int


def _changes(base: list[str], other: list[str], side: str) -> list[Change]:
    matcher = difflib.SequenceMatcher(None, base, other, autojunk=False)
    return [Change(i1, i2, tuple(other[j1:j2]), side)
            for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal"]


def _touches(lo: int, hi: int, c: Change) -> bool:
    """Whether change `c` overlaps the base range [lo, hi); an insertion counts
    at its point, so two edits at the same place always meet."""
    if c.start == c.end or lo == hi:
        return c.start <= hi and lo <= c.end
    return c.start < hi and lo < c.end


def _clusters(changes: list[Change]) -> list[tuple[int, int, list[Change]]]:
    out: list[tuple[int, int, list[Change]]] = []
    for c in sorted(changes, key=lambda c: (c.start, c.end)):
        if out and _touches(out[-1][0], out[-1][1], c):
            lo, hi, members = out[-1]
            out[-1] = (lo, max(hi, c.end), [*members, c])
        else:
            out.append((c.start, c.end, [c]))
    return out


def _side_version(base: list[str], lo: int, hi: int, changes: list[Change]) -> list[str]:
    out, pos = [], lo
    for c in changes:
        out += base[pos:c.start] + list(c.lines)
        pos = c.end
    return out + base[pos:hi]


def _line(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


def merge3(base: str, mine: str, theirs: str) -> Merged:
    base_l = base.splitlines(keepends=True)
    mine_l, theirs_l = mine.splitlines(keepends=True), theirs.splitlines(keepends=True)
    changes = _changes(base_l, mine_l, "mine") + _changes(base_l, theirs_l, "theirs")
    out: list[str] = []
    pos = conflicts = 0
    for lo, hi, members in _clusters(changes):
        out += base_l[pos:lo]
        ours = _side_version(base_l, lo, hi, [c for c in members if c.side == "mine"])
        other = _side_version(base_l, lo, hi, [c for c in members if c.side == "theirs"])
        sides = {c.side for c in members}
        if sides == {"mine"} or ours == other:
            out += ours
        elif sides == {"theirs"}:
            out += other
        else:
            conflicts += 1
            out += [MINE + "\n", *map(_line, ours), "=======\n", *map(_line, other),
                    THEIRS + "\n"]
        pos = hi
    out += base_l[pos:]
    return Merged("".join(out), conflicts)


def diff_lines(disk: str, mine: str, name: str) -> list[str]:
    """The unified diff from the file on disk to the operator's text."""
    return [line.rstrip("\n") for line in difflib.unified_diff(
        disk.splitlines(keepends=True), mine.splitlines(keepends=True),
        f"{name} (on disk)", f"{name} (yours)", n=2)]
