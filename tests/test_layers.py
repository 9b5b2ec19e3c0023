"""The two bottom floors import nothing above them.

``core`` is the ground floor: it imports no other package of this repository. ``serving`` stands
on it and imports only itself and ``core`` (never ``data``, ``features``, ``training`` ...), so
the light runtime and its wheel carry exactly those two packages. Every import counts,
function-local ones included (docs/design.md, "Layers").
"""

from __future__ import annotations

import ast
import functools
import re
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


def design_rows() -> list[set[str]]:
    """The rows of docs/design.md's layer picture, top first: package names (``data/``) that
    start a line of its code block; an arrow line (``   v``) ends a row."""
    text = (REPO / "docs" / "design.md").read_text()
    block = text.split("## Layers", 1)[1].split("```", 2)[1]
    rows: list[set[str]] = [set()]
    for line in block.splitlines():
        if line.strip() == "v":
            rows.append(set())
        elif re.match(r"[a-z_]+/\s", line):
            rows[-1].add(line.split("/", 1)[0])
    return [row for row in rows if row]


def import_floors(graph: dict[str, set[str]]) -> dict[str, int]:
    """Package -> its floor: 1 for a package that imports no other, else one above the highest
    package it imports (the longest chain of imports below it)."""
    uses: dict[str, set[str]] = {}
    for module, imported in graph.items():
        top = module.split(".")[0]
        uses.setdefault(top, set()).update(m.split(".")[0] for m in imported)

    @functools.cache
    def floor(package: str) -> int:
        return 1 + max((floor(p) for p in uses.get(package, ()) if p != package), default=0)

    return {package: floor(package) for package in uses}


def test_the_design_picture_is_the_import_order() -> None:
    """docs/design.md draws the layers as rows; each package must stand exactly one row above
    the highest package it imports, and packages of one row must not import each other: the
    picture a newcomer reads is then the house the imports build, not a wish."""
    floors = import_floors(module_graph())
    by_floor: dict[int, set[str]] = {}
    for package, floor in floors.items():
        by_floor.setdefault(floor, set()).add(package)
    drawn = [row & set(floors) for row in design_rows()]  # bench/ is scripts, not a package
    assert [row for row in drawn if row] == [by_floor[f] for f in sorted(by_floor, reverse=True)]
    assert import_floors({"a.x": {"b.y"}, "b.y": {"c.z"}, "c.z": set(), "d.w": {"c.z"}}) == {
        "a": 3,
        "b": 2,
        "c": 1,
        "d": 2,
    }
