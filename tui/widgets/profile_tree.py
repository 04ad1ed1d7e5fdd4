"""The profiles screen's tree: host endpoints, network sets and policies with their
rules, each line saying which item it is at the width the tree has."""
from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from ..fmt import clip
from ..tomldoc import Node

# The tree is half the screen (CSS: 50%, 34 to 56 columns); a label gets what its
# depth leaves: a leaf under a group is indented 4 columns, a policy 4 and its
# expand icon 2, a rule 8.
TREE_MIN, TREE_MAX = 34, 56
LEAF_INDENT, POLICY_INDENT, RULE_INDENT = 4, 6, 8


def tree_label(node: Node, width: int) -> Text:
    """A tree line that says which item it is at any width: a rule by its short
    position (in[0], eg[1]) and action first, the rest cut in the middle so that
    both ends (the sources, the ports) stay; the form above the fields has it all."""
    label = node.label
    if node.kind == "rule":
        label = label.replace("ingress[", "in[", 1).replace("egress[", "eg[", 1)
    return Text(clip(label, max(width, 8), middle=True))


def tree_width_for(screen_width: int) -> int:
    """The tree's width before it is laid out: half the screen, within its CSS bounds."""
    return max(TREE_MIN, min(TREE_MAX, screen_width // 2))


def fill_profile_tree(tree: Tree, nodes: Iterable[Node], width: int,
                      select: tuple | None) -> TreeNode | None:
    """Add the groups and NODES to TREE (labels fitted to WIDTH columns); returns the
    line of the node whose path is SELECT, if any."""
    groups = {}
    for title, kind in (("Host endpoints", "host_endpoint"), ("Network sets", "network_set"),
                        ("Policies", "policy")):
        groups[kind] = tree.root.add(title, expand=True, data=Node("group", (kind,), title))
    policy_nodes = {}
    target = None
    for node in nodes:
        if node.kind == "rule":
            parent = policy_nodes[node.path[:2]]
            item = parent.add_leaf(tree_label(node, width - RULE_INDENT), data=node)
        elif node.kind == "policy":
            item = policy_nodes[node.path] = groups["policy"].add(
                tree_label(node, width - POLICY_INDENT), data=node, expand=True)
        else:
            item = groups[node.kind].add_leaf(tree_label(node, width - LEAF_INDENT), data=node)
        if select is not None and node.path == select:
            target = item
    return target
