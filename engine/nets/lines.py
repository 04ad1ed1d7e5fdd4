"""The nets_file line format, one chunk at a time: one CIDR (or bare address) per
line, `#` comments, blank lines.

Files hold millions of lines, so nothing here runs Python per line on the v4 path:
the file is read in chunks cut at a newline, each chunk is validated by ONE compiled
bytes regex (C speed; IPv4 octets 0-255 and prefixes 0-32 are in the regex), and
members are counted with bytes.count / re.findall.  Only a failing chunk is looked
at line by line, to explain the first bad line with `ipaddress`.  IPv6 lines pass a
loose regex and are then checked with `ipaddress` one by one (they are few).

A /0 member cannot live in an ipset hash:net, so it is emitted as two /1s and counted
as 2 (members are upper bounds: duplicates are legal and counted as written).

engine.nets.scan validates whole files with this; engine.nets.baseline normalizes
changed regions with clean_chunk.
"""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from pathlib import Path

from nodewall.engine.errors import InputError, Loc
from nodewall.engine.system.files import open_regular

CHUNK = 8 << 20
MAX_LINE = 1024  # bytes per line, newline excluded: a CIDR and a comment fit easily
MAX_NETS_FILE_BYTES = 1 << 30  # 1 GiB: ~60M IPv4 lines; memory stays one chunk anyway

_OCTET = rb"(?:1[0-9][0-9]|[1-9]?[0-9]|2[0-4][0-9]|25[0-5])"
# unrolled (no repeat counter): measurably faster in sre than (?:OCTET\.){3}
V4_RE = (_OCTET + rb"\." + _OCTET + rb"\." + _OCTET + rb"\." + _OCTET
         + rb"(?:/(?:3[0-2]|[12]?[0-9]))?")
V6_LOOSE_RE = rb"[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*(?:/[0-9]{1,3})?"

# A chunk of pure v4 lines, no whitespace or comments: the common case, fastest regex.
_PURE_V4 = re.compile(rb"(?>" + V4_RE + rb"\n)*+")
# Anything legal.  match().end() is the start of the first bad line.
_ANY = re.compile(
    rb"(?>[ \t]*(?:" + V4_RE + rb"|" + V6_LOOSE_RE + rb")?[ \t\r]*(?:#[^\n]*)?\n)*+")
_V6_LINE = re.compile(rb"(?m)^[ \t]*(" + V6_LOOSE_RE + rb")")
_MEMBER_LINE = re.compile(rb"(?m)^[ \t]*[0-9A-Fa-f:]")
_V4_SLASH0 = re.compile(rb"(?m)^[ \t]*[0-9.]+/0(?![0-9])")
_V6_SLASH0 = re.compile(rb"(?m)^[ \t]*[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*/0(?![0-9])")
_SPECIAL = (b":", b"#", b" ", b"\t", b"\r", b"\n\n")
_LONG_LINE = re.compile(rb"[^\n]{%d}" % (MAX_LINE + 1))

# transforms for iter_member_chunks
_COMMENT = re.compile(rb"#[^\n]*")
_SPACE = re.compile(rb"[ \t\r]+")
_BLANK_LINES = re.compile(rb"\n\n+")
_V6_LINES = re.compile(rb"(?m)^[^\n:]*:[^\n]*\n")
_V4_ZERO = re.compile(rb"(?m)^[0-9.]+/0\n")
_V6_ZERO = re.compile(rb"(?m)^[0-9A-Fa-f:.]+/0\n")


def _is_plain(chunk: bytes) -> bool:
    """No comments, whitespace, blank lines or v6: every line is a v4 member."""
    return not chunk.startswith(b"\n") and not any(s in chunk for s in _SPECIAL)


