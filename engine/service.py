"""The engine's one facade for the CLI and the TUI.  Every method is blocking kernel
work in the CURRENT network namespace (the process entered --netns at start-up);
the TUI calls it from thread workers only."""
from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from nodewall.engine.dataplane.orchestrator import Orchestrator
from nodewall.engine.dataplane.preview import PlanPreview
from nodewall.engine.dataplane.rule_text import RenderedRule, rendered_rules
from nodewall.engine.errors import InputError, Loc, NothingPending
from nodewall.engine.observe.conntrack import ConntrackSample, conntrack_sample
from nodewall.engine.observe.report import StatusReport
from nodewall.engine.observe.status import ChecksCache, collect_status
from nodewall.engine.plan.desired import DesiredState
from nodewall.engine.profile.model import Profile
from nodewall.engine.safety.panic import PanicState, read_marker
from nodewall.engine.safety.results import ApplyResult
from nodewall.engine.safety.state_dir import RevertNotice, StateStore, default_state_dir
from nodewall.engine.safety.transactions import Transactions
from nodewall.engine.safety.validation import validate_profiles
from nodewall.engine.system import netns as netns_mod

if TYPE_CHECKING:
    from nodewall.engine.explain.members import SetIndex
    from nodewall.engine.explain.packet import Direction
    from nodewall.engine.explain.walk import Explanation
    from nodewall.engine.observe.scrape import ScrapeView
    from nodewall.engine.safety import history as history_mod
    from nodewall.engine.safety.agent import Agent, PassObserver
    from nodewall.engine.safety.snapshot import NodeIdentity

OnWait = Callable[[str], None] | None  # told when the lock is busy and we wait for it


