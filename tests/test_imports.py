"""The package's modules import each other without cycles.

The graph is built from the source with ``ast`` (nothing is imported): an edge ``a -> b`` for every
``import`` of a deepclust module ``b`` in module ``a``. Importing ``deepclust.x.y`` also runs the
package ``deepclust.x``, so that package counts as imported too, except where the importer lives
inside it (a package's own modules are loaded while it initialises) and except the root package,
which imports nothing eagerly. Imports under ``if TYPE_CHECKING:`` never run and are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import deepclust

ROOT = Path(deepclust.__file__).parent


def _modules() -> dict[str, Path]:
    mods = {}
    for path in ROOT.rglob("*.py"):
        parts = ["deepclust", *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imported(tree: ast.Module, name: str, is_pkg: bool, *, module_level: bool) -> set[str]:
    """Dotted names ``name``'s module imports (at the top level only, or anywhere)."""
    found: set[str] = set()
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if _is_type_checking(node):
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against the importer's package
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.add(mod)
            found.update(f"{mod}.{a.name}" for a in node.names)  # `from pkg import module`
        if module_level:
            if isinstance(node, ast.If | ast.Try):  # still run at import time
                stack.extend(node.body + node.orelse + getattr(node, "finalbody", []))
                stack.extend(h for handler in getattr(node, "handlers", []) for h in handler.body)
        else:
            stack.extend(ast.iter_child_nodes(node))
    return found


def import_graph(*, module_level: bool) -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        edges = set()
        for target in _imported(ast.parse(path.read_text()), name, path.name == "__init__.py",
                                module_level=module_level):
            while target and target not in mods:  # `from pkg.mod import attr` -> pkg.mod
                target = target.rpartition(".")[0]
            if not target.startswith("deepclust"):
                continue
            parts = target.split(".")
            for i in range(2, len(parts) + 1):  # the module and every package above it but the root
                dep = ".".join(parts[:i])
                if dep != name and not name.startswith(dep + "."):
                    edges.add(dep)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of nodes (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_on_hand_made_graphs():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_graph_sees_the_package():
    graph = import_graph(module_level=True)
    assert "deepclust.data.hsi" in graph["deepclust.base"]
    assert "deepclust.data" in graph["deepclust.base"]  # the package hsi lives in runs first
    assert "deepclust.base" not in graph["deepclust.data.hsi"]


def test_no_import_cycle_at_import_time():
    cycle = find_cycle(import_graph(module_level=True))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_import_cycle_with_deferred_imports():
    # imports inside functions too: a deferred import that closes a cycle hides a layering fault
    cycle = find_cycle(import_graph(module_level=False))
    assert cycle is None, "import cycle (deferred imports counted): " + " -> ".join(cycle)