def read_chunks(path: Path, chunk_size: int | None = None) -> Iterator[tuple[int, bytes]]:
    """(offset, chunk) pairs; every chunk ends with b"\\n" (one is added at EOF).
    chunk_size defaults to CHUNK (read at call time, so a test can make it small).
    Only a regular file of at most MAX_NETS_FILE_BYTES is read, and a line longer
    than MAX_LINE is an error: memory stays one chunk plus one line."""
    chunk_size = chunk_size or CHUNK
    offset = 0
    rest = b""
    with open_regular(path, MAX_NETS_FILE_BYTES) as f:
        while True:
            block = f.read(chunk_size)
            if not block:
                break
            block = rest + block if rest else block
            cut = block.rfind(b"\n") + 1
            rest = block[cut:]
            if len(rest) > MAX_LINE:
                _line_too_long(path, offset + cut)
            if cut == 0:
                continue
            yield offset, block[:cut] if rest else block
            offset += cut
    if rest:
        yield offset, rest + b"\n"


def _line_too_long(path: Path, line_start: int) -> None:
    line = LineCounter(path)(line_start) + 1
    raise InputError(Loc(str(path), line, MAX_LINE + 1),
                     f"line longer than {MAX_LINE} bytes",
                     "one IPv4/IPv6 address or CIDR per line, '#' starts a comment")


def count_members(chunk: bytes, plain: bool | None = None) -> tuple[int, int]:
    """(v4, v6) members of a chunk already known to be valid; /0 counts as 2."""
    if plain if plain is not None else _is_plain(chunk):
        v4, v6 = chunk.count(b"\n"), 0
        if b"/0\n" in chunk:
            v4 += len(_V4_SLASH0.findall(chunk))
        return v4, v6
    total = len(_MEMBER_LINE.findall(chunk))
    v6 = len(_V6_LINE.findall(chunk)) if b":" in chunk else 0
    v4 = total - v6
    if b"/0" in chunk:
        v4 += len(_V4_SLASH0.findall(chunk))
        v6 += len(_V6_SLASH0.findall(chunk))
    return v4, v6


_QUOTABLE = re.compile(r"[0-9A-Fa-f:./]{1,64}(?:%[A-Za-z0-9_.-]{1,15})?")


def _what(token: str) -> str:
    """How an error names a bad token: quoted when it looks like an address attempt,
    never otherwise (a nets_file pointed at /etc/shadow must not print its lines)."""
    return f"bad CIDR '{token}'" if _QUOTABLE.fullmatch(token) else "bad CIDR (not shown)"


def explain_line(line: bytes) -> tuple[int, str]:
    """(0-based column, message) for a line the regex refused (or a bad v6 line).
    The message quotes at most the token, and only one made of address characters."""
    body = line.decode("utf-8", "replace").rstrip("\r\n").split("#", 1)[0]
    col = len(body) - len(body.lstrip())
    parts = body.split()
    if not parts:
        return col, "bad line: not a CIDR, a comment or blank"
    token = parts[0]
    if len(parts) > 1:
        extra = body.index(parts[1], col + len(token))
        return extra, (f"{_what(token)}: unexpected text after it "
                       "(one CIDR per line; comments start with '#')")
    prefix = token.partition("/")[2]
    try:
        if ":" in token:
            ipaddress.IPv6Network(token, strict=False)
        else:
            ipaddress.IPv4Network(token, strict=False)
    except ValueError as e:
        reason = str(e) if _QUOTABLE.fullmatch(token) else "not an IPv4 or IPv6 address"
        return col, f"{_what(token)}: {reason}"
    if "/" in token and not prefix.isdigit():
        why = "the prefix must be a length, not a netmask"
    elif len(prefix) > 1 and prefix.startswith("0"):
        why = "the prefix length has a leading zero"
    elif "%" in token:
        why = "a scoped address (%zone) cannot be matched by a firewall set"
    else:
        why = "not an IPv4 a.b.c.d[/0-32] or IPv6 address[/0-128]"
    return col, f"{_what(token)}: {why}"


def _squeeze_blank_lines(chunk: bytes) -> bytes:
    """The chunk with runs of empty lines made one (bytes.replace: C speed; the line
    regex costs ~0.4 us per line, so 100 MB of newlines would take most of a minute).
    Only for validating and counting: offsets change."""
    while b"\n\n" in chunk:
        chunk = chunk.replace(b"\n\n", b"\n")
    return chunk


