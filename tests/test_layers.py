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
