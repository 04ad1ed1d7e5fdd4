"""Calico label selectors: parse, match, canonicalize.

Grammar (Calico's, `&&` binds tighter than `||`):

    expr    := and ( "||" and )*
    and     := unary ( "&&" unary )*
    unary   := "!"* ( "(" expr ")" | "all(" ")" | "global(" ")" | "has(" KEY ")" | match )
    match   := KEY ( "==" STR | "!=" STR | "in" SET | "not" "in" SET
               | "contains" STR | "starts" "with" STR | "ends" "with" STR )
    SET     := "{" [ STR ( "," STR )* [ "," ] ] "}"
    STR     := '"' ... '"' | "'" ... "'"        (no escapes, as in Calico)
    KEY     := [A-Za-z0-9_.\\-/]{1,512}

As in Calico's tokenizer: blanks are spaces and tabs only (a newline is an error);
the two-word operators may be written without a blank (`notin`, `startswith`,
`endswith`) or with several; a set may end with a comma; a run of `!` collapses to
one or none; `has(`, `all(` and `global(` take no blank before the parenthesis.
Empty (or blank) text means `all()`.  Semantics follow Calico: `k != "v"` and
`k not in {...}` also match when the label is absent; `global()` matches every
host endpoint (none is namespaced).

Errors are InputErrors pointing into the TOML file: `loc` is the location of the
opening quote of the TOML string holding the selector, so offset `i` of the selector
text is column `loc.col + 1 + i` (single-line strings).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from nodewall.engine.errors import InputError, Loc

_KEY_RE = re.compile(r"[A-Za-z0-9_.\-/]+")
_WS_RE = re.compile(r"[ \t]*")
MAX_KEY_LENGTH = 512  # Calico's tokenizer limit on a label name


# ---------------------------------------------------------------- AST

@dataclass(frozen=True)
class All:
    def matches(self, labels: Mapping[str, str]) -> bool:
        return True

    def render(self) -> str:
        return "all()"


@dataclass(frozen=True)
class Global:
    """`global()`: Calico's "not namespaced", which every host endpoint is."""

    def matches(self, labels: Mapping[str, str]) -> bool:
        return True

    def render(self) -> str:
        return "global()"


@dataclass(frozen=True)
class Has:
    key: str

    def matches(self, labels: Mapping[str, str]) -> bool:
        return self.key in labels

    def render(self) -> str:
        return f"has({self.key})"


@dataclass(frozen=True)
class Compare:
    """`key OP "value"` for OP in ==, !=, contains, starts with, ends with."""

    key: str
    op: str
    value: str

    def matches(self, labels: Mapping[str, str]) -> bool:
        got = labels.get(self.key)
        if self.op == "!=":
            return got != self.value
        if got is None:
            return False
        if self.op == "==":
            return got == self.value
        if self.op == "contains":
            return self.value in got
        if self.op == "starts with":
            return got.startswith(self.value)
        return got.endswith(self.value)  # "ends with"

    def render(self) -> str:
        return f"{self.key} {self.op} {_quote(self.value)}"


@dataclass(frozen=True)
class InSet:
    key: str
    values: frozenset[str]
    negated: bool  # `not in`

    def matches(self, labels: Mapping[str, str]) -> bool:
        got = labels.get(self.key)
        inside = got is not None and got in self.values
        return not inside if self.negated else inside

    def render(self) -> str:
        body = ", ".join(_quote(v) for v in sorted(self.values))
        return f"{self.key} {'not in' if self.negated else 'in'} {{{body}}}"


@dataclass(frozen=True)
class Not:
    operand: Node

    def matches(self, labels: Mapping[str, str]) -> bool:
        return not self.operand.matches(labels)

    def render(self) -> str:
        inner = self.operand.render()
        if isinstance(self.operand, (And, Or)):
            inner = f"({inner})"
        return "!" + inner


