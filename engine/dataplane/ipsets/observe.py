"""nodewall's ipsets in the current namespace, from headers only (`ipset list -t`:
no member is ever dumped, so observing a 1M-member set costs the same as a tiny
one), and the one place that runs the ipset binary."""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

from nodewall.engine.errors import EnvironmentProblem, KernelError
from nodewall.engine.plan.naming import owned_set_name

IPSET_TIMEOUT_S = 120


@dataclass(frozen=True)
class ObservedSet:
    name: str
    kind: str  # "hash:net", "list:set", ...
    family: int | None  # 4 / 6 for hash types, None for list:set
    entries: int
    maxelem: int | None  # hash types
    hashsize: int | None
    size: int | None  # list:set
    references: int  # iptables rules (and list:sets) using it


def ipset_binary() -> str:
    path = shutil.which("ipset")
    if path is None:
        raise EnvironmentProblem("the ipset command is not installed",
                                 hint="apt-get install ipset")
    return path


def run_ipset(*args: str, input_text: str | None = None, check: bool = True,
              what: str = "") -> subprocess.CompletedProcess:
    proc = subprocess.run([ipset_binary(), *args], input=input_text, text=True,
                          capture_output=True, timeout=IPSET_TIMEOUT_S, check=False,
                          env={**os.environ, "LC_ALL": "C"})
    if check and proc.returncode != 0:
        raise KernelError(f"ipset {what or ' '.join(args)}: {proc.stderr.strip()}",
                          hint="`ipset list -t` shows the sets of this namespace")
    return proc


def parse_terse(text: str) -> dict[str, ObservedSet]:
    """Parse `ipset list -t` (all sets)."""
    out: dict[str, ObservedSet] = {}
    cur: dict[str, str] = {}

    def flush() -> None:
        if "Name" not in cur:
            return
        header = cur.get("Header", "").split()
        opts = dict(zip(header[::2], header[1::2], strict=False))
        fam = opts.get("family")
        out[cur["Name"]] = ObservedSet(
            name=cur["Name"], kind=cur.get("Type", ""),
            family=4 if fam == "inet" else 6 if fam == "inet6" else None,
            entries=int(cur.get("Number of entries", "0")),
            maxelem=int(opts["maxelem"]) if "maxelem" in opts else None,
            hashsize=int(opts["hashsize"]) if "hashsize" in opts else None,
            size=int(opts["size"]) if "size" in opts else None,
            references=int(cur.get("References", "0")))

    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        if key == "Name":
            flush()
            cur = {}
        cur[key] = value.strip()
    flush()
    return out


def observe_all() -> dict[str, ObservedSet]:
    """Every set of the current namespace (headers only)."""
    return parse_terse(run_ipset("list", "-t", what="list -t").stdout)


def observe() -> dict[str, ObservedSet]:
    """nodewall's sets (names it makes, not merely starting "nw-"), headers only."""
    return {n: s for n, s in observe_all().items() if owned_set_name(n)}


def names() -> set[str]:
    """nodewall's set names only (`ipset list -n`: no member walk in the kernel)."""
    out = run_ipset("list", "-n", what="list -n").stdout
    return {n for n in out.split() if owned_set_name(n)}


def observe_one(name: str) -> ObservedSet | None:
    """One set's header, or None when it does not exist."""
    proc = run_ipset("list", "-t", name, check=False)
    return parse_terse(proc.stdout).get(name) if proc.returncode == 0 else None


def list_members(name: str) -> list[str]:
    """Members of one set: only for small sets (list:set, tests)."""
    text = run_ipset("list", name, what=f"list {name}").stdout
    _, _, members = text.partition("Members:\n")
    return [m.split()[0] for m in members.splitlines() if m.strip()]
