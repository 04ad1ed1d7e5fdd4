"""The applied generation's plan, asked for by explain, the rules screen's kernel text
and its address filter, is planned once per generation and panic state."""
from __future__ import annotations

from nodewall.engine.service import Service

from .conftest import Rig


def _service(rig: Rig) -> tuple[Service, list[int]]:
    svc = Service(state_dir=rig.root)
    svc.tx, svc.kernel, svc.store = rig.tx, rig.tx.kernel, rig.store
    planned: list[int] = []
    plan = rig.tx.generation_plan

    def counting(n: int):
        planned.append(n)
        return plan(n)
    rig.tx.generation_plan = counting  # type: ignore[method-assign]
    return svc, planned


def test_one_plan_per_generation_and_panic_state(rig: Rig):
    svc, planned = _service(rig)
    svc.apply([rig.profile("a", 80)])
    assert svc.rules_holding("10.0.0.1") == frozenset()
    svc.rules_holding("10.0.0.2")
    assert svc.rendered_rule("nope") == []
    assert planned == [1]
    svc.set_panic(True)
    svc.rules_holding("10.0.0.3")
    assert planned == [1, 1]  # the panic overlay changes what the kernel holds
    svc.set_panic(False)
    svc.apply([rig.profile("a", 81)])
    svc.rules_holding("10.0.0.4")
    assert planned[-1] == 2
