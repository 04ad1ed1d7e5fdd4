"""Property tests: selectors round-trip through canonical(); load_profiles never
raises anything but InputErrors, and every error is located (line >= 1, col >= 1)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nodewall.engine.errors import InputErrors
from nodewall.engine.profile.loader import load_profiles
from nodewall.engine.profile.selector import parse_selector

from tests.helpers.profile_kit import BLOCKLIST, DESIGN_EXAMPLE

KEYS = ["a", "b", "x.y/z", "has", "in"]
VALUES = ["1", "2", "web", "", "say \"hi\""]

# ---------------------------------------------------------------- selectors

Expr = tuple[Any, ...]

leaf = st.one_of(
    st.just(("all",)),
    st.tuples(st.just("has"), st.sampled_from(KEYS)),
    st.tuples(st.sampled_from(["==", "!="]), st.sampled_from(KEYS), st.sampled_from(VALUES)),
    st.tuples(st.sampled_from(["in", "not in"]), st.sampled_from(KEYS),
              st.frozensets(st.sampled_from(VALUES), max_size=3)),
)
exprs = st.recursive(leaf, lambda sub: st.one_of(
    st.tuples(st.just("!"), sub),
    st.tuples(st.sampled_from(["&&", "||"]), sub, sub),
), max_leaves=12)
label_maps = st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES))


def evaluate(e: Expr, labels: dict[str, str]) -> bool:
    """Calico semantics, written independently of engine.selector."""
    op = e[0]
    if op == "all":
        return True
    if op == "has":
        return e[1] in labels
    if op == "==":
        return labels.get(e[1]) == e[2]
    if op == "!=":
        return labels.get(e[1]) != e[2]
    if op == "in":
        return e[1] in labels and labels[e[1]] in e[2]
    if op == "not in":
        return not (e[1] in labels and labels[e[1]] in e[2])
    if op == "!":
        return not evaluate(e[1], labels)
    if op == "&&":
        return evaluate(e[1], labels) and evaluate(e[2], labels)
    return evaluate(e[1], labels) or evaluate(e[2], labels)


def render(e: Expr, data: st.DataObject) -> str:
    """Source text with random spacing, quotes and redundant parentheses; minimal
    parentheses otherwise, so precedence (&& over ||) is exercised."""
    ws = data.draw(st.sampled_from(["", " ", "  ", "\t"]))
    sp = data.draw(st.sampled_from([" ", "  ", "\t"]))

    def q(v: str) -> str:
        if '"' in v:
            return f"'{v}'"
        return data.draw(st.sampled_from([f'"{v}"', f"'{v}'"]))

    op = e[0]
    if op == "all":
        text = "all()"
    elif op == "has":
        text = f"has({ws}{e[1]}{ws})"
    elif op in ("==", "!="):
        text = f"{e[1]}{ws}{op}{ws}{q(e[2])}"
    elif op in ("in", "not in"):
        body = f",{ws}".join(q(v) for v in sorted(e[2]))
        kw = "in" if op == "in" else f"not{sp}in"
        text = f"{e[1]}{sp}{kw}{ws}{{{ws}{body}{ws}}}"
    elif op == "!":
        inner = render(e[1], data)
        text = f"!{ws}({inner})" if e[1][0] in ("&&", "||") else f"!{ws}{inner}"
    else:
        parts = []
        for child in e[1:]:
            t = render(child, data)
            needs = op == "&&" and child[0] == "||"
            if needs or data.draw(st.booleans()) and child[0] in ("&&", "||"):
                t = f"({ws}{t}{ws})"
            parts.append(t)
        text = f"{parts[0]}{ws}{op}{ws}{parts[1]}"
    return text


@settings(max_examples=300, deadline=None)
@given(exprs, st.data(), st.lists(label_maps, min_size=1, max_size=8))
def test_selector_semantics_and_canonical_roundtrip(e: Expr, data: st.DataObject,
                                                    maps: list[dict[str, str]]) -> None:
    text = render(e, data)
    sel = parse_selector(text)
    again = parse_selector(sel.canonical())
    assert again.canonical() == sel.canonical()  # canonical is a fixed point
    for labels in maps:
        want = evaluate(e, labels)
        assert sel.matches(labels) is want, (text, labels)
        assert again.matches(labels) is want, (sel.canonical(), labels)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab()!&|=\"' {},inothasl", max_size=30))
def test_selector_garbage_raises_located_input_errors(text: str) -> None:
    from nodewall.engine.errors import InputError, Loc

    try:
        parse_selector(text, Loc("f.toml", 4, 10))
    except InputError as e:
        assert e.loc.line == 4 and 11 <= e.loc.col <= 11 + len(text)


# ---------------------------------------------------------------- loader robustness

@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("props")
    (d / "blocklist.txt").write_text(BLOCKLIST)
    return d


def _load_only_input_errors(path: Path, text: str | bytes) -> None:
    if isinstance(text, str):
        path.write_text(text)
    else:
        path.write_bytes(text)
    try:
        load_profiles([path])
    except InputErrors as e:
        assert e.errors
        n_lines = (text.count("\n") if isinstance(text, str) else text.count(b"\n")) + 2
        for err in e.errors:
            assert err.loc.line >= 1 and err.loc.col >= 1, err.render()
            if err.loc.file == str(path):
                assert err.loc.line <= n_lines, err.render()
            assert err.exit_code == 2


FUZZ = settings(max_examples=250, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes(workdir: Path, data: bytes) -> None:
    _load_only_input_errors(workdir / "bytes.toml", data)


@FUZZ
@given(st.text(alphabet='[]{}="\'#.,:\n abcdeinopstv0123456789_-', max_size=200))
def test_random_toml_ish_text(workdir: Path, text: str) -> None:
    _load_only_input_errors(workdir / "text.toml", text)


MUTATION_ALPHABET = '[]{}="\'#.,:/\n \t0123456789abcdeinopstuv_-*!&|()'
mutations = st.lists(st.tuples(
    st.sampled_from(["insert", "delete", "replace", "dup_line", "drop_line"]),
    st.floats(min_value=0, max_value=1, exclude_max=True),
    st.text(alphabet=MUTATION_ALPHABET, min_size=1, max_size=6),
), min_size=1, max_size=4)


def mutate(text: str, ops: list[tuple[str, float, str]]) -> str:
    for kind, where, chars in ops:
        i = int(where * len(text))
        if kind == "insert":
            text = text[:i] + chars + text[i:]
        elif kind == "delete":
            text = text[:i] + text[i + len(chars):]
        elif kind == "replace":
            text = text[:i] + chars + text[i + len(chars):]
        else:
            lines = text.split("\n")
            j = int(where * len(lines))
            if kind == "dup_line":
                lines.insert(j, lines[j])
            else:
                del lines[j]
            text = "\n".join(lines)
    return text


@FUZZ
@given(mutations)
def test_mutated_design_example(workdir: Path, ops: list[tuple[str, float, str]]) -> None:
    _load_only_input_errors(workdir / "mutated.toml", mutate(DESIGN_EXAMPLE, ops))


def test_unmutated_design_example_loads(workdir: Path) -> None:
    path = workdir / "clean.toml"
    path.write_text(DESIGN_EXAMPLE)
    assert len(load_profiles([path]).policies) == 3