class Validator:
    """Validates chunks of one file and counts members; raises InputError at the
    file's line:col of the first bad line."""

    def __init__(self, path: Path, line_of: LineCounter):
        self.path = path
        self.line_of = line_of
        self.v4 = 0
        self.v6 = 0

    def chunk(self, offset: int, chunk: bytes) -> None:
        plain = _is_plain(chunk)
        if plain:
            if _PURE_V4.match(chunk).end() != len(chunk):  # type: ignore[union-attr]
                self._fail_in(offset, chunk)
        else:
            long_line = _LONG_LINE.search(chunk)
            if long_line:
                start = chunk.rfind(b"\n", 0, long_line.start()) + 1
                self._raise(offset, chunk, start, MAX_LINE, f"line longer than {MAX_LINE} bytes")
            body = _squeeze_blank_lines(chunk)
            if _ANY.match(body).end() != len(body):  # type: ignore[union-attr]
                self._fail_in(offset, chunk)  # located in the chunk as it is
            if b":" in chunk:
                self._check_v6(offset, chunk)
            chunk = body
        v4, v6 = count_members(chunk, plain)
        self.v4 += v4
        self.v6 += v6

    def _fail_in(self, offset: int, chunk: bytes) -> None:
        end = _ANY.match(chunk).end()  # type: ignore[union-attr]
        self._fail_at(offset, chunk, end)

    def _fail_at(self, offset: int, chunk: bytes, start: int) -> None:
        stop = chunk.find(b"\n", start)
        col, message = explain_line(chunk[start:stop])
        self._raise(offset, chunk, start, col, message)

    def _check_v6(self, offset: int, chunk: bytes) -> None:
        for m in _V6_LINE.finditer(chunk):
            token = m.group(1).decode()
            try:
                ipaddress.IPv6Network(token, strict=False)
            except ValueError as e:
                start = chunk.rfind(b"\n", 0, m.start(1)) + 1
                self._raise(offset, chunk, start, m.start(1) - start,
                            f"{_what(token)}: {e}")

    def _raise(self, offset: int, chunk: bytes, start: int, col: int, message: str) -> None:
        line = self.line_of(offset) + chunk.count(b"\n", 0, start) + 1
        raise InputError(Loc(str(self.path), line, col + 1), message,
                         "one IPv4/IPv6 address or CIDR per line, '#' starts a comment")


class LineCounter:
    """Line number (0-based count of newlines) before a file offset; counts only when
    asked, so the happy path never pays for it."""

    def __init__(self, path: Path, base_offset: int = 0, base_lines: int | None = 0):
        self.path = path
        self.base_offset = base_offset
        self.base_lines = base_lines

    def __call__(self, offset: int) -> int:
        if self.base_lines is not None and offset == self.base_offset:
            return self.base_lines
        n = 0
        with open(self.path, "rb") as f:
            remaining = offset
            while remaining > 0:
                block = f.read(min(remaining, CHUNK))
                if not block:
                    break
                n += block.count(b"\n")
                remaining -= len(block)
        return n


def clean_chunk(chunk: bytes, family: int) -> bytes:
    """b"CIDR\\n" lines of one family from a valid chunk (C-speed transforms)."""
    if _is_plain(chunk):
        out = chunk if family == 4 else b""
    else:
        out = chunk
        if b"#" in out:
            out = _COMMENT.sub(b"", out)
        if b" " in out or b"\t" in out or b"\r" in out:
            out = _SPACE.sub(b"", out)
        if b"\n\n" in out:
            out = _BLANK_LINES.sub(b"\n", out)
        if out.startswith(b"\n"):
            out = out[1:]
        if b":" in out:
            out = b"".join(_V6_LINES.findall(out)) if family == 6 else _V6_LINES.sub(b"", out)
        elif family == 6:
            out = b""
    if b"/0\n" in out:
        if family == 4:
            out = _V4_ZERO.sub(b"0.0.0.0/1\n128.0.0.0/1\n", out)
        else:
            out = _V6_ZERO.sub(b"::/1\n8000::/1\n", out)
    return out
