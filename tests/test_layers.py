"""The two bottom floors import nothing above them.

``core`` is the ground floor: it imports no other package of this repository. ``serving`` stands
on it and imports only itself and ``core`` (never ``data``, ``features``, ``training`` ...), so
the light runtime and its wheel carry exactly those two packages. Every import counts,
function-local ones included (docs/design.md, "Layers").
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.fixtures.imports import absolute_imports

REPO = Path(__file__).resolve().parents[1]
PACKAGES = sorted(p.parent.name for p in REPO.glob("*/__init__.py"))
# package -> the repository packages it may import (itself included)
MAY_IMPORT = {"core": {"core"}, "serving": {"serving", "core"}}


def repo_imports(package: str) -> list[str]:
    """``file:line imports name`` for every absolute import of a repository package in
    ``package`` (relative imports stay inside it)."""
    return [
        f"{path.relative_to(REPO)}:{line} imports {name}"
        for path in sorted((REPO / package).rglob("*.py"))
        for line, name in absolute_imports(ast.parse(path.read_text(), str(path)))
        if name.split(".")[0] in PACKAGES
    ]


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_a_bottom_floor_imports_nothing_above_it(package: str) -> None:
    allowed = MAY_IMPORT[package]
    above = [
        line for line in repo_imports(package) if line.split()[-1].split(".")[0] not in allowed
    ]
    assert above == [], f"{package}/ may import only {sorted(allowed)}"


def test_the_check_sees_imports() -> None:
    assert any(line.endswith("imports core.kernel") for line in repo_imports("core"))
    assert any(line.endswith("imports core.online") for line in repo_imports("serving"))


def module_graph() -> dict[str, set[str]]:
    """Module -> the repository modules it imports (every import, function-local and
    type-checking ones included; ``from pkg import mod`` counts as importing ``pkg.mod``)."""
    modules = {
        ".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"): p
        for package in PACKAGES
        if package != "tests"
        for p in (REPO / package).rglob("*.py")
    }
    return {
        name: {
            m
            for _, m in absolute_imports(ast.parse(path.read_text(), str(path)), names=True)
            if m in modules and m != name
        }
        for name, path in modules.items()
    }


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of two or more modules that import each other, directly or round a chain
    (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_two_modules_import_each_other() -> None:
    """An import circle ties two modules into one unit that neither can be read, tested or
    moved without (the house's rooms, docs/design.md); a lazy import only hides it."""
    graph = module_graph()
    assert "pipelines.paths" in graph["pipelines.data"]  # ``from pipelines import paths``
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles(graph) == []
