"""Transactions: every change to the kernel goes through here.

apply:   lock -> recover an interrupted transaction -> load + validate (exit 2 on bad
         input, kernel untouched) -> plan -> preview -> record generation N (files)
         -> journal -> kernel apply + verify -> meta + current=N -> clear journal
         -> optional commit-confirm (pending + detached watcher).
On any failure after the journal is written, the previous generation is re-applied in
full (or everything flushed when there was none), so the kernel holds the old or the
new generation, never a mix.  A `kill -9` mid-way leaves the journal behind; the next
command runs recover() first, which does the same restore.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from nodewall.engine.dataplane.orchestrator import Orchestrator
from nodewall.engine.dataplane.preview import PlanPreview, plan_entries
from nodewall.engine.dataplane.protocol import TxContext
from nodewall.engine.dataplane.shape import BlockDigests
from nodewall.engine.errors import KernelError, LockBusy, NodewallError, NothingToDo
from nodewall.engine.nets.baseline import BaselineStore
from nodewall.engine.plan.desired import DesiredState
from nodewall.engine.plan.order import evaluation_order
from nodewall.engine.plan.planner import plan
from nodewall.engine.profile.loader import load_profiles, read_profile_text
from nodewall.engine.profile.model import Profile
from nodewall.engine.safety import panic as panic_mod
from nodewall.engine.safety.confirm import CommitConfirm, watcher_cli_args
from nodewall.engine.safety.content import content_digest
from nodewall.engine.safety.emergency import (
    UNSET,
    EmergencyCommands,
    OnWait,
    StateUnwritable,
    best_effort,
)
from nodewall.engine.safety.profile_copy import recorded_text
from nodewall.engine.safety.results import ApplyResult, PendingConfirm
from nodewall.engine.safety.state_dir import (
    GenerationMeta,
    Journal,
    StateStore,
    generation_words,
)
from nodewall.engine.safety.validation import (
    auto_packet_filter,
    load_and_plan,
    risk_warnings,
    with_backend,
)
from nodewall.engine.system import procfs
from nodewall.engine.system.files import atomic_write_text

ORPHAN_WAIT_S = 30.0  # how long recovery waits for a dead apply's `ipset restore`


def _ipset_children_here() -> list[int]:
    """`ipset` processes in this network namespace (a killed apply's restore stream
    keeps running until it has read what was already written to it)."""
    mine = procfs.namespace_id("self", "net")
    if mine is None:
        return []
    return [pid for pid in procfs.pids()
            if pid != os.getpid() and procfs.command_name(pid) == "ipset"
            and procfs.namespace_id(pid, "net") == mine]


def wait_for_orphans(timeout: float = ORPHAN_WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while _ipset_children_here() and time.monotonic() < deadline:
        time.sleep(0.05)


def _rule_meta_json(desired: DesiredState) -> dict[str, dict]:
    out = {}
    order = evaluation_order(desired)
    for rid, meta in desired.rules.items():
        d = dataclasses.asdict(meta)
        d["loc"] = str(meta.loc) if meta.loc else None
        d["eval_order"] = order.get(rid, -1)  # -1: not in any chain (renders nowhere)
        out[rid] = d
    return out


class Transactions(EmergencyCommands):
    """apply, preview, recover and confirm (rollback, flush and panic: EmergencyCommands)."""

    def __init__(self, store: StateStore, kernel: Orchestrator | None = None):
        self.store = store
        self.kernel = kernel or Orchestrator()
        self.gate = CommitConfirm(store, self._guarded_restore, watcher_cli_args(store))
        self._panic_forced: panic_mod.PanicState | None = UNSET  # set_panic's, in memory
        self._panic_written: panic_mod.PanicState | None = None  # by the last kernel write

    # -- helpers -------------------------------------------------------------
    def baselines(self, generation: int | None) -> BaselineStore | None:
        return None if generation is None else BaselineStore(self.store.nets_dir(generation))

    def _record_files(self, n: int, profile: Profile) -> None:
        """Copy the profiles (nets_file rewritten to the generation's own copies) and
        the nets_files into generations/N, so N can be re-applied on its own later.
        Copies are 0600 in 0700 directories (a profile may hold secrets); on failure
        nothing of N is left (a generation always has its meta.json)."""
        gdir = self.store.generation_dir(n)
        shutil.rmtree(gdir, ignore_errors=True)
        try:
            self._copy_files(gdir, n, profile)
        except BaseException:
            shutil.rmtree(gdir, ignore_errors=True)
            raise

    def _copy_files(self, gdir: Path, n: int, profile: Profile) -> None:
        gdir.mkdir(mode=0o700, parents=True)
        (gdir / "profiles").mkdir(mode=0o700)
        nets = BaselineStore(self.store.nets_dir(n))
        copies: dict[str, Path] = {}
        for ns in profile.network_sets:
            if ns.nets_file is not None:
                nf = ns.nets_file
                copies[os.path.realpath(nf.path)] = nets.put(
                    nf.path, (nf.count_v4, nf.count_v6)).copy_path
        for i, src in enumerate(profile.files):
            text = read_profile_text(Path(src))
            atomic_write_text(gdir / "profiles" / f"{i:02d}-{Path(src).name}",
                              recorded_text(text, Path(src), copies), mode=0o600)

    def generation_plan(self, n: int) -> DesiredState:
        """What the kernel holds for generation N: its profile copies planned again
        (interfaces gone by now do not matter: nothing is written), with panic mode's
        chains over it when panic is on."""
        meta = self.store.meta(n)
        backend = meta.backend if meta.backend != "profile" else None
        profile = with_backend(load_profiles(self.store.profile_copies(n)), backend)
        return self._with_panic(plan(profile, auto_packet_filter=auto_packet_filter()), profile)

    def _generation_profile(self, n: int) -> tuple[Profile, DesiredState]:
        paths = self.store.profile_copies(n)
        meta = self.store.meta(n)
        return load_and_plan(paths, backend=meta.backend if meta.backend != "profile" else None)

    def _panic(self) -> panic_mod.PanicState | None:
        if self._panic_forced is not UNSET:  # set_panic: even when it cannot be recorded
            return self._panic_forced
        return panic_mod.read_marker(self.store.root)

    def _panic_state(self, profile: Profile | None) -> panic_mod.PanicState | None:
        """The panic state in force for `profile` (its failsafe entries), or None."""
        state = self._panic()
        if state is None:
            return None
        settings = profile.settings if profile is not None else None
        return panic_mod.state_from_settings(settings, since=state.since)

    def _with_panic(self, desired: DesiredState, profile: Profile | None) -> DesiredState:
        """`desired` plus the panic chains while panic is on."""
        state = self._panic_state(profile)
        return desired if state is None else panic_mod.overlay(desired, state)

    def _kernel_write(self, desired: DesiredState, profile: Profile | None,
                      ctx: TxContext) -> None:
        """Apply `desired` (already overlaid by _with_panic); while panic is on, the
        marker records the failsafe entries now in force."""
        state = self._panic_state(profile)
        self._panic_written = state
        if state is not None:  # a record of the entries in force; the kernel matters more
            best_effort(lambda: panic_mod.write_marker(self.store.root, state), [],
                        "record the failsafe entries")
        self.kernel.apply(desired, ctx)

    def _recorded(self, generation: int | None) -> BlockDigests:
        """The rule blocks' content digests recorded with `generation` ({}: none, or
        its record is unreadable: then plans compare rule ids only)."""
        if generation is None:
            return {}
        try:
            return self.store.meta(generation).expected.digests
        except (OSError, NodewallError):
            return {}

    def _record_digests(self, n: int, packet_filter: str) -> None:
        """Record in N's meta the content digests of its rule blocks as the kernel
        holds them right after nodewall wrote them (drift by content).  Best effort:
        a state dir that cannot take them leaves N checked by rule ids only."""
        def record() -> None:
            meta = self.store.meta(n)
            found = self.kernel.block_digests(packet_filter)
            self.store.write_meta(dataclasses.replace(
                meta, expected=meta.expected.with_digests(found)))
        best_effort(record, [], "record the rule digests")

    def _restore(self, previous: int | None, *, record: bool = True) -> None:
        """Put the kernel back at generation `previous` (full reload), or flush
        (panic chains alone when panic is on); `record`: and say so in `current`
        (not when it says so already).  Blocks edited in place are rewritten (by
        the digests `previous` recorded; it records them now if it has none)."""
        if previous is None:
            if self._panic() is None:
                self.kernel.flush()
            else:
                self._kernel_write(self._with_panic(panic_mod.EMPTY, None), None,
                                   self.kernel.context())
        else:
            profile, desired = self._generation_profile(previous)
            recorded = self._recorded(previous)
            self._kernel_write(self._with_panic(desired, profile), profile,
                               self.kernel.context(recorded=recorded))
            if not recorded:
                self._record_digests(previous, desired.packet_filter)
        if record:
            self.store.set_current(previous)

    # -- recovery ------------------------------------------------------------
    def recover(self) -> str | None:
        """Finish an interrupted transaction (must hold the lock): an apply that got
        as far as recording its generation as current is completed (re-applied),
        any other is rolled back; a rollback, confirm timeout or panic switch is
        completed; a flush is completed.  Also reverts an expired commit-confirm
        whose watcher is gone (killed, or the machine rebooted)."""
        message = None
        journal = self.store.journal()
        if journal is not None:
            wait_for_orphans()
            try:
                message = self._finish(journal)
            except NodewallError as exc:
                raise KernelError(
                    f"an interrupted {journal.action} (pid {journal.pid}) could not be "
                    f"finished: {exc.message}",
                    hint="fix the cause and run the command again, or `nodewall flush` "
                         "(removes everything nodewall owns and clears the journal)") from exc
        orphan = self.gate.expire_orphan()
        if orphan:
            message = (message + "; " if message else "") + orphan
        return message

    def _finish(self, journal: Journal) -> str:
        current = self.store.current()
        if journal.action == "flush":
            outcome = "flushed"
            try:
                self.kernel.flush()
            except NodewallError as exc:  # must not block every later command
                outcome = f"flushed, except: {exc.render()}"
            self.store.set_current(None)
        elif journal.action == "panic":
            self._restore(current)
            outcome = f"panic {'on' if self._panic() else 'off'} at {generation_words(current)}"
        elif journal.action == "apply" and current == journal.target and \
                journal.target in self.store.generations():
            self._restore(journal.target)
            outcome = f"completed: generation {journal.target}"
        else:
            self._restore(journal.previous)
            if journal.action == "apply":  # never took effect
                shutil.rmtree(self.store.generation_dir(journal.target),
                              ignore_errors=True)
            outcome = f"back at {generation_words(journal.previous)}"
        self.store.clear_journal()
        return f"recovered an interrupted {journal.action} (pid {journal.pid}): {outcome}"

    def recover_if_idle(self) -> str | None:
        """recover(), when no other transaction runs (status and the agent call it;
        they never wait for the lock)."""
        if self.store.journal() is None and self.store.pending() is None:
            return None
        try:
            with self.store.lock(wait=False):
                return self.recover()
        except LockBusy:
            return None

    # -- preview -------------------------------------------------------------
    def preview(self, paths: Sequence[Path], *, backend: str | None = None) -> PlanPreview:
        current = self.store.current()
        profile, desired = load_and_plan(paths, backend=backend,
                                         baselines=self.baselines(current))
        return self._structured(self.kernel.preview(
            self._with_panic(desired, profile),
            self.kernel.context(self.baselines(current), self._recorded(current))),
            desired, current)

    def _structured(self, preview: PlanPreview, desired: DesiredState,
                    current: int | None) -> PlanPreview:
        """The preview with structured entries (a removed rule's policy from the
        generation in place)."""
        policies = {rid: (str(m.get("policy", "")), str(m.get("summary", "")))
                    for rid, m in self._recorded_rules(current).items()}
        policies.update({rid: (m.policy, m.summary) for rid, m in desired.rules.items()})
        return dataclasses.replace(preview, entries=plan_entries(preview.lines, policies))

    def _recorded_rules(self, n: int | None) -> dict[str, dict]:
        if n is None:
            return {}
        try:
            return self.store.meta(n).rules
        except NodewallError:
            return {}

    # -- apply ---------------------------------------------------------------
    def apply(self, paths: Sequence[Path], *, backend: str | None = None, check: bool = False,
              confirm_timeout: float | None = None, wait: bool = True,
              on_wait: OnWait = None, origin: str = "cli") -> ApplyResult:
        """origin: who applies (cli, tui, agent, ansible, …).  Everything but the agent
        is an operator's explicit apply, which may bring back quarantined content."""
        self.kernel.warm_up()
        t0 = time.monotonic()
        with self.store.lock(wait=wait, on_wait=on_wait):
            self.recover()
            superseded = None if check else self.gate.check_apply(confirm_timeout)
            previous = self.store.current()
            ctx = self.kernel.context(self.baselines(previous), self._recorded(previous))
            profile, desired = load_and_plan(paths, backend=backend, baselines=ctx.baselines)
            content = content_digest(profile, ctx.digests)
            if not check:
                try:
                    self.gate.check_quarantine(content, explicit=origin != "agent")
                except OSError as exc:
                    raise StateUnwritable(self.store, "lift the quarantine", exc,
                                          "the kernel was not changed") from exc
            written = self._with_panic(desired, profile)
            profile = dataclasses.replace(profile, warnings=profile.warnings + risk_warnings(
                profile, previous, self._panic() is not None))
            self.kernel.prepare(written, ctx)
            preview = self._structured(self.kernel.preview(written, ctx), desired, previous)
            if check:
                if preview.empty:
                    raise NothingToDo("the kernel already matches these profiles")
                return ApplyResult(previous or 0, True, preview, time.monotonic() - t0,
                                   check=True)
            if preview.empty and previous is not None and confirm_timeout is None:
                return ApplyResult(previous, False, preview, time.monotonic() - t0,
                                   warnings=profile.warnings)
            def meta_of(n: int) -> GenerationMeta:
                return GenerationMeta(
                    generation=n, created=time.time(), sources=[str(p) for p in paths],
                    backend=backend or "profile", rules=_rule_meta_json(desired),
                    content=content, origin=origin,
                    expected=Orchestrator.expected_shape(
                        desired, {h.interface: h.name for h in profile.host_endpoints}))

            n = self._commit(profile, written, ctx, previous, meta_of)
            if superseded is not None:
                best_effort(lambda: self._set_outcome(superseded.generation,
                                                      f"superseded by {n}"),
                            [], "record the superseded generation")
            pending = None
            if confirm_timeout is not None:
                last_kept = superseded.previous if superseded else previous
                pending = self._arm(n, previous, last_kept, confirm_timeout)
            best_effort(self.store.prune, [], "prune old generations")
        return ApplyResult(n, True, preview, time.monotonic() - t0, pending_confirm=pending,
                           warnings=profile.warnings,
                           superseded=superseded.generation if superseded else None)

    def _commit(self, profile: Profile, written: DesiredState, ctx: TxContext,
                previous: int | None, meta_of: Callable[[int], GenerationMeta]) -> int:
        """Journal, record generation N (files and meta) — all before the kernel is
        touched — then write the kernel, verify it, add the digests of its rule blocks to
        the record (best effort) and make N current.  A state dir
        that cannot take the record stops the apply with the kernel untouched; on any
        later failure the previous generation is restored and N forgotten.  Returns N."""
        n = self.store.next_generation()
        try:
            self.store.write_journal(Journal(target=n, previous=previous, pid=os.getpid(),
                                             started=time.time(), action="apply"))
            self._record_files(n, profile)
            self.store.write_meta(meta_of(n))
        except OSError as exc:
            self._forget(n)
            raise StateUnwritable(self.store, f"record generation {n}", exc,
                                  "the kernel was not changed") from exc
        try:
            self._kernel_write(written, profile, ctx)
            self.kernel.verify(written)
        except BaseException as exc:
            self._restore(previous, record=False)
            self._forget(n)
            if isinstance(exc, NodewallError):
                raise
            raise KernelError(f"apply failed and was rolled back: {exc}",
                              hint="the previous generation is in place") from exc
        self._record_digests(n, written.packet_filter)
        try:
            self.store.set_current(n)  # until here `current` says previous
        except OSError as exc:
            self._restore(previous, record=False)
            self._forget(n)
            back = "nothing applied" if previous is None else f"generation {previous}"
            raise StateUnwritable(self.store, f"record generation {n} as current", exc,
                                  f"the kernel is back at {back}") from exc
        best_effort(self.store.clear_journal, [], "clear the journal")
        return n

    def _forget(self, n: int) -> None:
        """Generation N never took effect: its files and the journal go (both only
        free space, so this works on a full state dir)."""
        shutil.rmtree(self.store.generation_dir(n), ignore_errors=True)
        best_effort(self.store.clear_journal, [], "clear the journal")

    def _arm(self, n: int, previous: int | None, last_kept: int | None,
             timeout: float) -> PendingConfirm:
        """Arm the confirm watcher for N; when the state dir cannot record it, N must
        not stay unguarded: the kernel goes back to `previous` (a change N superseded
        keeps its own watcher) and N is forgotten."""
        try:
            return self.gate.arm(n, last_kept, timeout)
        except OSError as exc:
            self._restore(previous, record=False)
            self._forget(n)
            best_effort(lambda: self.store.set_current(previous), [], "record it")
            back = "nothing applied" if previous is None else f"generation {previous}"
            raise StateUnwritable(self.store, "arm the confirm watcher", exc,
                                  f"not applied, the kernel is back at {back}") from exc

    # -- commit-confirm (engine.safety.confirm has the rules) ------------------
    def confirm(self) -> int:
        with self.store.lock():
            self.recover()
            n = self.gate.confirm()
            best_effort(lambda: self._set_outcome(n, "kept"), [], "record it as kept")
            return n

    def _set_outcome(self, n: int | None, outcome: str) -> None:
        """Write generation N's outcome into its record (history shows it)."""
        if n is None or n not in self.store.generations():
            return
        self.store.write_meta(dataclasses.replace(self.store.meta(n), outcome=outcome))

    def watch_confirm(self, generation: int, poll: float = 0.2) -> bool:
        """The detached watcher: revert at the deadline unless confirmed.  Returns
        True when it reverted."""
        if not self.gate.watch(generation, poll):
            return False
        with self.store.lock():
            pending = self.store.pending()
            if pending is None or pending.generation != generation:
                return False
            self.gate.revert(pending, "confirm-timeout")
        return True
