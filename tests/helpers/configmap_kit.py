"""A directory laid out and updated the way the kubelet does a mounted ConfigMap
(its AtomicWriter): each version in a fresh `..<timestamp>` directory, the `..data`
symlink swapped to it with one rename, `NAME -> ..data/NAME` symlinks for the keys,
then the old version removed."""
from __future__ import annotations

import itertools
import os
import shutil
import time
from pathlib import Path

DATA = "..data"


class ConfigMapDir:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._seq = itertools.count(1)

    def current(self) -> str:
        link = self.root / DATA
        return os.readlink(link) if link.is_symlink() else ""

    def write(self, files: dict[str, str]) -> str:
        """Publish `files` (name -> text) as the new version; returns its directory
        name.  The swap itself is one rename(2)."""
        old = self.current()
        version = time.strftime("..%Y_%m_%d_%H_%M_%S.") + f"{os.getpid()}{next(self._seq):04d}"
        vdir = self.root / version
        vdir.mkdir()
        for name, text in files.items():
            (vdir / name).write_text(text)
        tmp = self.root / "..data_tmp"
        os.symlink(version, tmp)
        os.rename(tmp, self.root / DATA)  # the swap
        for name in files:
            link = self.root / name
            if not link.is_symlink():
                os.symlink(f"{DATA}/{name}", link)
        for entry in self.root.iterdir():
            if (entry.is_symlink() and not entry.name.startswith("..")
                    and entry.name not in files):
                entry.unlink()
        if old:
            shutil.rmtree(self.root / old)
        return version
