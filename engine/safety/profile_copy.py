"""A recorded generation keeps a copy of each profile whose nets_file names the
generation's own copy of that file (so the generation can be applied again on its
own).  The copy keeps the operator's text: comments, layout and order.

The `nets_file = "..."` lines are rewritten in place, and the result is accepted only
when tomllib reads it as the original with just those values changed; anything else
(an inline table, a dotted key, a multi-line string) is rewritten by tomlkit, which
round-trips the whole document.  tomlkit is imported only then: it costs a small
apply more than the rest of recording the generation."""
from __future__ import annotations

import copy
import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_NETS_FILE_LINE = re.compile(
    r"""^(?P<head>[ \t]*nets_file[ \t]*=[ \t]*)(?P<value>"(?:[^"\\\n]|\\.)*"|'[^'\n]*')""",
    re.MULTILINE)


def recorded_text(text: str, src: Path, copies: Mapping[str, Path]) -> str:
    """TEXT (the profile at SRC) with each nets_file naming its copy: COPIES maps
    the real path of every nets_file to the generation's copy of it."""
    if "nets_file" not in text:
        return text
    fast = _rewrite_lines(text, src, copies)
    return fast if fast is not None else _rewrite_with_tomlkit(text, src, copies)


def _copy_of(src: Path, value: str, copies: Mapping[str, Path]) -> str:
    """The copy of nets_file VALUE, resolved as the loader does: beside SRC."""
    return str(copies[os.path.realpath(src.absolute().parent / value)])


def _expected(data: dict[str, Any], src: Path, copies: Mapping[str, Path]) -> dict[str, Any]:
    want = copy.deepcopy(data)
    for tbl in want.get("network_sets", []):
        if isinstance(tbl, dict) and "nets_file" in tbl:
            tbl["nets_file"] = _copy_of(src, tbl["nets_file"], copies)
    return want


def _rewrite_lines(text: str, src: Path, copies: Mapping[str, Path]) -> str | None:
    """The text with its nets_file lines rewritten, or None when that is not exactly
    the document with the nets_file values changed."""
    def new_line(m: re.Match[str]) -> str:
        value = tomllib.loads(f"v = {m['value']}")["v"]
        return m["head"] + json.dumps(_copy_of(src, value, copies))  # a TOML basic string

    try:
        want = _expected(tomllib.loads(text), src, copies)
        out = _NETS_FILE_LINE.sub(new_line, text)
        return out if tomllib.loads(out) == want else None
    except (tomllib.TOMLDecodeError, KeyError, TypeError):
        return None


def _rewrite_with_tomlkit(text: str, src: Path, copies: Mapping[str, Path]) -> str:
    import tomlkit
    doc = tomlkit.parse(text)
    for tbl in doc.get("network_sets", []):
        if "nets_file" in tbl:
            tbl["nets_file"] = _copy_of(src, str(tbl["nets_file"]), copies)
    return tomlkit.dumps(doc)
