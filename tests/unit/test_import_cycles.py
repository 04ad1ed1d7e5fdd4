"""No import cycles between the modules of engine/ and tui/, lazy imports included.

Every `import` statement counts, at module level or inside a function, under
`if TYPE_CHECKING:` or in a try block: a cycle that only closes at call time is still
a cycle in the design.  import-linter (`make lint`) checks the layers; this test checks
the module graph itself and names the cycle it finds.
"""
from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGES = {"engine": "nodewall.engine", "tui": "nodewall.tui"}


def _module_name(path: Path) -> str:
    top, *rest = path.relative_to(REPO).with_suffix("").parts
    if rest and rest[-1] == "__init__":
        rest.pop()
    return ".".join([PACKAGES[top], *rest])


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for top in PACKAGES for p in sorted((REPO / top).rglob("*.py"))}


def _resolve(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    base = base[:len(base) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def _targets(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules `name` imports, each as the deepest known module of the
    imported name: `from pkg import mod` is pkg.mod, `from mod import func` is mod."""
    out: set[str] = set()
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, name, path.name == "__init__.py")
            imported = [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for target in imported:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target:
                out.add(target)
    out.discard(name)
    return out


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _targets(name, path, known) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, …, a], or None (iterative DFS, white/grey/black)."""
    colour = dict.fromkeys(graph, 0)
    for root in sorted(graph):
        if colour[root]:
            continue
        stack = [(root, iter(sorted(graph[root])))]
        path = [root]
        colour[root] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                colour[node] = 2
                stack.pop()
                path.pop()
            elif colour.get(child, 2) == 1:
                return path[path.index(child):] + [child]
            elif colour.get(child, 2) == 0:
                colour[child] = 1
                path.append(child)
                stack.append((child, iter(sorted(graph.get(child, ())))))
    return None


def test_the_graph_is_read():
    graph = import_graph()
    assert "nodewall.engine.service" in graph["nodewall.engine.cli.commands"]  # top level
    assert "nodewall.engine.lab.lifecycle" in graph["nodewall.engine.cli.commands"]  # lazy
    assert "nodewall.engine.observe.report" in graph["nodewall.tui.live"]


def test_find_cycle_names_the_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])
