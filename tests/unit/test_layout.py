"""The layout stays as the README's design section promises: small modules in small
packages.  A module past the limit is split by concern, not trimmed to pass."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("engine", "tui")
MAX_MODULE_LINES = 450
MAX_PACKAGE_MODULES = 15


def _modules() -> list[Path]:
    return sorted(p for top in SHIPPED for p in (ROOT / top).rglob("*.py")
                  if "__pycache__" not in p.parts)


def test_no_module_is_over_450_lines():
    lengths = {str(m.relative_to(ROOT)): len(m.read_text().splitlines()) for m in _modules()}
    long = {m: n for m, n in lengths.items() if n > MAX_MODULE_LINES}
    assert not long, long


def test_no_package_holds_more_than_15_modules():
    packages: dict[Path, int] = {}
    for module in _modules():
        packages[module.parent] = packages.get(module.parent, 0) + 1
    crowded = {str(p.relative_to(ROOT)): n for p, n in packages.items()
               if n > MAX_PACKAGE_MODULES}
    assert not crowded, crowded
