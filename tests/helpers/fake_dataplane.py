"""An in-memory dataplane for unit tests of the transaction layer (no root, no kernel).

FakeDataplane implements engine.dataplane.protocol.Dataplane: its "kernel" is the last
DesiredState applied (None after a flush), it counts applies and flushes, logs every
call, and can be told to fail at a chosen step (`fail("verify")`) a number of times,
or to die there (`Killed`, a BaseException like the SIGKILL it stands for).

What it compares is a fingerprint of the desired state (chains with their rule ids,
hooks, ipsets, XDP interfaces and sets; nets_files by count, not path), so two plans
of the same profiles are equal, also when one reads a generation's copies, and a plan
with the panic chains is not."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nodewall.engine.dataplane.protocol import Counters, TxContext
from nodewall.engine.dataplane.shape import Drift, ExpectedShape
from nodewall.engine.errors import KernelError
from nodewall.engine.plan.desired import DesiredState

STEPS = ("warm_up", "observe", "prepare", "plan", "apply", "retire", "verify", "flush")


class Killed(BaseException):
    """The process died here (kill -9): nothing after it runs, not even `except`."""


def fingerprint(desired: DesiredState | None) -> frozenset[str]:
    """What the fake kernel holds, as comparable lines."""
    if desired is None:
        return frozenset()
    out: set[str] = set()
    for t in desired.tables:
        where = f"{t.family}/{t.table}"
        out |= {f"chain {where}/{c.name}: {' '.join(r.rule_id for r in c.rules)}"
                for c in t.chains}
        out |= {f"hook {where}/{h.kernel_chain} -> {h.chain}" for h in t.hooks}
    out |= {f"ipset {s.name} {s.kind} {sorted(s.inline)} {len(s.files)} file(s) "
            f"{s.expected_count} {sorted(s.members)}" for s in desired.ipsets}
    out |= {f"xdp {i.iface}: {' '.join(r.rule_id for r in i.rules)}"
            for i in desired.xdp.interfaces}
    out |= {f"xdp set {s.bit} {s.origin} {sorted(s.inline)} {s.count_v4} {s.count_v6}"
            for s in desired.xdp.sets}
    return frozenset(out)


def chain_names(desired: DesiredState | None) -> set[str]:
    return set() if desired is None else {c.name for t in desired.tables for c in t.chains}


@dataclass(frozen=True)
class FakePlan:
    added: tuple[str, ...]
    removed: tuple[str, ...]

    def describe(self) -> list[str]:
        return [f"+ {x}" for x in self.added] + [f"- {x}" for x in self.removed]

    def stats(self) -> dict[str, int]:
        return {"rules_added": len(self.added), "rules_removed": len(self.removed)}


class FakeDataplane:
    name = "fake"
    counts_rules = True

    def __init__(self) -> None:
        self.kernel: DesiredState | None = None  # what the "kernel" holds
        self.applies = 0
        self.flushes = 0
        self.calls: list[str] = []
        self.seen: list[DesiredState] = []  # every desired state apply() was given
        self._failures: dict[str, list[BaseException]] = {}

    # -- the switch ------------------------------------------------------------
    def fail(self, step: str, error: BaseException | None = None, times: int = 1) -> None:
        """The next `times` calls of `step` raise `error` (a KernelError by default)
        before doing anything."""
        assert step in STEPS, step
        exc = error if error is not None else KernelError(f"fake {step} failed")
        self._failures.setdefault(step, []).extend([exc] * times)

    def _step(self, step: str) -> None:
        self.calls.append(step)
        queued = self._failures.get(step)
        if queued:
            raise queued.pop(0)

    @property
    def holds(self) -> frozenset[str]:
        return fingerprint(self.kernel)

    # -- the protocol ------------------------------------------------------------
    def warm_up(self) -> None:
        self._step("warm_up")

    def observe(self) -> DesiredState | None:
        self._step("observe")
        return self.kernel

    def prepare(self, desired: DesiredState, ctx: TxContext) -> None:
        self._step("prepare")

    def plan(self, desired: DesiredState, ctx: TxContext) -> FakePlan:
        self._step("plan")
        have, want = fingerprint(ctx.observation(self)), fingerprint(desired)
        return FakePlan(tuple(sorted(want - have)), tuple(sorted(have - want)))

    def apply(self, desired: DesiredState, ctx: TxContext) -> None:
        self._step("apply")
        ctx.forget(self)
        self.kernel = desired
        self.applies += 1
        self.seen.append(desired)

    def retire(self, desired: DesiredState, ctx: TxContext) -> None:
        self._step("retire")

    def verify(self, desired: DesiredState) -> list[str]:
        try:
            self._step("verify")
        except KernelError as exc:  # a read-back that disagrees
            return [exc.message]
        return [] if fingerprint(self.kernel) == fingerprint(desired) else ["fake: differs"]

    def counters(self, observed: Any) -> Counters:
        return {}

    def drift(self, expected: ExpectedShape, observed: Any) -> list[Drift]:
        return []

    def foreign(self, observed: Any) -> list[str]:
        return []

    def flush(self) -> None:
        self._step("flush")
        self.kernel = None
        self.flushes += 1
