"""Destroy nodewall's ipsets: those no longer wanted (after iptables stopped using
them) or all of them.  A set a foreign rule (or foreign list:set) still references
cannot be destroyed; it is reported, and the foreign rule is left alone."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from nodewall.engine.dataplane.ipsets.observe import ObservedSet, observe, run_ipset
from nodewall.engine.dataplane.ipsets.sync import drop_manifest
from nodewall.engine.errors import OwnershipError


@dataclass(frozen=True)
class DestroyReport:
    destroyed: tuple[str, ...]
    in_use: tuple[str, ...]  # "nw-x (2 references)": still referenced, left in place

    def raise_if_incomplete(self) -> None:
        if self.in_use:
            raise OwnershipError(
                "ipsets still in use by rules nodewall does not own: " + ", ".join(self.in_use),
                hint="find them with `iptables-legacy-save | grep -- --match-set` (and the "
                     "nft/ip6 variants); remove those rules, then `nodewall flush` again")


def _destroy(sets: Iterable[ObservedSet], manifests: Path | None) -> DestroyReport:
    # list:sets first: they hold references on their member sets
    ordered = sorted(sets, key=lambda s: (s.kind != "list:set", s.name))
    done, busy = [], []
    for s in ordered:
        proc = run_ipset("destroy", s.name, check=False)
        if proc.returncode == 0 or _gone(s.name):  # gone: e.g. a killed load's temp set
            done.append(s.name)  # that this transaction's own load cleared meanwhile
            drop_manifest(s.name, manifests)
        else:
            busy.append(f"{s.name} ({s.references} references: {proc.stderr.strip()})")
    return DestroyReport(tuple(done), tuple(busy))


def _gone(name: str) -> bool:
    """The set no longer exists (a listing taken earlier still named it)."""
    return run_ipset("list", "-n", name, check=False).returncode != 0


def destroy_unused(keep: set[str], manifests: Path | None = None,
                   observed: dict[str, ObservedSet] | None = None) -> DestroyReport:
    """Destroy every nw- set not in `keep` (call after iptables stopped using them).
    `observed`: a listing taken earlier in the same transaction (sets not in `keep`
    existed then, and only nodewall creates nw- sets)."""
    live = observe() if observed is None else observed
    return _destroy((s for n, s in live.items() if n not in keep), manifests)


def flush_all(manifests: Path | None = None) -> DestroyReport:
    """Destroy every nw- set of the current namespace (leftover temp sets included)."""
    return _destroy(observe().values(), manifests)

