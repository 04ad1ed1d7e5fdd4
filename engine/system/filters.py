"""Which packet filters this kernel offers, read without changing the host.

Legacy xtables (what nodewall's iptables dataplane writes, through libiptc) is there
when /proc/net/ip_tables_names exists (ip_tables is built in or loaded) or when the
ip_tables module is installed for the running kernel (modules.dep / modules.builtin
list it: the first use loads it).  Nothing is loaded or created to find out: opening
an xtables socket or running `iptables-legacy` would load the module.
"""
from __future__ import annotations

import os
from pathlib import Path

PROC_NET = Path("/proc/net")
MODULES = Path("/lib/modules")
LEGACY_MODULES = ("ip_tables", "ip6_tables")


def _module_listed(release_dir: Path, module: str) -> bool:
    for index in ("modules.builtin", "modules.dep"):
        try:
            text = (release_dir / index).read_text()
        except OSError:
            continue
        if any(Path(line.split(":", 1)[0]).name.split(".ko", 1)[0] == module
               for line in text.splitlines()):
            return True
    return False


def legacy_xtables(proc_net: Path = PROC_NET, modules: Path = MODULES,
                   release: str | None = None) -> bool:
    """Whether the kernel has (or can load) legacy ip_tables / ip6_tables."""
    if (proc_net / "ip_tables_names").exists() or (proc_net / "ip6_tables_names").exists():
        return True
    release_dir = modules / (release or os.uname().release)
    return any(_module_listed(release_dir, m) for m in LEGACY_MODULES)


def nftables_bindings() -> bool:
    """Whether libnftables' Python binding (Debian python3-nftables) can be imported."""
    try:
        import nftables  # noqa: F401
    except ImportError:
        return False
    return True
