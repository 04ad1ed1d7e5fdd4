from __future__ import annotations

import pytest
from nodewall.engine.errors import InputError, Loc
from nodewall.engine.profile.selector import ALL, parse_selector

LABELS = {"hep": "redis-host", "role": "db", "projectcalico.org/name": "n1", "zone": "a"}


@pytest.mark.parametrize("text,expected", [
    ("", True),
    ("   ", True),
    ("all()", True),
    ("global()", True),
    ("has(hep)", True),
    ("has(nope)", False),
    ('hep == "redis-host"', True),
    ("hep == 'redis-host'", True),
    ('hep == "web"', False),
    ('hep != "web"', True),
    ('nope != "web"', True),  # Calico: != matches an absent label
    ('nope == "web"', False),
    ('role in {"db", "cache"}', True),
    ('role in {"web"}', False),
    ('role in {}', False),
    ('role not in {"web"}', True),
    ('nope not in {"web"}', True),
    ('role not in {"db"}', False),
    ('projectcalico.org/name == "n1"', True),
    ('!has(hep)', False),
    ('!!has(hep)', True),
    ('has(hep) && hep == "redis-host"', True),
    ('has(hep) && hep == "x"', False),
    ('hep == "x" || role == "db"', True),
    # && binds tighter than ||
    ('role == "db" || hep == "x" && zone == "b"', True),
    ('(role == "db" || hep == "x") && zone == "b"', False),
    ('!(role == "db" && zone == "b")', True),
    ('hep contains "redis"', True),
    ('hep starts with "redis"', True),
    ('hep ends with "host"', True),
    ('hep ends with "redis"', False),
    ('nope contains ""', False),
])
def test_matches(text: str, expected: bool) -> None:
    assert parse_selector(text).matches(LABELS) is expected


@pytest.mark.parametrize("text,canonical", [
    ("", "all()"),
    ("  has( hep )", "has(hep)"),
    ("a=='x'", 'a == "x"'),
    ('a in {"z","b", "b"}', 'a in {"b", "z"}'),
    ('a == "x" && (b == "y" && c == "z")', 'a == "x" && b == "y" && c == "z"'),
    ('(a == "x" || b == "y") && c == "z"', '(a == "x" || b == "y") && c == "z"'),
    ('a == "x" || (b == "y" && c == "z")', 'a == "x" || b == "y" && c == "z"'),
    ('!(a == "x" || b == "y")', '!(a == "x" || b == "y")'),
    ("a == 'say \"hi\"'", "a == 'say \"hi\"'"),
])
def test_canonical(text: str, canonical: str) -> None:
    sel = parse_selector(text)
    assert sel.canonical() == canonical
    assert str(sel) == canonical
    assert parse_selector(canonical) == sel


def test_empty_is_all() -> None:
    assert parse_selector("") == ALL
    assert parse_selector("all()").is_all()
    assert not parse_selector("has(a)").is_all()


def test_has_as_label_name() -> None:
    # "has" without a parenthesis is an ordinary label key, as in Calico.
    assert parse_selector('has == "x"').matches({"has": "x"})


@pytest.mark.parametrize("text,col,message", [
    ("hep", 4, "expected '==', '!=', 'in' or 'not in' after label 'hep'"),
    ('hep = "x"', 5, "expected '==', '!=', 'in' or 'not in' after label 'hep'"),
    ('a == "x', 6, "unterminated string"),
    ("a == 'x", 6, "unterminated string"),
    ('(a == "x"', 1, "unbalanced parenthesis"),
    ('a == "x")', 9, "unbalanced parenthesis"),
    (')', 1, "unbalanced parenthesis"),
    ('a == "x" b', 10, "unexpected 'b' at end of selector"),
    ('&& a == "x"', 1, "but found '&&'"),
    ('a == "x" &&', 12, "unexpected end of selector"),
    ("has(a", 6, "')' closing has("),
    ("has()", 5, "expected a label name"),
    ("a == x", 6, "expected a quoted string"),
    ('a in ("x")', 6, "expected '{'"),
    ('a in {"x" "y"}', 11, "expected ',' or '}'"),
    ('a not {"x"}', 7, "expected 'in' after 'not'"),
    ("all(", 5, "')' after 'all('"),
    ('a starts "x"', 10, "expected 'with' after 'starts'"),
])
def test_errors_without_loc(text: str, col: int, message: str) -> None:
    with pytest.raises(InputError) as info:
        parse_selector(text)
    assert info.value.loc == Loc("<selector>", 1, col)
    assert message in info.value.message


def test_error_column_is_relative_to_the_toml_string() -> None:
    # selector = 'hep'   -- the opening quote is at column 12
    with pytest.raises(InputError) as info:
        parse_selector("hep", Loc("p.toml", 7, 12))
    assert info.value.loc == Loc("p.toml", 7, 16)
    assert info.value.hint  # actionable


def test_selectors_are_hashable_and_comparable() -> None:
    a = parse_selector('x == "1" && has(y)')
    b = parse_selector('x=="1"&&has(y)')
    assert a == b and hash(a) == hash(b)
    assert a != parse_selector('has(y) && x == "1"')  # order kept (stable text)