class Service:
    def __init__(self, *, netns: str | None = None, state_dir: Path | None = None):
        self.netns = netns if netns is not None else netns_mod.current_name()
        self.store = StateStore(state_dir or default_state_dir(self.netns))
        self.kernel = Orchestrator()
        self.tx = Transactions(self.store, self.kernel)
        self.checks = ChecksCache()  # the last drift/foreign checks, for status ticks
        self._planned: tuple[tuple[int, PanicState | None], DesiredState, SetIndex] | None = None

    @property
    def is_root(self) -> bool:
        return os.geteuid() == 0

    # -- read ----------------------------------------------------------------------
    def status(self, *, checks_max_age: float = 0.0) -> StatusReport:
        """Counters, state and checks.  `checks_max_age` > 0 (a repeated tick): drift
        and foreign objects checked for the same generation at most that many seconds
        ago are reused (the report's checks_age_s says how old); 0 checks now."""
        return collect_status(self.store, self.kernel, netns=self.netns, checks=self.checks,
                              checks_max_age=checks_max_age)

    def scrape(self) -> ScrapeView:
        """What the metrics exporter reports: one read of the kernel and the state dir."""
        from nodewall.engine.observe.scrape import collect_scrape
        return collect_scrape(self.store, self.kernel)

    def conntrack_sample(self, limit: int = 2000) -> ConntrackSample:
        return conntrack_sample(limit)

    def validate(self, paths: Sequence[Path],
                 texts: Mapping[str, str] | None = None) -> Profile:
        """Load and check profiles; `texts` gives unsaved content for some paths.  Said
        as `diff` and `apply` say it (missing interfaces are warnings)."""
        return validate_profiles(paths, texts)

    def diff(self, paths: Sequence[Path], *, backend: str | None = None) -> PlanPreview:
        return self.tx.preview(paths, backend=backend)

    def explain(self, src: str, dst: str, *, iface: str | None = None,
                direction: Direction = "ingress", out_iface: str | None = None,
                generation: int | None = None) -> Explanation:
        """The path a packet takes through the applied generation's rules (or
        generation N's), in evaluation order (forward: in on `iface`, out via
        `out_iface`)."""
        from nodewall.engine.explain.packet import parse_packet
        from nodewall.engine.explain.walk import explain
        from nodewall.engine.safety import history as history_mod
        n = generation if generation is not None else self.store.current()
        if n is None:
            raise NothingPending("nothing is applied here: there is no path to explain",
                                 hint="apply profiles first, or name a recorded "
                                      "generation with --generation N")
        history_mod.require_generation(self.store, n)
        desired, sets = self._generation_plan(n)
        if iface is None:
            if len(desired.interfaces) > 1:
                raise InputError(Loc("<packet>"), "which interface does the packet use? "
                                 f"host endpoints are on {', '.join(desired.interfaces)}",
                                 hint="pass --iface IF")
            iface = desired.interfaces[0] if desired.interfaces else "any"  # "*" endpoint
        if out_iface is not None and direction != "forward":
            raise InputError(Loc("<packet>"), "--out-iface is for a forwarded packet",
                             hint="add --direction forward")
        packet = parse_packet(src, dst, iface=iface, direction=direction, out_iface=out_iface)
        return explain(desired, packet, generation=n, sets=sets)

    def rendered_rule(self, rule_id: str) -> list[RenderedRule]:
        """The kernel rules `rule_id` renders to in the applied generation's plan
        ([] when nothing is applied or the id is not in it)."""
        n = self.store.current()
        return [] if n is None else rendered_rules(self._generation_plan(n)[0], rule_id)

    def rules_holding(self, address: str) -> frozenset[str]:
        """The ids of the applied generation's rules whose networks (CIDRs, network
        sets, nets_files) hold `address` (empty when nothing is applied)."""
        try:
            addr = ipaddress.ip_address(address.strip())
        except ValueError:
            raise InputError(Loc("<address>"), f"{address!r} is not an IP address") from None
        from nodewall.engine.explain.holding import rules_holding
        n = self.store.current()
        if n is None:
            return frozenset()
        desired, sets = self._generation_plan(n)
        return rules_holding(desired, addr, sets)

    def _generation_plan(self, n: int) -> tuple[DesiredState, SetIndex]:
        """Generation N's plan (as the kernel holds it, panic included) and its set
        index, kept while N and the panic state stay: the TUI asks for it on every
        address typed into the rules filter and every explained packet."""
        from nodewall.engine.explain.members import SetIndex
        key = (n, read_marker(self.store.root))
        if self._planned is None or self._planned[0] != key:
            desired = self.tx.generation_plan(n)
            self._planned = (key, desired, SetIndex(desired.ipsets))
        return self._planned[1], self._planned[2]

    def history(self) -> list[history_mod.HistoryEntry]:
        from nodewall.engine.safety import history as history_mod
        return history_mod.history(self.store)

    def history_lines(self, *, files: bool = True) -> list[str]:
        """`nodewall history` as text (`files`: digests and profiles, the wide table)."""
        from nodewall.engine.safety import history as history_mod
        return history_mod.history_lines(self.history(), files=files)

    def show_generation(self, n: int) -> history_mod.GenerationRecord:
        from nodewall.engine.safety import history as history_mod
        return history_mod.show(self.store, n)

    def diff_generations(self, before: int, after: int) -> history_mod.GenerationDiff:
        from nodewall.engine.safety import history as history_mod
        return history_mod.diff(self.store, before, after)

    def recover_if_idle(self) -> str | None:
        """Finish an interrupted transaction nobody else is running; what was done."""
        return self.tx.recover_if_idle()

    # -- write ---------------------------------------------------------------------
    def apply(self, paths: Sequence[Path], *, confirm_timeout: float | None = None,
              backend: str | None = None, check: bool = False, wait: bool = True,
              on_wait: OnWait = None, origin: str = "cli") -> ApplyResult:
        return self.tx.apply(paths, backend=backend, check=check,
                             confirm_timeout=confirm_timeout, wait=wait, on_wait=on_wait,
                             origin=origin)

    def acknowledge_revert(self) -> RevertNotice | None:
        """Clear the last automatic revert's notice; returns it (None if none)."""
        notice = self.store.revert_notice()
        self.store.clear_revert_notice()
        return notice

    def confirm(self) -> int:
        """Keep the pending apply; returns its generation."""
        return self.tx.confirm()

    def watch_confirm(self, generation: int) -> bool:
        """The detached watcher's loop: revert `generation` at its deadline unless it is
        confirmed first.  Returns True when it reverted."""
        return self.tx.watch_confirm(generation)

    def rollback(self, pending_generation: int | None = None, *, wait: bool = True,
                 on_wait: OnWait = None, to: int | None = None) -> int | None:
        """Roll back; with `pending_generation`, only that pending apply; with `to`,
        to that recorded generation.  Returns the generation now in place."""
        return self.tx.rollback(pending_generation=pending_generation, wait=wait,
                                on_wait=on_wait, to=to)

    def flush(self, *, wait: bool = True, on_wait: OnWait = None) -> list[str]:
        """Remove everything nodewall owns; returns warnings about the state dir."""
        return self.tx.flush(wait=wait, on_wait=on_wait)

    def set_panic(self, on: bool, *, wait: bool = True, on_wait: OnWait = None,
                  on_warning: OnWait = None) -> PanicState | None:
        """Panic on/off; on_warning(message) hears what the state dir could not record."""
        return self.tx.set_panic(on, wait=wait, on_wait=on_wait, on_warning=on_warning)

    def agent(self, profiles_dir: Path, on_pass: PassObserver | None = None,
              node: NodeIdentity | None = None, backoff_max: float | None = None) -> Agent:
        """The profile-directory agent (backoff_max None: the agent's default)."""
        from nodewall.engine.safety.agent import BACKOFF_MAX_S, Agent
        if backoff_max is None:
            backoff_max = BACKOFF_MAX_S
        return Agent(self.tx, profiles_dir, on_pass=on_pass, node=node,
                     backoff_max=backoff_max)
