"""Typed access to one TOML file's values, with located, collected errors.

`Ctx` wraps one parsed profile file: its plain values (tomlkit unwrapped), the
locations of everything in it, and the shared error list.  Getters return None when
a value is absent *or* wrong (the error is recorded); callers build an object only
when no error was recorded while reading it (`Ctx.mark` / `Ctx.clean_since`).
"""
from __future__ import annotations

import datetime
import difflib
import ipaddress
import math
import re
from collections.abc import Collection, Mapping
from typing import Any

from nodewall.engine.errors import InputError, Loc
from nodewall.engine.profile.model import PortRange
from nodewall.engine.profile.selector import parse_selector
from nodewall.engine.profile.toml_locations import Path, TomlLocations

NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,253}")
_LABEL_NAME = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)"
_DNS_LABEL = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
LABEL_KEY_RE = re.compile(rf"(?:(?=.{{1,253}}/)(?:{_DNS_LABEL}(?:\.{_DNS_LABEL})*)/)?{_LABEL_NAME}")
LABEL_VALUE_RE = re.compile(rf"{_LABEL_NAME}?")


def type_name(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, (datetime.date, datetime.time)):
        return "a date/time"
    return type(value).__name__


class Ctx:
    def __init__(self, file: str, text: str, locs: TomlLocations, errors: list[InputError],
                 data: dict[str, Any] | None = None):
        self.file = file
        self.data: dict[str, Any] = data if data is not None else {}
        self.lines = text.splitlines()
        self.locs = locs
        self.errors = errors

    # ------------------------------------------------------------ errors
    def error(self, loc: Loc, message: str, hint: str | None = None) -> None:
        self.errors.append(InputError(loc, message, hint))

    def mark(self) -> int:
        return len(self.errors)

    def clean_since(self, mark: int) -> bool:
        return len(self.errors) == mark

    def value_loc(self, path: Path) -> Loc:
        return self.locs.value(*path)

    def table_loc(self, path: Path) -> Loc:
        return self.locs.table(*path)

    # ------------------------------------------------------------ structure
    def check_keys(self, table: Mapping[str, Any], path: Path, allowed: Collection[str],
                   what: str) -> None:
        for key in table:
            if key in allowed:
                continue
            close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            self.error(self.locs.key(*path, key), f"unknown key '{key}' in {what}{hint}",
                       "allowed keys: " + ", ".join(sorted(allowed)))

    def require(self, table: Mapping[str, Any], path: Path, key: str, what: str) -> bool:
        if key in table:
            return True
        self.error(self.table_loc(path), f"{what} is missing the required key '{key}'")
        return False

    def typed(self, table: Mapping[str, Any], path: Path, key: str, types: tuple[type, ...],
              expected: str, what: str) -> Any:
        if key not in table:
            return None
        value = table[key]
        ok = isinstance(value, types) and not (
            isinstance(value, bool) and bool not in types)
        if not ok:
            self.error(self.value_loc(path + (key,)),
                       f"'{key}' in {what} must be {expected}, not {type_name(value)}")
            return None
        return value

    def string(self, table: Mapping[str, Any], path: Path, key: str, what: str) -> str | None:
        return self.typed(table, path, key, (str,), "a string", what)

    def boolean(self, table: Mapping[str, Any], path: Path, key: str, what: str) -> bool:
        value = self.typed(table, path, key, (bool,), "true or false", what)
        return bool(value)

    def table(self, table: Mapping[str, Any], path: Path, key: str,
              what: str) -> dict[str, Any] | None:
        return self.typed(table, path, key, (dict,), "a table", what)

    def array(self, table: Mapping[str, Any], path: Path, key: str, what: str) -> list | None:
        return self.typed(table, path, key, (list,), "an array", what)

    def string_array(self, table: Mapping[str, Any], path: Path, key: str,
                     what: str) -> list[tuple[int, str]]:
        """[(index, text)] of an array of strings; wrong elements are reported."""
        items = self.array(table, path, key, what)
        out: list[tuple[int, str]] = []
        for i, item in enumerate(items or ()):
            if isinstance(item, str):
                out.append((i, item))
            else:
                self.error(self.value_loc(path + (key, i)),
                           f"'{key}' in {what} must hold strings, not {type_name(item)}")
        return out

    def enum(self, table: Mapping[str, Any], path: Path, key: str, choices: tuple[str, ...],
             what: str) -> str | None:
        value = self.string(table, path, key, what)
        if value is None:
            return None
        if value not in choices:
            close = difflib.get_close_matches(value, choices, n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            self.error(self.value_loc(path + (key,)),
                       f"bad {key} '{value}'{hint}: must be one of " + ", ".join(choices))
            return None
        return value

    def int_in(self, table: Mapping[str, Any], path: Path, key: str, lo: int, hi: int,
               what: str) -> int | None:
        value = self.typed(table, path, key, (int,), "an integer", what)
        if value is None:
            return None
        if not lo <= value <= hi:
            self.error(self.value_loc(path + (key,)),
                       f"'{key}' = {value} is out of range {lo}-{hi}")
            return None
        return value

    def number(self, table: Mapping[str, Any], path: Path, key: str, what: str) -> float | None:
        value = self.typed(table, path, key, (int, float), "a number", what)
        if value is None:
            return None
        if isinstance(value, float) and math.isnan(value):
            self.error(self.value_loc(path + (key,)), f"'{key}' must be a number, not nan")
            return None
        return float(value)

    # ------------------------------------------------------------ value kinds
    def cidrs(self, table: Mapping[str, Any], path: Path, key: str,
              what: str) -> list[tuple[int, str]]:
        """[(index, normalized CIDR)]"""
        out = []
        for i, text in self.string_array(table, path, key, what):
            net = parse_cidr(text)
            if isinstance(net, str):
                self.error(self.value_loc(path + (key, i)), f"bad CIDR '{text}': {net}",
                           "write an address or CIDR like 10.0.0.0/8 or 2001:db8::/32")
            else:
                out.append((i, str(net)))
        return out

    def ports(self, table: Mapping[str, Any], path: Path, key: str,
              what: str) -> tuple[PortRange, ...]:
        items = self.array(table, path, key, what)
        out = []
        for i, item in enumerate(items or ()):
            result = parse_port(item)
            if isinstance(result, str):
                self.error(self.value_loc(path + (key, i)), result,
                           "ports are integers 0-65535 or \"first:last\" strings")
            else:
                out.append(result)
        return tuple(out)

    def labels(self, table: Mapping[str, Any], path: Path, what: str) -> dict[str, str]:
        raw = self.table(table, path, "labels", what)
        out: dict[str, str] = {}
        for k, v in (raw or {}).items():
            lpath = path + ("labels", k)
            if not LABEL_KEY_RE.fullmatch(k):
                self.error(self.locs.key(*lpath), f"bad label key '{k}'",
                           "a label key is [prefix/]name: name up to 63 of [A-Za-z0-9-_.] "
                           "starting and ending alphanumeric; prefix a lowercase DNS name")
            elif not isinstance(v, str):
                self.error(self.value_loc(lpath),
                           f"label '{k}' must be a string, not {type_name(v)}")
            elif not LABEL_VALUE_RE.fullmatch(v):
                self.error(self.value_loc(lpath), f"bad label value '{v}' for '{k}'",
                           "up to 63 of [A-Za-z0-9-_.], starting and ending alphanumeric")
            else:
                out[k] = v
        return out

    def name(self, table: Mapping[str, Any], path: Path, what: str) -> str | None:
        if not self.require(table, path, "name", what):
            return None
        value = self.string(table, path, "name", what)
        if value is not None and not NAME_RE.fullmatch(value):
            self.error(self.value_loc(path + ("name",)), f"bad name '{value}'",
                       "names use letters, digits, '.', '_' and '-' only")
            return None
        return value

    def selector(self, table: Mapping[str, Any], path: Path, key: str,
                 what: str) -> str | None:
        """Parse a selector; return its canonical text (or None)."""
        text = self.string(table, path, key, what)
        if text is None:
            return None
        loc = self.value_loc(path + (key,))
        try:
            return parse_selector(text, loc).canonical()
        except InputError as e:
            self.errors.append(InputError(self._string_col(loc, e.loc), e.message, e.hint))
            return None

    def _string_col(self, quote: Loc, err: Loc) -> Loc:
        """Map a column computed as quote.col + 1 + offset onto the raw TOML text,
        accounting for escapes in a basic string and for triple quotes."""
        if err.line != quote.line or not 0 < quote.line <= len(self.lines):
            return err
        raw = self.lines[quote.line - 1]
        start = quote.col - 1
        if start >= len(raw):
            return err
        offset = err.col - quote.col - 1
        if raw.startswith(('"""', "'''"), start):
            start += 2
        if raw[start] != '"':
            return Loc(err.file, err.line, start + 2 + offset)
        i = start + 1
        for _ in range(offset):
            if i >= len(raw):
                break
            if raw[i] == "\\" and i + 1 < len(raw):
                i += {"u": 6, "U": 10}.get(raw[i + 1], 2)
            else:
                i += 1
        return Loc(err.file, err.line, i + 1)


def parse_cidr(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | str:
    """A normalized network, or why `text` is not one."""
    if "%" in text:  # ipaddress accepts fe80::1%eth0; no firewall match or set can
        return "a scoped address (%zone) cannot be matched by a firewall rule"
    try:
        if ":" in text:
            return ipaddress.IPv6Network(text.strip(), strict=False)
        return ipaddress.IPv4Network(text.strip(), strict=False)
    except ValueError as e:
        return str(e)


def parse_port(item: object) -> PortRange | str:
    """A PortRange, or an error message."""
    if isinstance(item, bool) or not isinstance(item, (int, str)):
        return f"a port must be an integer or a \"first:last\" string, not {type_name(item)}"
    if isinstance(item, int):
        first = last = item
    else:
        m = re.fullmatch(r"\s*(\d+)\s*(?::\s*(\d+)\s*)?", item)
        if not m:
            return f"bad port '{item}': use a number or \"first:last\""
        first = int(m.group(1))
        last = int(m.group(2)) if m.group(2) is not None else first
    for p in (first, last):
        if not 0 <= p <= 65535:
            return f"port {p} out of range 0-65535"
    if first > last:
        return f"reversed port range '{item}': first must be <= last"
    return PortRange(first, last)
