"""The wheel carries every engine package, the TUI, the BPF sources and the example
profiles (so `nodewall demo` works from a wheel install), and no top-level `engine`
or `tui` import name."""
import shutil
import subprocess
import sys
import tomllib
import zipfile

from tests.conftest import REPO as ROOT

# what a wheel is built from (a build writes build/ and *.egg-info beside its sources:
# into a copy, so the checkout stays clean and needs no write access)
SOURCES = ("pyproject.toml", "README.md", "engine", "tui", "bpf", "profiles")


def _declared() -> set[str]:
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(conf["tool"]["setuptools"]["packages"])


def test_every_engine_and_tui_package_is_declared():
    found = set()
    for top, name in (("engine", "nodewall.engine"), ("tui", "nodewall.tui")):
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top)
            found.add(".".join([name, *rel.parts]))
    assert found - _declared() == set()


def test_wheel_contents(tmp_path):
    src = tmp_path / "src"
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            src.mkdir(exist_ok=True)
            shutil.copy(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                    "-q", "-w", str(tmp_path), str(src)], check=True,
                   capture_output=True, timeout=300)
    wheel = next(tmp_path.glob("nodewall-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "nodewall/profiles/redis-host.toml" in names
    assert "nodewall/profiles/blocklist.txt" in names
    assert "nodewall/bpf/nw_xdp.c" in names
    assert "nodewall/engine/dataplane/orchestrator.py" in names
    assert "nodewall/engine/cli/__main__.py" in names
    assert not any(n.startswith(("engine/", "tui/")) for n in names)
