"""The core has no import cycle (issue 15): a cycle makes import order matter, hides which module owns what,
and is usually "fixed" by a function-level import that moves the problem to run time.

The graph is built from the source with ``ast``, not by importing: every ``import`` and ``from ... import``
of an ``omha_core`` module anywhere in a module counts (at the top, or deferred inside a function), except
under ``if TYPE_CHECKING:``, which never runs. ``from pkg import name`` is an edge to ``pkg.name`` when that
is a module, else to ``pkg``; importing ``pkg.sub`` is an edge to ``pkg.sub`` only (a package's
``__init__`` re-exporting its submodules is not a cycle).
"""

from __future__ import annotations

import ast
from pathlib import Path

import omha_core

ROOT = Path(omha_core.__file__).resolve().parent


def modules() -> dict[str, Path]:
    """Every module of omha_core, by dotted name (a package by its own name)."""
    out: dict[str, Path] = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = ["omha_core", *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(node: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement under ``node``, skipping ``if TYPE_CHECKING:`` bodies (their ``else`` counts)."""
    found: list[ast.Import | ast.ImportFrom] = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            found.append(child)
        elif isinstance(child, ast.If) and _type_checking(child.test):
            for stmt in child.orelse:
                found += _imports(stmt) if not isinstance(stmt, ast.Import | ast.ImportFrom) else [stmt]
        else:
            found += _imports(child)
    return found


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The innermost known module that ``name`` (dotted) is or lies in."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def graph() -> dict[str, set[str]]:
    """Module -> the omha_core modules it imports (at run time)."""
    known = modules()
    edges: dict[str, set[str]] = {m: set() for m in known}
    for mod, path in known.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for stmt in _imports(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(stmt, ast.Import):
                targets = [a.name for a in stmt.names]
            else:
                base = stmt.module or ""
                if stmt.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (stmt.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in stmt.names]
            for target in targets:
                dep = _resolve(target, known)
                if dep is not None and dep != mod:
                    edges[mod].add(dep)
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph, as the modules along it (the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(edges.get(node, ())):
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep not in state and (cycle := visit(dep)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_the_graph_sees_deferred_imports_and_skips_type_checking() -> None:
    """The parser itself: a function-level import is an edge, a TYPE_CHECKING one is not."""
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from omha_core.config import Config\n"
        "def f():\n    from omha_core import hooks\n"
    )
    names = [s.module for s in _imports(tree) if isinstance(s, ast.ImportFrom)]
    assert names == ["typing", "omha_core"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    edges = graph()
    assert "omha_core.fencing.machine" in edges["omha_core.fencing.fencer"]
    assert "omha_core.fencing.fencer" in edges["omha_core.fencing"]


def test_the_core_has_no_import_cycle() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle in omha_core: " + " -> ".join(cycle or [])
