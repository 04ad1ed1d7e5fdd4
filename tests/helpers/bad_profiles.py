"""The bad-input corpus (tests/data/bad_profiles): every *.toml in it must fail to load
with exactly the error its first line announces:

    # expect: [<file relative to the profile>:]<line>:<col>: <substring of the message>

Optional second line `# generate: <relpath> <lines> <bad lineno> <bad text>` writes
a big nets_file first (into the temporary copy, never into git).  A file
`<name>.companion.toml` is loaded before `<name>.toml` (names across files).
Used by the unit test (load_profiles) and the kernel test (the CLI in a namespace)."""
from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import REPO

CORPUS = REPO / "tests" / "data" / "bad_profiles"
PROFILES = sorted(p for p in CORPUS.glob("*.toml") if not p.name.endswith(".companion.toml"))
EXPECT = re.compile(r"# expect: (?:(?P<file>[^:]+):)?(?P<line>\d+):(?P<col>\d+): (?P<text>.+)")
GENERATE = re.compile(r"# generate: (\S+) (\d+) (\d+) (\S+)")


def generate_nets_file(directive: re.Match[str], base: Path) -> None:
    """Write the big nets_file a `# generate:` line asks for, under `base`."""
    rel, total, bad, text = directive.group(1), int(directive.group(2)), \
        int(directive.group(3)), directive.group(4)
    target = base / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(1, total + 1)]
    lines[bad - 1] = text
    target.write_text("\n".join(lines) + "\n")
