"""What a set of profiles says, as one digest: the same content gives the same digest
whatever the paths it is read from (the agent's directory, a manual path, a symlinked
ConfigMap mount), so a reverted change is recognised when it comes back."""
from __future__ import annotations

import hashlib
from pathlib import Path

from nodewall.engine.nets.digests import FileDigests
from nodewall.engine.profile.model import Profile


def content_digest(profile: Profile, digests: FileDigests) -> str:
    """sha256 over the sorted digests of every profile file and every nets_file
    (file order and paths do not count; their bytes do).  digests: the transaction's
    memo of file hashes, which the dataplanes' plans ask for too."""
    parts = sorted(digests.sha256(Path(f)) for f in profile.files)
    parts += sorted(digests.sha256(Path(ns.nets_file.path))
                    for ns in profile.network_sets if ns.nets_file is not None)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]
