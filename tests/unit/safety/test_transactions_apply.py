"""Transactions.apply / preview / flush / set_panic over the fake dataplane: a new
generation, nothing to change, --check, a failed apply put back, bad input never
reaching the kernel, the panic overlay, flush."""
from __future__ import annotations

import pytest
from nodewall.engine.errors import (
    ExitCode,
    InputErrors,
    KernelError,
    NodewallError,
    NothingToDo,
)
from nodewall.engine.safety import panic, validation

from tests.helpers.fake_dataplane import chain_names, fingerprint

from .conftest import Rig

PANIC_CHAINS = {panic.PANIC_IN, panic.PANIC_OUT}


def test_apply_records_a_new_generation_and_writes_the_kernel(rig: Rig) -> None:
    a = rig.profile("a", 80)
    res = rig.tx.apply([a])
    assert (res.generation, res.changed, res.pending_confirm) == (1, True, None)
    assert any("nw-" in line for line in res.preview.lines) and res.preview.rules_added
    assert rig.fake.holds == rig.planned(a) and rig.fake.applies == 1
    store = rig.store
    assert store.current() == 1 and store.generations() == [1] and store.journal() is None
    meta = store.meta(1)
    assert meta.sources == [str(a)] and meta.backend == "profile" and meta.rules
    assert [p.name for p in store.profile_copies(1)] == ["00-a.toml"]
    # the kernel is written after prepare and plan, verified after every retire
    calls = [c for c in rig.fake.calls if c != "observe"]
    assert calls == ["warm_up", "prepare", "plan", "apply", "retire", "verify"]


def test_the_same_profiles_again_change_nothing(rig: Rig) -> None:
    a = rig.profile("a", 80)
    rig.tx.apply([a])
    res = rig.tx.apply([a])
    assert (res.generation, res.changed) == (1, False) and res.preview.empty
    assert rig.fake.applies == 1 and rig.store.generations() == [1]
    b = rig.profile("b", 443)
    res = rig.tx.apply([b])
    assert (res.generation, res.changed) == (2, True)
    assert rig.fake.holds == rig.planned(b) and rig.store.current() == 2


def test_check_previews_without_writing(rig: Rig) -> None:
    a = rig.profile("a", 80)
    res = rig.tx.apply([a], check=True)
    # changed: the apply WOULD change the kernel (the JSON contract of `apply --check`)
    assert (res.generation, res.changed, res.check) == (0, True, True)
    assert not res.preview.empty and res.to_json()["changed"] is True
    assert rig.fake.applies == 0 and rig.fake.kernel is None
    assert rig.store.current() is None and rig.store.generations() == []


def test_check_when_the_kernel_matches_is_nothing_to_do_exit_3(rig: Rig) -> None:
    a = rig.profile("a", 80)
    rig.tx.apply([a])
    with pytest.raises(NothingToDo) as info:
        rig.tx.apply([a], check=True)
    assert info.value.exit_code == ExitCode.NOTHING_TO_DO == 3
    assert rig.fake.applies == 1


def test_preview_reads_and_never_writes(rig: Rig) -> None:
    a = rig.profile("a", 80)
    assert not rig.tx.preview([a]).empty
    rig.tx.apply([a])
    assert rig.tx.preview([a]).empty
    assert rig.tx.preview([rig.profile("b", 443)]).lines
    assert rig.fake.applies == 1


def test_failed_verify_restores_the_previous_generation_and_forgets_the_new(rig: Rig) -> None:
    a, b = rig.profile("a", 80), rig.profile("b", 443)
    rig.tx.apply([a])
    rig.fake.fail("verify")
    with pytest.raises(KernelError) as info:
        rig.tx.apply([b])
    assert "verification failed: fake verify failed" in info.value.message
    assert rig.fake.holds == rig.planned(a) and rig.fake.applies == 3  # a, b, a again
    store = rig.store
    assert store.current() == 1 and store.generations() == [1] and store.journal() is None
    assert not store.generation_dir(2).exists()
    assert rig.tx.apply([b]).generation == 2  # the number is free again


def test_an_unexpected_error_is_rolled_back_and_reported_as_a_kernel_error(rig: Rig) -> None:
    a, b = rig.profile("a", 80), rig.profile("b", 443)
    rig.tx.apply([a])
    rig.fake.fail("apply", RuntimeError("boom"))
    with pytest.raises(KernelError) as info:
        rig.tx.apply([b])
    assert info.value.message == "apply failed and was rolled back: boom"
    assert info.value.hint == "the previous generation is in place"
    assert isinstance(info.value.__cause__, RuntimeError)
    assert rig.fake.holds == rig.planned(a) and rig.store.current() == 1


def test_a_failed_first_apply_leaves_nothing(rig: Rig) -> None:
    rig.fake.fail("apply")
    with pytest.raises(KernelError, match="fake apply failed"):
        rig.tx.apply([rig.profile("a", 80)])
    assert rig.fake.flushes == 1 and rig.fake.kernel is None
    assert rig.store.current() is None and rig.store.generations() == []
    assert not rig.store.generation_dir(1).exists() and rig.store.journal() is None