@dataclass(frozen=True)
class And:
    operands: tuple[Node, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(o.matches(labels) for o in self.operands)

    def render(self) -> str:
        return " && ".join(
            f"({o.render()})" if isinstance(o, Or) else o.render() for o in self.operands)


@dataclass(frozen=True)
class Or:
    operands: tuple[Node, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return any(o.matches(labels) for o in self.operands)

    def render(self) -> str:
        return " || ".join(o.render() for o in self.operands)


Node = All | Global | Has | Compare | InSet | Not | And | Or


def _quote(value: str) -> str:
    return f"'{value}'" if '"' in value else f'"{value}"'


@dataclass(frozen=True)
class Selector:
    """A parsed selector.  Equal selectors (as parsed trees) compare equal."""

    root: Node

    def matches(self, labels: Mapping[str, str]) -> bool:
        return self.root.matches(labels)

    def canonical(self) -> str:
        """Normalized text: single spaces, double quotes, sorted sets, minimal
        parentheses.  Stable across releases (it feeds rule-id hashes)."""
        return self.root.render()

    def is_all(self) -> bool:
        return isinstance(self.root, (All, Global))

    def __str__(self) -> str:
        return self.canonical()


ALL = Selector(All())


# ---------------------------------------------------------------- parser

MAX_DEPTH = 32  # nested '(' and '!': deeper is not a hand-written selector


class _Parser:
    def __init__(self, text: str, loc: Loc | None):
        self.text = text
        self.pos = 0
        self.loc = loc
        self.depth = 0

    # -- errors
    def error(self, offset: int, message: str, hint: str | None = None) -> InputError:
        if self.loc is None:
            where = Loc("<selector>", 1, offset + 1)
        else:
            where = Loc(self.loc.file, self.loc.line, self.loc.col + 1 + offset)
        return InputError(where, f"bad selector: {message}",
                          hint or "Calico syntax, e.g. 'role == \"db\" && has(zone)'")

    # -- lexing helpers
    def skip_ws(self) -> None:
        m = _WS_RE.match(self.text, self.pos)
        assert m is not None
        self.pos = m.end()

    def at_end(self) -> bool:
        self.skip_ws()
        return self.pos >= len(self.text)

    def peek(self, s: str) -> bool:
        self.skip_ws()
        return self.text.startswith(s, self.pos)

    def peek_word(self, word: str) -> bool:
        """`word` at pos, not followed by a key character."""
        self.skip_ws()
        if not self.text.startswith(word, self.pos):
            return False
        end = self.pos + len(word)
        return end >= len(self.text) or not _KEY_RE.match(self.text[end])

    def describe_here(self) -> str:
        self.skip_ws()
        if self.pos >= len(self.text):
            return "end of selector"
        m = _KEY_RE.match(self.text, self.pos)
        if m:
            return f"'{m.group(0)}'"
        if self.text[self.pos].isspace():
            return repr(self.text[self.pos])
        two = self.text[self.pos:self.pos + 2]
        if two in ("&&", "||", "==", "!="):
            return f"'{two}'"
        return f"'{self.text[self.pos]}'"

    def expect(self, s: str, what: str) -> None:
        if not self.peek(s):
            raise self.error(self.pos, f"expected {what} but found {self.describe_here()}")
        self.pos += len(s)

    def key(self, context: str) -> str:
        self.skip_ws()
        m = _KEY_RE.match(self.text, self.pos)
        if not m:
            raise self.error(self.pos, f"expected a label name {context} but found "
                             f"{self.describe_here()}")
        self.check_key_length(m.group(0), self.pos)
        self.pos = m.end()
        return m.group(0)

    def check_key_length(self, key: str, at: int) -> None:
        if len(key) > MAX_KEY_LENGTH:
            raise self.error(at, f"label name too long ({len(key)} characters, at most "
                             f"{MAX_KEY_LENGTH})")

    def operator(self, *words: str) -> bool:
        """The operator `words` at pos, blanks optional between the words, a word
        boundary after the last (Calico accepts `notin` and `starts  with`)."""
        self.skip_ws()
        end = self.pos
        for i, word in enumerate(words):
            if i:
                m = _WS_RE.match(self.text, end)
                assert m is not None
                end = m.end()
            if not self.text.startswith(word, end):
                return False
            end += len(word)
        if end < len(self.text) and _KEY_RE.match(self.text[end]):
            return False
        self.pos = end
        return True

    def string(self, context: str) -> str:
        self.skip_ws()
        if self.pos >= len(self.text) or self.text[self.pos] not in "\"'":
            raise self.error(self.pos, f"expected a quoted string {context} but found "
                             f"{self.describe_here()}",
                             "label values are quoted: hep == \"web\" or hep == 'web'")
        quote = self.text[self.pos]
        end = self.text.find(quote, self.pos + 1)
        if end < 0:
            raise self.error(self.pos, "unterminated string",
                             f"close the string with {quote}")
        value = self.text[self.pos + 1:end]
        self.pos = end + 1
        return value

    # -- grammar
    def parse(self) -> Selector:
        if self.at_end():
            return ALL
        node = self.expr()
        if not self.at_end():
            if self.text[self.pos] == ")":
                raise self.error(self.pos, "unbalanced parenthesis: ')' without '('")
            raise self.error(self.pos, f"unexpected {self.describe_here()} at end of selector",
                             "join expressions with && or ||")
        return Selector(node)

    def expr(self) -> Node:
        parts = [self.conj()]
        while self.peek("||"):
            self.pos += 2
            parts.append(self.conj())
        flat: list[Node] = []
        for p in parts:
            flat.extend(p.operands if isinstance(p, Or) else (p,))
        return flat[0] if len(flat) == 1 else Or(tuple(flat))

    def conj(self) -> Node:
        parts = [self.unary()]
        while self.peek("&&"):
            self.pos += 2
            parts.append(self.unary())
        flat: list[Node] = []
        for p in parts:
            flat.extend(p.operands if isinstance(p, And) else (p,))
        return flat[0] if len(flat) == 1 else And(tuple(flat))

    def nested(self, parse):
        """parse() one level deeper; a selector nested beyond MAX_DEPTH is refused
        (and the parser's recursion stays bounded)."""
        if self.depth >= MAX_DEPTH:
            raise self.error(self.pos, f"nested more than {MAX_DEPTH} levels deep",
                             "flatten the parentheses and negations")
        self.depth += 1
        try:
            return parse()
        finally:
            self.depth -= 1

    def unary(self) -> Node:
        negated = False
        while self.peek("!") and not self.peek("!="):
            self.pos += 1
            negated = not negated
        node = self.operand()
        return Not(node) if negated else node

    def operand(self) -> Node:
        self.skip_ws()
        start = self.pos
        if self.peek("("):
            self.pos += 1
            node = self.nested(self.expr)
            if not self.peek(")"):
                if self.at_end():
                    raise self.error(start, "unbalanced parenthesis: '(' is never closed")
                raise self.error(self.pos, f"expected ')' or an operator but found "
                                 f"{self.describe_here()}")
            self.pos += 1
            return node
        m = _KEY_RE.match(self.text, self.pos)
        if not m:
            raise self.error(self.pos, *self.why_no_operand())
        word = m.group(0)
        after = m.end()
        if word in ("all", "global", "has") and self.text.startswith("(", after):
            self.pos = after + 1
            if word == "has":
                k = self.key("inside has(...)")
                self.expect(")", "')' closing has(")
                return Has(k)
            self.expect(")", f"')' after '{word}('")
            return All() if word == "all" else Global()
        self.check_key_length(word, start)
        self.pos = after
        return self.match(word)

    def why_no_operand(self) -> tuple[str, str | None]:
        if self.at_end():
            return ("unexpected end of selector",
                    "an expression is missing after the last operator")
        char = self.text[self.pos]
        if char == ")":
            return "unbalanced parenthesis: ')' without '('", None
        if char in "\r\n\f\v" or char.isspace():
            return (f"unexpected whitespace {char!r} (Calico allows only spaces and tabs)",
                    "write the selector on one line")
        found = self.describe_here()
        return f"expected a label, '!', '(', 'has(...)' or 'all()' but found {found}", None

    def match(self, key: str) -> Node:
        if self.peek("=="):
            self.pos += 2
            return Compare(key, "==", self.string(f"after '{key} =='"))
        if self.peek("!="):
            self.pos += 2
            return Compare(key, "!=", self.string(f"after '{key} !='"))
        for words, op in ((("contains",), "contains"), (("starts", "with"), "starts with"),
                          (("ends", "with"), "ends with")):
            if self.operator(*words):
                return Compare(key, op, self.string(f"after '{op}'"))
        if self.operator("not", "in"):
            return InSet(key, self.set_literal(), True)
        if self.operator("in"):
            return InSet(key, self.set_literal(), False)
        self.skip_ws()
        for word, follow in (("not", "in"), ("starts", "with"), ("ends", "with")):
            if self.operator(word):
                self.skip_ws()
                raise self.error(self.pos, f"expected '{follow}' after '{word}' but found "
                                 f"{self.describe_here()}")
        raise self.error(self.pos, f"expected '==', '!=', 'in' or 'not in' after label "
                         f"'{key}' (found {self.describe_here()})",
                         f"e.g. {key} == \"value\", {key} in {{\"a\", \"b\"}} or has({key})")

    def set_literal(self) -> frozenset[str]:
        self.expect("{", "'{' starting a set like {\"a\", \"b\"}")
        values: list[str] = []
        while not self.peek("}"):
            values.append(self.string("in the set"))
            if self.peek("}"):
                break
            self.expect(",", "',' or '}' in the set")
        self.pos += 1
        return frozenset(values)


def parse_selector(text: str, loc: Loc | None = None) -> Selector:
    """Parse a Calico selector; raise InputError (located via `loc`) on bad syntax."""
    return _Parser(text, loc).parse()
