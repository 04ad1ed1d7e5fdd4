"""Which iptables does this host use?  nodewall writes legacy xtables only
(python-iptables drives libiptc); on an nf_tables host both rule sets are evaluated
by the kernel, so the operator must know which tables nodewall writes and that
rules in the other backend still apply.

Read-only: `iptables -V`, the legacy /proc table list and `*-save` listings; nothing
is created (listing through iptables-nft-save does not create nft tables).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Literal

from nodewall.engine.dataplane.iptables.libiptc import FAMILIES, loaded_tables

Mode = Literal["legacy", "nft", "mixed", "none"]
WRITES = "legacy xtables: raw, mangle and filter tables, IPv4 and IPv6"


@dataclass(frozen=True)
class IptablesMode:
    kind: Mode  # where rules live: legacy / nft / both (mixed) / none yet
    default: Literal["legacy", "nft", "unknown"]  # what `iptables` on PATH drives
    legacy_rules: int  # rules not nodewall's in legacy tables (v4 + v6)
    nft_rules: int  # rules in iptables-nft tables (v4 + v6)
    nodewall_rules: int  # nodewall's own rules (legacy)
    writes: str = WRITES

    def message(self) -> str:
        head = (f"iptables mode: {self.kind} (`iptables` is {self.default}); "
                f"nodewall writes {self.writes}")
        if self.default == "nft" or self.nft_rules:
            head += (". Rules of other tools in nf_tables still apply to every packet "
                     "(a drop there wins); list them with `iptables-nft-save`, nodewall's "
                     "with `iptables-legacy-save`")
        return head


def _run(*args: str) -> str | None:
    if shutil.which(args[0]) is None:
        return None
    try:
        out = subprocess.run(list(args), check=False, capture_output=True, text=True,
                             timeout=10,
                             env={**os.environ, "LC_ALL": "C"})
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def default_backend() -> Literal["legacy", "nft", "unknown"]:
    """What the `iptables` command runs: `iptables -V` says "(legacy)" or
    "(nf_tables)"; the alternatives symlink is the fallback."""
    out = _run("iptables", "-V") or ""
    if "nf_tables" in out:
        return "nft"
    if "legacy" in out:
        return "legacy"
    path = shutil.which("iptables")
    target = os.path.realpath(path) if path else ""
    if "nft" in target:
        return "nft"
    if "legacy" in target:
        return "legacy"
    return "unknown"


_NW_COMMENT = re.compile(r'--comment "?nw:')


def count_rules(save_text: str) -> tuple[int, int]:
    """(foreign rules, nodewall rules) in iptables-save output."""
    foreign = ours = 0
    for line in save_text.splitlines():
        if not line.startswith("-A "):
            continue
        if _NW_COMMENT.search(line):  # nodewall's marker on every rule it writes
            ours += 1
        else:
            foreign += 1
    return foreign, ours


def detect() -> IptablesMode:
    """Look at the current namespace: which backend holds other tools' rules (nodewall's
    own legacy rules are counted apart and do not make a host "mixed"), and where
    `iptables` points."""
    legacy = ours = nft = 0
    for family in FAMILIES:
        prefix = "iptables" if family == 4 else "ip6tables"
        if loaded_tables(family):  # legacy-save would load the modules otherwise
            f, o = count_rules(_run(f"{prefix}-legacy-save") or "")
            legacy, ours = legacy + f, ours + o
        nft += count_rules(_run(f"{prefix}-nft-save") or "")[0]
    kind: Mode
    if legacy and nft:
        kind = "mixed"
    elif nft:
        kind = "nft"
    elif legacy:
        kind = "legacy"
    else:
        kind = "none"
    return IptablesMode(kind, default_backend(), legacy, nft, ours)


def iptables_mode() -> str:
    """"legacy" / "nft" / "mixed" / "none" for StatusReport.iptables_mode."""
    return detect().kind
