"""Selector parity with Calico: its parser's and tokenizer's own test tables
(tests/data/calico_selector_cases.toml) run against nodewall's parser."""
from __future__ import annotations

import tomllib

import pytest
from nodewall.engine.errors import InputError, Loc
from nodewall.engine.profile.fields import LABEL_KEY_RE, LABEL_VALUE_RE
from nodewall.engine.profile.selector import parse_selector

from tests.conftest import REPO

CASES = tomllib.loads((REPO / "tests/data/calico_selector_cases.toml").read_text())


def _short(text: str) -> str:
    return text if len(text) < 60 else text[:40] + f"...({len(text)} chars)"


@pytest.mark.parametrize("case", CASES["match"], ids=lambda c: _short(c["selector"]))
def test_matches_as_calico(case: dict) -> None:
    sel = parse_selector(case["selector"])
    again = parse_selector(sel.canonical())
    for labels in case["matches"]:
        assert sel.matches(labels) and again.matches(labels), labels
    for labels in case["non_matches"]:
        assert not sel.matches(labels) and not again.matches(labels), labels


@pytest.mark.parametrize("case", CASES["accept"], ids=lambda c: _short(c["selector"]))
def test_accepts_as_calico(case: dict) -> None:
    sel = parse_selector(case["selector"])
    assert sel.canonical() == case["canonical"]
    assert parse_selector(sel.canonical()) == sel


@pytest.mark.parametrize("text", CASES["reject"], ids=_short)
def test_rejects_as_calico(text: str) -> None:
    with pytest.raises(InputError) as info:
        parse_selector(text, Loc("p.toml", 3, 12))
    err = info.value
    assert err.loc.file == "p.toml" and err.loc.line == 3
    assert 13 <= err.loc.col <= 13 + len(text)  # inside the string
    assert err.message.startswith("bad selector: ")


def test_label_name_limit_is_calicos_512() -> None:
    assert parse_selector(f"has({'k' * 512})").matches({"k" * 512: ""})
    for text in (f"has({'k' * 513})", f"{'k' * 513} == \"v\""):
        with pytest.raises(InputError, match="label name too long"):
            parse_selector(text)


def test_newline_is_not_a_blank() -> None:
    with pytest.raises(InputError, match="only spaces and tabs") as info:
        parse_selector('a == "b" &&\nhas(c)')
    assert info.value.loc.col == 12  # the newline, offset 11


def test_global_is_all_for_host_endpoints() -> None:
    sel = parse_selector("global()")
    assert sel.is_all() and sel.canonical() == "global()"
    assert parse_selector('global() && a == "b"').matches({"a": "b"})


# Calico validates `labels` as Kubernetes does: keys are qualified names (an optional
# lowercase DNS-subdomain prefix of at most 253 characters and '/', then a name of at
# most 63 of [A-Za-z0-9-_.] that starts and ends alphanumeric), values are empty or
# such a name.
@pytest.mark.parametrize("key,ok", [
    ("role", True), ("a", True), ("k8s-app", True), ("app.kubernetes.io/name", True),
    ("A_b.C-9", True), ("x" * 63, True), ("x" * 64, False),
    ("p" * 253 + "/n", False),  # a DNS label is at most 63 characters
    (".".join(["p" * 63] * 3) + "." + "p" * 61 + "/n", True),  # a 253-character prefix
    (".".join(["p" * 63] * 4) + "/n", False),  # 255 characters
    ("Example.com/n", False), ("example.com/", False), ("/n", False), ("-a", False),
    ("a-", False), ("a b", False), ("a/b/c", False), ("", False),
])
def test_label_keys_as_calico(key: str, ok: bool) -> None:
    assert bool(LABEL_KEY_RE.fullmatch(key)) is ok


@pytest.mark.parametrize("value,ok", [
    ("", True), ("v", True), ("redis-host", True), ("1.2_3", True), ("v" * 63, True),
    ("v" * 64, False), ("-v", False), ("v.", False), ("a/b", False), ("a b", False),
])
def test_label_values_as_calico(value: str, ok: bool) -> None:
    assert bool(LABEL_VALUE_RE.fullmatch(value)) is ok
