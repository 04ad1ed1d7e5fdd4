"""nodewall's `table inet nodewall` as the kernel holds it, read through libnftables,
and the one place that runs nft commands.

The read is `nft -t -j list ruleset`, filtered to the table: terse `list ruleset` never
fetches set elements, while `list table` / `list set` / `list chain` fetch every
element of every set of the table into nft's cache even when terse (45 s and 1 GB
with a 1M-CIDR set).  The same listing gives the other tables' base chains.  Without python3-nftables the dataplane is
unavailable: observing reports nothing owned, writing raises."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from nodewall.engine.dataplane.nftables.render import FAMILY, TABLE
from nodewall.engine.dataplane.shape import content_digest
from nodewall.engine.errors import EnvironmentProblem, KernelError
from nodewall.engine.plan.desired import COMMENT_PREFIX


@dataclass(frozen=True)
class NftRule:
    rule_id: str | None  # from the comment "nw:<id>"
    packets: int
    bytes: int
    jump: str | None = None  # jump / goto target
    nfproto: str | None = None  # "ipv4" / "ipv6" when the rule matches it
    digest: str = ""  # of its expressions as the kernel returns them, counters blanked
    plain: bool = False  # a jump on the family alone (what a hook jump of nodewall's is)


@dataclass(frozen=True)
class NftChain:
    name: str
    rules: tuple[NftRule, ...]
    hook: str | None = None  # base chains only
    prio: int | None = None


@dataclass(frozen=True)
class NftObserved:
    available: bool  # libnftables could be loaded
    present: bool = False  # the table exists
    chains: tuple[NftChain, ...] = ()
    sets: tuple[str, ...] = ()
    others: tuple[dict[str, Any], ...] = field(default=(), compare=False)  # other base chains
    other_tables: tuple[str, ...] = field(default=(), compare=False)  # "family name"

    def chain(self, name: str) -> NftChain | None:
        return next((c for c in self.chains if c.name == name), None)

    @property
    def owns_anything(self) -> bool:
        return self.present


def context() -> Any:
    """A fresh libnftables context (its netlink socket lives in the current netns)."""
    try:
        import nftables
    except ImportError:
        return None
    ctx = nftables.Nftables()
    ctx.set_json_output(True)
    ctx.set_terse_output(True)
    ctx.set_handle_output(False)
    return ctx


def require() -> Any:
    ctx = context()
    if ctx is None:
        raise EnvironmentProblem("the nftables Python bindings are not installed",
                                 hint="apt-get install nftables python3-nftables")
    return ctx


def run(commands: str, what: str) -> None:
    """One nft batch (one kernel transaction: all or nothing)."""
    ctx = require()
    ctx.set_json_output(False)
    rc, _out, err = ctx.cmd(commands)
    if rc != 0:
        raise KernelError(f"nft {what} failed (nothing was changed): {err.strip()}",
                          hint="`nft list table inet nodewall` shows the table")


def _list(ctx: Any, command: str) -> list[dict[str, Any]] | None:
    rc, out, _err = ctx.cmd(command)
    if rc != 0:
        return None
    return json.loads(out).get("nftables", []) if out.strip() else []


def _rule(d: dict[str, Any]) -> NftRule:
    comment = d.get("comment") or ""
    rid = comment[len(COMMENT_PREFIX):] if comment.startswith(COMMENT_PREFIX) else None
    packets = nbytes = 0
    jump = nfproto = None
    for e in d.get("expr", []):
        if "counter" in e and isinstance(e["counter"], dict):
            packets += int(e["counter"].get("packets", 0))
            nbytes += int(e["counter"].get("bytes", 0))
        for verb in ("jump", "goto"):
            if verb in e:
                jump = e[verb].get("target")
        m = e.get("match")
        if m and m.get("left") == {"meta": {"key": "nfproto"}} and m.get("op") == "==":
            nfproto = m.get("right")
    exprs = d.get("expr", [])
    rest = [e for e in exprs if "counter" not in e]
    plain = len(rest) == 2 and nfproto is not None and "jump" in rest[1] and \
        rest[0].get("match", {}).get("left") == {"meta": {"key": "nfproto"}}
    return NftRule(rid, packets, nbytes, jump, nfproto, rule_digest(exprs), plain)


def rule_digest(exprs: list[dict[str, Any]]) -> str:
    """A rule's content: its expressions (set and chain references by name), without
    the counter values (and the handle, which is not among them)."""
    content = [{"counter": None} if "counter" in e else e for e in exprs]
    return content_digest(json.dumps(content, sort_keys=True).encode())


def _ours(obj: dict[str, Any]) -> bool:
    return obj.get("family") == FAMILY and obj.get("table") == TABLE


def parse(items: list[dict[str, Any]]) -> tuple[list[NftChain], list[str]]:
    """nodewall's chains (with rules) and set names from a listing."""
    chains: dict[str, dict[str, Any]] = {}
    rules: dict[str, list[NftRule]] = {}
    sets: list[str] = []
    for item in items:
        obj = next(iter(item.values()), None)
        if not isinstance(obj, dict) or not _ours(obj):
            continue
        if "chain" in item:
            c = item["chain"]
            chains[c["name"]] = c
            rules.setdefault(c["name"], [])
        elif "rule" in item:
            r = item["rule"]
            rules.setdefault(r["chain"], []).append(_rule(r))
        elif "set" in item:
            sets.append(item["set"]["name"])
    out = [NftChain(name, tuple(rules.get(name, ())), c.get("hook"), c.get("prio"))
           for name, c in chains.items()]
    return out, sets


def observe() -> NftObserved:
    ctx = context()
    if ctx is None:
        return NftObserved(available=False)
    items = _list(ctx, "list ruleset")
    if items is None:  # no nf_tables in this kernel: nothing of ours either
        return NftObserved(available=False)
    tables = [i["table"] for i in items if "table" in i]
    other_tables = tuple(f"{t.get('family')} {t.get('name')}" for t in tables
                         if (t.get("family"), t.get("name")) != (FAMILY, TABLE))
    others = tuple(i["chain"] for i in items if "chain" in i and "hook" in i["chain"]
                   and not _ours(i["chain"]))
    if len(other_tables) == len(tables):
        return NftObserved(True, others=others, other_tables=other_tables)
    chains, sets = parse(items)
    return NftObserved(True, True, tuple(chains), tuple(sets), others, other_tables)
