"""/readyz: is the generation in place, as recorded, with nothing waiting?"""
from __future__ import annotations

from dataclasses import dataclass

from nodewall.engine.observe.scrape import ScrapeView
from nodewall.engine.safety.agent import PassResult


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str  # the body of the answer: what is in place, or why not ready


def _view_problems(view: ScrapeView) -> list[str]:
    problems = []
    if view.generation is None:
        problems.append("no generation is applied")
    if view.in_flight is not None:
        problems.append(f"a {view.in_flight} is in flight")
    if view.pending_confirm is not None:
        p = view.pending_confirm
        problems.append(f"generation {p.generation} waits for `nodewall confirm` "
                        f"({p.seconds_left:.0f}s left)")
    if view.panic:
        problems.append("panic mode is on")
    if view.last_revert is not None:
        problems.append(f"reverted: {view.last_revert}")
    drift = {kind: n for kind, n in view.drift_by_kind().items() if n}
    if drift:
        problems.append("drift: " + ", ".join(f"{n} {kind}" for kind, n in drift.items()))
    return problems


def readiness(view: ScrapeView, last_pass: PassResult | None = None, *,
              agent: bool = False) -> Readiness:
    """Ready when a generation is in place with no drift, no transaction in flight,
    nothing pending confirm, no panic and no unacknowledged revert; for the agent, also
    when its last pass applied or found all in place."""
    problems = []
    if agent and last_pass is None:
        problems.append("the agent has not finished a reconcile pass yet")
    elif last_pass is not None and last_pass.outcome not in ("applied", "unchanged"):
        problems.append(f"the last reconcile pass was {last_pass.outcome}: "
                        f"{last_pass.message}")
    problems += _view_problems(view)
    if problems:
        return Readiness(False, "not ready: " + "; ".join(problems))
    return Readiness(True, f"ready: generation {view.generation} in place")
