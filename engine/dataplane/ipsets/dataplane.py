"""ipsets as a Dataplane: nodewall's `nw-` sets, loaded before the rules that use
them and destroyed after the rules stopped using them (engine.dataplane.protocol)."""
from __future__ import annotations

import ipaddress
from pathlib import Path

from nodewall.engine.dataplane.ipsets import flush as ipset_flush
from nodewall.engine.dataplane.ipsets import observe as ipset_observe
from nodewall.engine.dataplane.ipsets import sync as ipset_sync
from nodewall.engine.dataplane.ipsets.observe import ObservedSet
from nodewall.engine.dataplane.protocol import Counters, TxContext
from nodewall.engine.dataplane.shape import Drift, ExpectedShape
from nodewall.engine.nets.digests import FileDigests
from nodewall.engine.nets.scan import iter_members
from nodewall.engine.plan.desired import DesiredState

EXACT_CHECK_MAX = 65536  # inline-only sets up to this size are compared member by member
FILE_CHECK_MAX = 16384  # nets_file sets up to this size too (their files are read again)
FILE_CHECK_BYTES = 1 << 20  # … when their nets_files total at most this many bytes


class IpsetDataplane:
    name = "ipsets"
    counts_rules = False

    def warm_up(self) -> None:
        return None

    def observe(self) -> dict[str, ObservedSet]:
        """Set headers only (no member is dumped)."""
        return ipset_observe.observe()

    def prepare(self, desired: DesiredState, ctx: TxContext) -> None:
        """Forget the manifest of every small set whose members were changed by hand
        (same count), so that the plan reloads it in full."""
        live = ctx.observation(self)
        for spec in desired.ipsets:
            man = ipset_sync.load_manifest(spec.name)
            if man is not None and spec.name in live and \
                    members_differ(spec.name, man, live[spec.name]):
                ipset_sync.drop_manifest(spec.name)

    def plan(self, desired: DesiredState, ctx: TxContext) -> ipset_sync.IpsetPlan:
        made = ipset_sync.plan(desired.ipsets, ctx.baselines, ctx.observation(self),
                              digests=ctx.digests)
        ctx.plans[self.name] = (desired, made)
        return made

    def apply(self, desired: DesiredState, ctx: TxContext) -> None:
        observed = ctx.observation(self)
        planned = ctx.planned(self, desired)
        ctx.plans.pop(self.name, None)
        ipset_sync.sync(desired.ipsets, ctx.baselines, observed=observed, planned=planned,
                        digests=ctx.digests)

    def retire(self, desired: DesiredState, ctx: TxContext) -> None:
        observed = ctx.observation(self)  # as before this apply: the stale sets in it
        ctx.forget(self)
        ipset_flush.destroy_unused({s.name for s in desired.ipsets},
                                   observed=observed).raise_if_incomplete()

    def verify(self, desired: DesiredState) -> list[str]:
        live = ipset_observe.names()
        missing = [s.name for s in desired.ipsets if s.name not in live]
        return [f"missing ipsets {missing}"] if missing else []

    def counters(self, observed: dict[str, ObservedSet]) -> Counters:
        return {}

    def drift(self, expected: ExpectedShape, observed: dict[str, ObservedSet]) -> list[Drift]:
        out: list[Drift] = []
        for name in expected.ipsets:
            live = observed.get(name)
            if live is None:
                out.append(Drift("ipset", name, "is missing"))
                continue
            manifest = ipset_sync.load_manifest(name)
            if manifest is None:
                continue
            if manifest.entries != live.entries:
                out.append(Drift("ipset", name, f"was changed outside nodewall ("
                                 f"{live.entries} entries, applied {manifest.entries})"))
            elif members_differ(name, manifest, live):
                out.append(Drift("ipset", name,
                                 "was changed outside nodewall (other members)"))
        for name in sorted(set(observed) - set(expected.ipsets)):
            out.append(Drift("ipset", name, "is not in the recorded generation"))
        return out

    def foreign(self, observed: dict[str, ObservedSet]) -> list[str]:
        return []  # rules of other tools that use nw- sets: seen by the iptables side

    def flush(self) -> None:
        ipset_flush.flush_all().raise_if_incomplete()


def members_differ(name: str, man: ipset_sync.Manifest, live: ObservedSet,
                   limit: int = EXACT_CHECK_MAX) -> bool:
    """Exact member check (a member swapped by hand keeps the count): for list:sets,
    inline-only sets up to `limit` entries and nets_file sets up to FILE_CHECK_MAX
    whose files still hold what was loaded.  Larger sets are checked by count."""
    bound = FILE_CHECK_MAX if man.files else limit
    if live.entries > bound or sum(size for _p, size, _h in man.files) > FILE_CHECK_BYTES:
        return False  # e.g. the empty v6 half of a 1M-line v4 file: not read every tick
    have = ipset_observe.list_members(name)
    if man.kind == "list:set":
        return tuple(have) != man.members
    want = _loaded_members(man)
    if want is None:
        return False  # a file changed since the load: a plan says so, not drift
    try:
        norm = {str(ipaddress.ip_network(m, strict=False)) for m in have}
    except ValueError:
        return True
    return norm != want


def _loaded_members(man: ipset_sync.Manifest) -> set[str] | None:
    """What the set was loaded with, or None when a nets_file changed since."""
    want = set(man.inline)
    digests = FileDigests()
    for path, _size, sha in man.files:
        try:
            if digests.sha256(path) != sha:
                return None
        except OSError:
            return None
        want.update(iter_members(Path(path), man.family))
    return want
