"""The generation record's copies of the applied files (issue 15, items 6 and 13):
profiles reached through symlinks or `..` (a Kubernetes ConfigMap mount is `..data`
symlinks) are recorded like any other, every generation has its meta.json, and the
copies of private files stay private (0600 files in 0700 directories)."""
from __future__ import annotations

import os
import stat
from pathlib import Path

from nodewall.engine.profile.loader import load_profiles

from .conftest import Rig, profile_text


def _configmap(work: Path, port: int) -> Path:
    """work/cm/p.toml -> ..data/p.toml, ..data -> ..2026_11_24; nets.txt likewise."""
    cm = work / "cm"
    real = cm / "..2026_11_24"
    real.mkdir(parents=True)
    (real / "nets.txt").write_text("192.0.2.0/24\n")
    (real / "p.toml").write_text(profile_text(port, nets_file="nets.txt"))
    (cm / "..data").symlink_to("..2026_11_24")
    for name in ("p.toml", "nets.txt"):
        (cm / name).symlink_to(f"..data/{name}")
    return cm / "p.toml"


def _recorded_nets(rig: Rig, n: int) -> str:
    [copy] = rig.store.profile_copies(n)
    profile = load_profiles([copy])
    [netset] = profile.network_sets
    return netset.nets_file.path.read_text()


def test_a_configmap_style_symlinked_profile_dir_is_recorded(rig: Rig) -> None:
    path = _configmap(rig.work, 80)
    assert rig.tx.apply([path]).generation == 1
    assert rig.store.meta(1).generation == 1
    assert _recorded_nets(rig, 1) == "192.0.2.0/24\n"
    via_dotdot = rig.work / "cm" / ".." / "cm" / "p.toml"
    assert rig.tx.apply([via_dotdot], confirm_timeout=None).changed is False


def test_a_symlinked_nets_file_elsewhere_is_recorded(rig: Rig) -> None:
    elsewhere = rig.work / "lists" / "deep"
    elsewhere.mkdir(parents=True)
    (elsewhere / "bad.txt").write_text("198.51.100.0/24\n")
    (rig.work / "bad.txt").symlink_to(elsewhere / "bad.txt")
    prof = rig.work / "sub"
    prof.mkdir()
    (prof / "p.toml").write_text(profile_text(80, nets_file="../bad.txt"))
    link = rig.work / "p-link.toml"
    link.symlink_to(prof / "p.toml")
    assert rig.tx.apply([prof / "p.toml"]).generation == 1
    assert _recorded_nets(rig, 1) == "198.51.100.0/24\n"
    gens = rig.store.generations_dir
    assert sorted(p.name for p in gens.iterdir()) == ["1"]  # no generation without meta


def test_copies_of_private_files_stay_private(rig: Rig) -> None:
    nets = rig.work / "bad.txt"
    nets.write_text("192.0.2.0/24\n")
    nets.chmod(0o600)
    path = rig.profile("a", 80, nets_file="bad.txt")
    path.chmod(0o600)
    rig.tx.apply([path])
    gdir = rig.store.generation_dir(1)
    for p in [gdir, *gdir.rglob("*")]:
        mode = stat.S_IMODE(os.lstat(p).st_mode)
        if p.is_dir():
            assert mode == 0o700, f"{p} is {oct(mode)}"
        else:
            assert mode & 0o077 == 0, f"{p} is {oct(mode)}"
