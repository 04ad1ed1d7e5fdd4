"""engine/ never imports textual or rich (DESIGN.md section 1), statically and at
run time; and no generic top-level `engine`/`tui` package reaches site-packages."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

FORBIDDEN = {"textual", "rich"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_engine_sources_never_import_textual_or_rich():
    offenders = {str(p.relative_to(REPO)): sorted(_imports(p) & FORBIDDEN)
                 for p in (REPO / "engine").rglob("*.py") if _imports(p) & FORBIDDEN}
    assert offenders == {}


def _engine_modules() -> list[str]:
    """Every module of engine/ and its packages, as imported (not __main__)."""
    out = []
    for path in sorted((REPO / "engine").rglob("*.py")):
        parts = path.relative_to(REPO / "engine").with_suffix("").parts
        if parts[-1] == "__main__":
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out.append(".".join(("nodewall.engine", *parts)))
    return out


def test_engine_modules_load_without_textual():
    modules = _engine_modules()
    assert len(modules) > 40 and "nodewall.engine.safety.transactions" in modules
    code = ("import sys, importlib\n"
            f"for m in {modules!r}:\n"
            "    importlib.import_module(m)\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich'))\n"
            "print(','.join(bad))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd="/", check=True)
    assert out.stdout.strip() == ""


def test_no_generic_top_level_packages_installed():
    code = ("import importlib.util as u\n"
            "print([n for n in ('engine', 'tui', 'bpf') if u.find_spec(n) is not None])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd="/", check=True)
    assert out.stdout.strip() == "[]"
