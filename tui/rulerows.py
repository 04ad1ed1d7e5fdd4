"""What the Rules screen needs besides the counters, pure (no Textual): the order
in which the kernel evaluates the rules, engine-made rules told apart, the
`/` filter (words, or an address matched against the rule's networks), and the
TOML a rule came from."""
from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Iterable

import tomlkit
from tomlkit.exceptions import ParseError

from .fmt import parse_loc
from .live import rule_key

STAGES = {"xdp": 0, "raw": 1, "mangle": 2, "filter": 3}  # the packet meets them in turn
DIRECTIONS = {"ingress": 0, "egress": 1, "forward": 2}
# the engine's rows around the policies' rules, in the order its chains hold them
ENGINE_BEFORE = {"(failsafe)": 0, "(conntrack)": 1, "(untracked)": 2, "(mark)": 2, "(ndp)": 3,
                 "(endpoint)": 4}
ENGINE_AFTER = {"(default-deny)": 0}
CIDR = re.compile(r"[0-9A-Fa-f:.]+/\d{1,3}|\b\d{1,3}(?:\.\d{1,3}){3}\b")


def short_chain(rule) -> str:
    """The chain cell: nodewall's chain without its nw- prefix and, when the iface
    column names it, the interface ("nw-fi-eth0" -> "fi", "nw-INPUT" -> "INPUT",
    "xdp:eth0" -> "xdp")."""
    chain = rule.chain
    if chain.startswith("xdp:"):
        return "xdp"
    chain = chain.removeprefix("nw-")
    for suffix in (f"-{rule.interface}", "-:all"):
        if rule.interface and chain.endswith(suffix):
            return chain[:-len(suffix)]
    return chain


def is_engine_rule(rule) -> bool:
    """Failsafe, conntrack, marks, endpoint jumps, default deny: policy "(name)"."""
    return rule.policy.startswith("(")


def policy_ranks(texts: Iterable[str]) -> dict[str, int]:
    """Policy name -> its place in evaluation order: sorted by (order, name) as the
    engine sorts them (no order = last), over every profile's text."""
    found: list[tuple[float, str]] = []
    for text in texts:
        try:
            doc = tomlkit.parse(text)
        except ParseError:
            continue
        for pol in doc.get("policies", []) or []:
            order = pol.get("order")
            found.append((math.inf if order is None else float(order), str(pol.get("name"))))
    return {name: i for i, (_, name) in enumerate(sorted(found))}


def evaluation_key(rule, ranks: dict[str, int]) -> tuple:
    """Stage, direction, then the engine's rows before the policies, the policies'
    rules (policy rank, rule index), the engine's rows after them."""
    stage = STAGES.get(rule.backend, len(STAGES))
    direction = DIRECTIONS.get(rule.direction, len(DIRECTIONS))
    if rule.policy in ENGINE_AFTER:
        place = (2, ENGINE_AFTER[rule.policy], 0)
    elif is_engine_rule(rule):
        place = (0, ENGINE_BEFORE.get(rule.policy, len(ENGINE_BEFORE)), 0)
    else:
        place = (1, ranks.get(rule.policy, len(ranks)), rule.index)
    return (stage, direction, place, rule.profile, rule.policy, rule_key(rule))


def match_text(rule) -> str:
    """The match summary without its leading action word (`tcp from ... to port
    6379`); the action word alone when nothing else is matched."""
    action, _, rest = rule.summary.partition(" ")
    return rest if action == rule.action and rest else rule.summary


def as_address(text: str):
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def networks_in(text: str) -> list:
    nets = []
    for word in CIDR.findall(text):
        try:
            nets.append(ipaddress.ip_network(word, strict=False))
        except ValueError:
            continue
    return nets


def contains(rule, addr, toml: str = "") -> bool:
    """Whether a network written in the rule (its summary or its TOML) holds `addr`."""
    return any(addr.version == n.version and addr in n
               for n in networks_in(f"{rule.summary}\n{toml}"))


def rule_toml(rule, text_of) -> str:
    """The TOML table the rule came from: from its `[[...]]` header (the location)
    up to the next table header; "" when unknown.  `text_of(path)` gives a file's
    text (the editor's buffer)."""
    loc = parse_loc(rule.loc) if rule.loc else None
    if loc is None:
        return ""
    lines = text_of(loc[0]).splitlines()
    start = loc[1] - 1
    if not 0 <= start < len(lines):
        return ""
    end = start + 1
    while end < len(lines) and not lines[end].lstrip().startswith("["):
        end += 1
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1
    return "\n".join(lines[start:end])
