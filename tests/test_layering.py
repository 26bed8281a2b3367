"""The import structure: the contracts in pyproject.toml hold, and no module imports itself back.

An import circle is held together by function-level imports and import order; the next module
added to it fails at import time, or a face's dependency leaks into the layers below. These tests
keep the layering in pyproject.toml's ``[tool.importlinter]`` true, and the circles at zero.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]

MAX_CYCLES = 0
"""Import circles left among hedge's modules; lower it as they go, never raise it."""


def _lint_imports() -> str:
    beside = Path(sys.executable).with_name("lint-imports")
    if beside.exists():
        return str(beside)
    found = shutil.which("lint-imports")
    assert found is not None, "lint-imports is not installed (pip install -e '.[dev]')"
    return found


def test_import_contracts_hold() -> None:
    result = subprocess.run(
        [_lint_imports(), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout, result.stdout


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the groups of modules that import each other, directly or in a ring."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in edges.get(node, ()):
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return groups


def test_strongly_connected_table() -> None:
    edges = {
        "a": {"b"},
        "b": {"c"},
        "c": {"a", "d"},
        "d": {"e"},
        "e": set(),
        "f": {"f"},
        "g": {"h"},
        "h": {"g"},
    }
    assert sorted(strongly_connected(edges)) == [["a", "b", "c"], ["f"], ["g", "h"]]
    assert strongly_connected({"x": {"y"}, "y": set()}) == []


def test_no_import_cycles() -> None:
    """Function-level imports count (grimp sees them); ``if TYPE_CHECKING:`` ones do not run, so not."""
    graph = grimp.build_graph(
        "hedge", include_external_packages=False, exclude_type_checking_imports=True, cache_dir=None
    )
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    groups = strongly_connected(edges)
    rings = []
    for group in groups:
        start = group[0]
        back = sorted(n for n in edges[start] if n in group)[0]
        chain = graph.find_shortest_chain(importer=back, imported=start) or ()
        rings.append(f"{len(group)} modules: {', '.join(group)}\n  e.g. {' -> '.join((start, *chain))}")
    assert len(groups) <= MAX_CYCLES, "import cycles among hedge's modules:\n" + "\n".join(rings)
