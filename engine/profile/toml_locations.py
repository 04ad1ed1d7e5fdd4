"""Where every key, value and table of a TOML document is written.

tomlkit keeps no positions, so this module re-scans the (already valid) source and
maps key paths to 1-based (line, col):

    ("policies", 1, "ingress", 0, "destination", "ports", 2)

Array-of-tables elements and array elements are addressed by their index, table
keys by name.  Three maps are kept: where a *value* starts, where its *key* is
written, and where a *table* starts (its `[header]`, or the `{` of an inline table).
Lookups fall back to the nearest recorded ancestor, so a caller always gets a Loc.

The scanner is lenient: it runs only on text tomlkit accepted, and any surprise
ends the scan (what was recorded so far stays usable) instead of raising.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from nodewall.engine.errors import Loc

Path = tuple[str | int, ...]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_WS = re.compile(r"[ \t]*")
_WS_NL_COMMENT = re.compile(r"(?:[ \t\r\n]|#[^\n]*)*")
_SCALAR = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:[Zz]|[+-]\d{2}:\d{2})?"
    r"|[^\s,\]\}#]+")


class _Stop(Exception):
    """The scanner met something it does not understand: stop quietly."""


@dataclass
class TomlLocations:
    file: str
    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)
    tables: dict[Path, tuple[int, int]] = field(default_factory=dict)
    duplicate: Path | None = None  # first key path defined twice (for error messages)
    duplicate_at: tuple[int, int] | None = None

    def _lookup(self, table: dict[Path, tuple[int, int]], path: Path) -> Loc:
        p = tuple(path)
        while True:
            for t in (table, self.values, self.tables, self.keys):
                if p in t:
                    line, col = t[p]
                    return Loc(self.file, line, col)
            if not p:
                return Loc(self.file, 1, 1)
            p = p[:-1]

    def value(self, *path: str | int) -> Loc:
        """Where the value at `path` starts (an array element: where it starts)."""
        return self._lookup(self.values, path)

    def key(self, *path: str | int) -> Loc:
        """Where the key of `path` is written (for unknown keys)."""
        return self._lookup(self.keys, path)

    def table(self, *path: str | int) -> Loc:
        """Where the table at `path` starts: its [header] or the '{' of an inline table."""
        return self._lookup(self.tables, path)


class _Scanner:
    def __init__(self, text: str, locs: TomlLocations):
        self.text = text
        self.pos = 0
        self.locs = locs
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.aot_count: dict[Path, int] = {}
        self.current: Path = ()

    def where(self, offset: int) -> tuple[int, int]:
        lo, hi = 0, len(self.line_starts) - 1
        while lo < hi:  # last line start <= offset
            mid = (lo + hi + 1) // 2
            if self.line_starts[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return lo + 1, offset - self.line_starts[lo] + 1

    def record(self, table: dict[Path, tuple[int, int]], path: Path, offset: int) -> None:
        table.setdefault(path, self.where(offset))

    def skip(self, pattern: re.Pattern[str]) -> None:
        m = pattern.match(self.text, self.pos)
        if m:
            self.pos = m.end()

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    # ---------------------------------------------------------------- keys
    def simple_key(self) -> str:
        c = self.peek()
        if c == '"' or c == "'":
            start = self.pos
            self.string()
            raw = self.text[start + 1:self.pos - 1]
            return raw if c == "'" else _unescape(raw)
        m = _BARE_KEY.match(self.text, self.pos)
        if not m:
            raise _Stop
        self.pos = m.end()
        return m.group(0)

    def dotted_key(self) -> tuple[list[str], list[int]]:
        parts, offsets = [], []
        while True:
            self.skip(_WS)
            offsets.append(self.pos)
            parts.append(self.simple_key())
            self.skip(_WS)
            if self.peek() != ".":
                return parts, offsets
            self.pos += 1

    def resolve(self, parts: list[str]) -> Path:
        """Header key -> path, inserting the current index of arrays of tables."""
        path: Path = ()
        for part in parts:
            path = path + (part,)
            if path in self.aot_count:
                path = path + (self.aot_count[path] - 1,)
        return path

    # ---------------------------------------------------------------- values
    def string(self) -> None:
        t, p = self.text, self.pos
        if t.startswith('"""', p) or t.startswith("'''", p):
            q = t[p:p + 3]
            i = p + 3
            while True:
                j = t.find(q, i)
                if j < 0:
                    raise _Stop
                if q == '"""' and _escaped(t, j):
                    i = j + 1
                    continue
                end = j + 3
                while end < len(t) and t[end] == q[0] and end - j < 5:
                    end += 1  # up to two quotes may end the content
                self.pos = end
                return
        q = t[p]
        i = p + 1
        while True:
            j = t.find(q, i)
            if j < 0 or "\n" in t[i:j]:
                raise _Stop
            if q == '"' and _escaped(t, j):
                i = j + 1
                continue
            self.pos = j + 1
            return

    def value(self, path: Path) -> None:
        self.record(self.locs.values, path, self.pos)
        c = self.peek()
        if c in ('"', "'"):
            self.string()
        elif c == "[":
            self.array(path)
        elif c == "{":
            self.inline_table(path)
        else:
            m = _SCALAR.match(self.text, self.pos)
            if not m:
                raise _Stop
            self.pos = m.end()

    def array(self, path: Path) -> None:
        self.pos += 1
        index = 0
        while True:
            self.skip(_WS_NL_COMMENT)
            if self.peek() == "]":
                self.pos += 1
                return
            self.value(path + (index,))
            index += 1
            self.skip(_WS_NL_COMMENT)
            if self.peek() == ",":
                self.pos += 1
            elif self.peek() != "]":
                raise _Stop

    def inline_table(self, path: Path) -> None:
        self.record(self.locs.tables, path, self.pos)
        self.pos += 1
        while True:
            self.skip(_WS_NL_COMMENT)
            if self.peek() == "}":
                self.pos += 1
                return
            self.key_value(path)
            self.skip(_WS_NL_COMMENT)
            if self.peek() == ",":
                self.pos += 1
            elif self.peek() != "}":
                raise _Stop

    def key_value(self, base: Path) -> None:
        parts, offsets = self.dotted_key()
        for i in range(1, len(parts)):  # `a.b = 1` defines the table `a`
            self.record(self.locs.tables, base + tuple(parts[:i]), offsets[i - 1])
        path = base + tuple(parts)
        if path in self.locs.keys and self.locs.duplicate is None:
            self.locs.duplicate, self.locs.duplicate_at = path, self.where(offsets[-1])
        for i, off in enumerate(offsets):
            self.record(self.locs.keys, base + tuple(parts[:i + 1]), off)
        self.skip(_WS)
        if self.peek() != "=":
            raise _Stop
        self.pos += 1
        self.skip(_WS)
        self.value(path)

    # ---------------------------------------------------------------- document
    def header(self) -> None:
        start = self.pos
        double = self.text.startswith("[[", self.pos)
        self.pos += 2 if double else 1
        parts, offsets = self.dotted_key()
        if double:
            parent = self.resolve(parts[:-1])
            bare = parent + (parts[-1],)
            n = self.aot_count.get(bare, 0)
            self.aot_count[bare] = n + 1
            path = bare + (n,)
            self.record(self.locs.keys, bare, offsets[-1])
            self.record(self.locs.tables, bare, start)
        else:
            path = self.resolve(parts)
            if path in self.locs.tables and self.locs.duplicate is None:
                self.locs.duplicate, self.locs.duplicate_at = path, self.where(offsets[-1])
            self.record(self.locs.keys, path, offsets[-1])
        self.locs.tables[path] = self.where(start)
        self.current = path
        self.skip(_WS)
        if not self.text.startswith("]]" if double else "]", self.pos):
            raise _Stop
        self.pos += 2 if double else 1

    def document(self) -> None:
        self.locs.tables[()] = (1, 1)
        while True:
            self.skip(_WS_NL_COMMENT)
            if self.pos >= len(self.text):
                return
            if self.peek() == "[":
                self.header()
            else:
                self.key_value(self.current)


def _escaped(text: str, quote_at: int) -> bool:
    n, i = 0, quote_at - 1
    while i >= 0 and text[i] == "\\":
        n += 1
        i -= 1
    return n % 2 == 1


def _unescape(raw: str) -> str:
    if "\\" not in raw:
        return raw
    try:
        return raw.encode("latin-1", "backslashreplace").decode("unicode_escape")
    except UnicodeDecodeError:
        return raw


def scan_locations(text: str, file: str) -> TomlLocations:
    """Map every key path of `text` to where it is written (best effort, never raises)."""
    locs = TomlLocations(file)
    scanner = _Scanner(text, locs)
    try:
        scanner.document()
    except (_Stop, IndexError, RecursionError):
        pass
    return locs
