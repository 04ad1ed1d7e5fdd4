"""The kernel text of one rule id as a generation's plan renders it: iptables rule
specs (`-i eth0 -p tcp ... -j ACCEPT`) or nftables rule statements, each with the
table, family and chain it sits in."""
from __future__ import annotations

from dataclasses import dataclass

from nodewall.engine.dataplane.iptables import render as ipt_render
from nodewall.engine.dataplane.nftables import render as nft_render
from nodewall.engine.plan.desired import DesiredState


@dataclass(frozen=True)
class RenderedRule:
    table: str  # raw / mangle / filter
    family: int  # 4 / 6
    chain: str  # nodewall's chain name ("nw-fi-eth0")
    text: str  # the rule as the packet filter is given it

    def line(self) -> str:
        return f"{self.table} v{self.family} {self.chain}: {self.text}"


def rendered_rules(desired: DesiredState, rule_id: str) -> list[RenderedRule]:
    """Every kernel rule `rule_id` renders to in `desired`, in plan order (an XDP
    rule's kernel side is its raw backstop)."""
    out = []
    for t in desired.tables:
        for chain in t.chains:
            for rule in chain.rules:
                if rule.rule_id != rule_id:
                    continue
                text = (nft_render.rule_text(rule, t.family, t.table)
                        if desired.packet_filter == "nftables"
                        else ipt_render.render_text(rule, t.family))
                out.append(RenderedRule(t.table, t.family, chain.name, text))
    return out