def test_bad_input_never_reaches_the_kernel(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = rig.work / "bad.toml"
    bad.write_text("[settings\n")
    with pytest.raises(InputErrors) as info:
        rig.tx.apply([bad])
    assert info.value.exit_code == ExitCode.BAD_INPUT
    assert "apply" not in rig.fake.calls and rig.store.generations() == []


def test_a_missing_interface_is_a_warning_except_for_xdp(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """Like Calico, a host endpoint may name an interface that does not exist yet (its
    rules wait for it); validate, diff and apply say the same warning.  XDP must
    attach, so there it stays bad input."""
    monkeypatch.setattr(validation, "interface_exists", lambda name: name != "eth9")
    a = rig.profile("a", 80)
    warning = "interface 'eth9' does not exist in this network namespace (yet)"
    assert any(warning in w for w in validation.validate_profiles([a]).warnings)
    assert any(warning in w for w in rig.tx.preview([a]).warnings)
    res = rig.tx.apply([a])
    assert res.generation == 1 and any(warning in w for w in res.warnings)
    xdp = rig.work / "x.toml"
    xdp.write_text(a.read_text().replace('backend = "iptables"', 'backend = "xdp"')
                   .replace('name = "web"', 'name = "web"\ndo_not_track = true\n'
                            'apply_on_forward = true'))
    for attempt in (lambda: validation.validate_profiles([xdp]), lambda: rig.tx.apply([xdp])):
        with pytest.raises(InputErrors) as info:
            attempt()
        assert "unknown interface 'eth9'" in info.value.render()
        assert "XDP cannot attach" in info.value.render()
    assert rig.store.generations() == [1]


def test_star_interface_needs_no_check(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validation, "interface_exists", lambda name: False)
    assert rig.tx.apply([rig.profile("a", 80, interface="*")]).generation == 1


def test_backend_override_is_recorded_and_used_when_the_generation_is_reloaded(
        rig: Rig) -> None:
    a, b = rig.profile("a", 80), rig.profile("b", 443)
    rig.tx.apply([a], backend="xdp")
    assert rig.store.meta(1).backend == "xdp"
    assert rig.fake.holds == rig.planned(a, backend="xdp")
    rig.tx.apply([b])
    assert rig.tx.rollback() == 1
    assert rig.fake.holds == rig.planned(a, backend="xdp")


def test_a_generation_keeps_its_own_nets_file_copy(rig: Rig) -> None:
    nets = rig.work / "bad.txt"
    nets.write_text("192.0.2.0/24\n198.51.100.7\n")
    a = rig.profile("a", 80, nets_file="bad.txt")
    rig.tx.apply([a])
    planned_a = rig.planned(a)
    copy = rig.store.profile_copies(1)[0].read_text()
    assert str(nets) not in copy and str(rig.store.nets_dir(1)) in copy
    rig.tx.apply([rig.profile("b", 443)])
    nets.write_text("203.0.113.0/24\n")  # edited after it was applied
    assert rig.tx.rollback() == 1
    assert rig.fake.holds == planned_a  # re-applied from generation 1's copy


# -- panic ---------------------------------------------------------------------------

def test_panic_on_overlays_the_current_generation_and_off_restores_it(rig: Rig) -> None:
    a, b = rig.profile("a", 80), rig.profile("b", 443)
    rig.tx.apply([a])
    state = rig.tx.set_panic(True)
    assert state is not None and state.inbound == (("tcp", 22, None),)  # the profile's
    assert chain_names(rig.fake.kernel) >= chain_names(rig.fake.seen[0]) | PANIC_CHAINS
    assert rig.store.current() == 1 and rig.store.journal() is None
    # an apply while panic is on keeps the panic chains
    assert rig.tx.apply([b]).generation == 2
    assert PANIC_CHAINS <= chain_names(rig.fake.seen[-1])
    assert panic.read_marker(rig.root) is not None
    assert rig.tx.set_panic(False) is None
    assert rig.fake.holds == rig.planned(b) and panic.read_marker(rig.root) is None


def test_panic_with_nothing_applied_holds_the_panic_chains_alone(rig: Rig) -> None:
    first = rig.tx.set_panic(True)
    assert first is not None and first.inbound  # Felix's default failsafes
    # the panic chains and the two top chains that jump to them, nothing else
    assert chain_names(rig.fake.kernel) == PANIC_CHAINS | {"nw-PREROUTING", "nw-OUTPUT"}
    assert rig.store.current() is None
    again = rig.tx.set_panic(True)
    assert again is not None and again.since == first.since
    assert rig.tx.set_panic(False) is None
    assert rig.fake.kernel is None and rig.fake.flushes == 1


def test_panic_overlay_is_what_the_dataplane_is_given(rig: Rig) -> None:
    rig.tx.set_panic(True)
    a = rig.profile("a", 80)
    rig.tx.apply([a])
    given = rig.fake.seen[-1]
    assert fingerprint(given) != rig.planned(a)
    assert PANIC_CHAINS <= chain_names(given)
    assert panic.read_marker(rig.root).inbound == (("tcp", 22, None),)  # type: ignore[union-attr]


# -- flush ---------------------------------------------------------------------------

def test_flush_removes_everything_and_keeps_the_generations(rig: Rig) -> None:
    rig.tx.apply([rig.profile("a", 80)])
    rig.tx.apply([rig.profile("b", 443)], confirm_timeout=30)
    rig.tx.set_panic(True)
    rig.tx.flush()
    assert rig.fake.kernel is None and rig.fake.flushes == 1
    store = rig.store
    assert store.current() is None and store.pending() is None and store.journal() is None
    assert panic.read_marker(rig.root) is None and store.generations() == [1, 2]


def test_a_flush_that_fails_still_forgets_the_generation(rig: Rig) -> None:
    rig.tx.apply([rig.profile("a", 80)])
    rig.fake.fail("flush")
    with pytest.raises(NodewallError, match="fake flush failed"):
        rig.tx.flush()
    assert rig.store.current() is None and rig.store.journal() is None
