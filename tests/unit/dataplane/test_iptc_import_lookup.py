"""The quick library lookup for python-iptables' import answers only with a library the
dynamic loader can load (python-iptables loads what it gets without a try), else the
slow lookup decides."""
from __future__ import annotations

from pathlib import Path

import pytest
from nodewall.engine.dataplane.iptables import iptc_import


@pytest.fixture
def lib_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(iptc_import, "LIB_DIRS", (str(tmp_path),))
    iptc_import.soname_in_lib_dirs.cache_clear()
    iptc_import._listing.cache_clear()
    yield tmp_path
    iptc_import.soname_in_lib_dirs.cache_clear()
    iptc_import._listing.cache_clear()


def test_a_library_the_loader_cannot_load_is_not_answered(lib_dir: Path):
    (lib_dir / "libnwnowhere.so.3").symlink_to(lib_dir / "missing.so")
    assert iptc_import.soname_in_lib_dirs("nwnowhere") is None


def test_the_highest_major_version_by_its_soname(lib_dir: Path, monkeypatch):
    for name in ("libnwx.so.7", "libnwx.so.12", "libnwx.so.12.7.0"):
        (lib_dir / name).touch()
    tried: list[str] = []
    monkeypatch.setattr(iptc_import.ctypes, "CDLL", tried.append)
    assert iptc_import.soname_in_lib_dirs("nwx") == "libnwx.so.12"
    assert tried == ["libnwx.so.12"]
