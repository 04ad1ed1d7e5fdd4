"""engine.system.filters: legacy xtables present, loadable, or absent."""
from __future__ import annotations

from pathlib import Path

from nodewall.engine.system.filters import legacy_xtables


def _tree(tmp_path: Path, proc: list[str], index: dict[str, str]) -> tuple[Path, Path]:
    proc_net, modules = tmp_path / "proc_net", tmp_path / "modules"
    (modules / "6.1.0").mkdir(parents=True)
    proc_net.mkdir()
    for name in proc:
        (proc_net / name).write_text("")
    for name, text in index.items():
        (modules / "6.1.0" / name).write_text(text)
    return proc_net, modules


def test_loaded_tables(tmp_path: Path) -> None:
    proc_net, modules = _tree(tmp_path, ["ip_tables_names"], {})
    assert legacy_xtables(proc_net, modules, "6.1.0")


def test_module_installed_not_loaded(tmp_path: Path) -> None:
    dep = ("kernel/net/netfilter/x_tables.ko.xz:\n"
           "kernel/net/ipv4/netfilter/ip_tables.ko.xz: kernel/net/netfilter/x_tables.ko.xz\n")
    proc_net, modules = _tree(tmp_path, [], {"modules.dep": dep})
    assert legacy_xtables(proc_net, modules, "6.1.0")


def test_builtin(tmp_path: Path) -> None:
    proc_net, modules = _tree(tmp_path, [], {"modules.builtin": "kernel/net/ipv6/netfilter/ip6_tables.ko\n"})
    assert legacy_xtables(proc_net, modules, "6.1.0")


def test_kernel_without_legacy_xtables(tmp_path: Path) -> None:
    dep = ("kernel/net/netfilter/nf_tables.ko.zst:\n"
           "kernel/net/ipv4/netfilter/iptable_nat.ko.zst: kernel/net/netfilter/x_tables.ko\n"
           "kernel/net/bridge/netfilter/ebt_ip_tables_x.ko:\n")
    proc_net, modules = _tree(tmp_path, [], {"modules.dep": dep})
    assert not legacy_xtables(proc_net, modules, "6.1.0")
    assert not legacy_xtables(proc_net, tmp_path / "nowhere", "6.1.0")
