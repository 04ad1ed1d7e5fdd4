"""Stable rule ids.

A rule id is the first 16 characters of the url-safe base64 of a sha256 over:

    RENDER_VERSION, the policy name and tier, the direction, the canonical content of
    the TOML rule (everything except Locs; selectors in canonical form), the resolved
    inputs its rendering uses (the ipset names its selectors resolve to, per family)
    and a duplicate index (how many identical earlier rules the same policy/direction
    holds).

So equal id <=> equal rendered block: the iptables backend diffs chains as sequences
of id blocks and a rule whose id did not change keeps its kernel counters.  Sets named
after the rule itself (several inline CIDRs) are a function of the id, so they are not
hashed in.

Why not chain through the previous rule's hash as Felix does?  Felix chains hashes so
that a rule's id also pins its position, which makes *every* later rule get a new id
(and lose its counters) when one rule is inserted or edited.  Our backend diffs chains
as ordered sequences of blocks instead, so position is already handled by the diff, and
an id that depends only on the rule's own content keeps the counters of every rule the
operator did not touch.  The duplicate index keeps identical rules distinct.

Synthetic rules (failsafe, default deny, conntrack, mark accept, NDP, the allow chains,
the per endpoint dispatch jumps) get ids hashed from their role, e.g.
("failsafe", "ingress", "tcp:22"); the same id may appear in several chains where it
means the same thing, and its counters are summed.
"""
from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from typing import Any

RENDER_VERSION = 1
ID_LENGTH = 16


def _digest(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    raw = hashlib.sha256(text.encode()).digest()
    return base64.urlsafe_b64encode(raw).decode()[:ID_LENGTH]


def policy_rule_id(policy: str, tier: str, direction: str, content: Any,
                   resolved: Any, dup_index: int) -> str:
    """Id of a rule written in a policy.  `content` and `resolved` must be JSON-able
    and canonical (see engine.plan.rules.canonical_content)."""
    return _digest(["rule", RENDER_VERSION, policy, tier, direction, content, resolved,
                    dup_index])


def synthetic_id(*role: str) -> str:
    """Id of a rule nodewall adds by itself, from its role."""
    return _digest(["synthetic", RENDER_VERSION, *role])


def assign_dup_indexes(keys: Sequence[Any]) -> list[int]:
    """For each key, how many equal keys come before it."""
    seen: dict[str, int] = {}
    out: list[int] = []
    for key in keys:
        k = json.dumps(key, sort_keys=True)
        out.append(seen.get(k, 0))
        seen[k] = seen.get(k, 0) + 1
    return out
