"""What a set of profiles says, as one digest: the same content gives the same digest
whatever the paths it is read from (the agent's directory, a manual path, a symlinked
ConfigMap mount), so a reverted change is recognised when it comes back."""
from __future__ import annotations

import hashlib
from pathlib import Path

from nodewall.engine.nets.digests import FileDigests
from nodewall.engine.profile.model import Profile
from nodewall.engine.system.files import open_regular

CHUNK = 1 << 20


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open_regular(path) as fh:  # a FIFO swapped in never blocks
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def content_digest(profile: Profile, digests: FileDigests | None = None) -> str:
    """sha256 over the sorted digests of every profile file and every nets_file
    (file order and paths do not count; their bytes do).  digests: the transaction's
    memo of nets_file hashes, which the dataplanes' plans ask for too."""
    nets = digests.sha256 if digests is not None else _file_digest
    parts = sorted(_file_digest(Path(f)) for f in profile.files)
    parts += sorted(nets(Path(ns.nets_file.path))
                    for ns in profile.network_sets if ns.nets_file is not None)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]
