"""Build the ``ludora-serving`` wheel: the light runtime under one import name, ``ludora_serving``.

Why: the ``ludora-ml`` distribution installs ``core``, ``data``, ``features``, ``serving`` ... as
top-level packages (the repository layout the pipeline imports), and a backend with its own
``core`` or ``serving`` package would shadow them or be shadowed. So the wheel carries the two
packages serving runs on, whole (every module, globbed), under one name: ``serving/`` as
``ludora_serving/`` and ``core/`` (the ground floor serving stands on) as
``ludora_serving._core/``.

That renaming is the build's one exception to "the sources as they are" (:data:`RENAMED`): the
import statements naming ``serving`` or ``core`` are rewritten to the new names
(``from serving.x`` -> ``from ludora_serving.x``, ``from core.kernel`` ->
``from ludora_serving._core.kernel``), at the positions ``ast`` reports; comments and docstrings
keep the repository names. The data files these packages read beside their modules
(:data:`DATA_FILES`) are carried byte for byte. Nothing else is edited and nothing else is
carried: no other package of this repository is needed, since serving imports only itself and
``core``.

The build fails with one line (file:line) when a carried module imports another package of this
repository, a third-party package outside ``requirements-serving.txt``, or an import this renaming
cannot keep equivalent (``import serving.x`` without ``as``, a relative import across packages),
so a new import in ``serving/`` or ``core/`` cannot silently break the light install.
The wheel is reproducible: same sources at the same commit, same bytes (fixed zip times,
sorted entries).
"""

from __future__ import annotations

import argparse
import ast
import base64
import hashlib
import io
import json
import logging
import re
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from core.atomic import atomic_path

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
DIST_NAME = "ludora-serving"
PACKAGE = "ludora_serving"
# The packages the wheel carries, whole, and their import names in it: the one rewrite the build
# makes. Every module of these packages is checked against requirements-serving.txt.
RENAMED: Mapping[str, str] = {"serving": PACKAGE, "core": f"{PACKAGE}._core"}
# The data files a carried package reads beside its modules (``Path(__file__).with_name(...)``),
# carried as they are: without them the installed package would fail on first use.
DATA_FILES = ("*.json",)
# Imported directly by serving but installed by a requirement (fastapi depends on starlette).
TRANSITIVE_IMPORTS: Mapping[str, str] = {"starlette": "fastapi"}
# Reproducible zip entries (the zip format's earliest date).
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class ServingDistError(ValueError):
    """The light distribution cannot be built as it is; the message names file, line and fix."""


def import_name(req: Requirement) -> str:
    """The top-level import name a requirement installs (``pydantic-settings`` ->
    ``pydantic_settings``), as the import check of the carried modules spells it."""
    return req.name.lower().replace("-", "_")


def _pinned(req: Requirement) -> bool:
    return [spec.operator for spec in req.specifier] == ["=="]


def read_requirements(path: Path) -> list[Requirement]:
    """The pinned lines of ``requirements-serving.txt`` (comments and blanks skipped), parsed
    by ``packaging`` (PEP 508), each an exact ``name==version`` pin: the wheel's Requires-Dist
    must install what the tests ran against."""
    reqs = []
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            req: Requirement | None = Requirement(line)
        except InvalidRequirement:
            req = None
        if req is None or req.extras or req.marker or req.url or not _pinned(req):
            raise ServingDistError(f"{path}:{n}: expected 'name==version', got {line!r}")
        reqs.append(req)
    return reqs


def _repo_packages(repo: Path) -> set[str]:
    """Top-level names importable from the repository root (packages with __init__.py)."""
    return {p.parent.name for p in repo.glob("*/__init__.py")}


def _target(module: str) -> str | None:
    """Where a repo module lives in the wheel (None: not carried)."""
    top, dot, rest = module.partition(".")
    return RENAMED[top] + dot + rest if top in RENAMED else None


def _module_name(repo: Path, path: Path) -> str:
    rel = path.relative_to(repo).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


@dataclass(frozen=True)
class _Edit:
    line: int  # 1-based
    col: int  # 0-based, where the old module name starts on that line
    old: str
    new: str


def _imports(
    repo: Path, path: Path, source: str, repo_pkgs: set[str], allowed: set[str]
) -> list[_Edit]:
    """The renames of ``path``'s imports of ``serving`` / ``core`` (every import checked)."""
    name = _module_name(repo, path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    lines = source.splitlines()
    rel = path.relative_to(repo)
    edits: list[_Edit] = []

    def fail(node: ast.stmt, why: str) -> ServingDistError:
        return ServingDistError(f"{rel}:{node.lineno}: {why}")

    def carried(node: ast.stmt, module: str) -> None:
        if _target(module) is None:
            raise fail(
                node,
                f"imports {module}, which {DIST_NAME} does not carry (it carries only "
                f"{' and '.join(sorted(RENAMED))}); move light code serving needs into core/",
            )

    def third_party(node: ast.stmt, module: str) -> None:
        top = module.split(".")[0]
        if top not in sys.stdlib_module_names and top not in allowed:
            raise fail(
                node,
                f"imports {top}, which is neither the standard library nor in "
                f"requirements-serving.txt (allowed: {', '.join(sorted(allowed))})",
            )

    def rename(node: ast.stmt, keyword: str, module: str) -> None:
        """Edit the dotted name right after ``keyword`` at the statement's start."""
        line = lines[node.lineno - 1]
        m = re.compile(rf"{keyword}\s+({re.escape(module)})\b").match(line, node.col_offset)
        target = _target(module)
        if m is None or target is None:
            raise fail(node, f"cannot rewrite this import of {module} (write it on one line)")
        edits.append(_Edit(node.lineno, m.start(1), module, target))

    for node in ast.walk(ast.parse(source, str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: stays valid only inside its own (renamed) package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                if not base or base[0] != name.split(".")[0]:
                    raise fail(node, "relative import leaves its package; use an absolute import")
                continue
            module = node.module or ""
            if module.split(".")[0] not in repo_pkgs:
                third_party(node, module)
                continue
            carried(node, module)
            rename(node, "from", module)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] not in repo_pkgs:
                    third_party(node, alias.name)
                    continue
                carried(node, alias.name)
                if alias.asname is None or len(node.names) > 1:
                    raise fail(
                        node,
                        f"'import {alias.name}' binds the repo name {alias.name.split('.')[0]!r}; "
                        f"write 'from {alias.name.rpartition('.')[0] or alias.name} import ...'",
                    )
                rename(node, "import", alias.name)
    return edits


def rewrite_source(source: str, edits: Iterable[_Edit]) -> str:
    """``source`` with each edit applied (right to left, so earlier columns stay valid)."""
    lines = source.splitlines(keepends=True)
    for e in sorted(edits, key=lambda e: (e.line, e.col), reverse=True):
        text = lines[e.line - 1]
        if text[e.col : e.col + len(e.old)] != e.old:
            raise ServingDistError(f"line {e.line}: expected {e.old!r} at column {e.col}")
        lines[e.line - 1] = text[: e.col] + e.new + text[e.col + len(e.old) :]
    return "".join(lines)


def _wheel_path(module: str, is_package: bool) -> str:
    target = _target(module)
    if target is None:
        raise ServingDistError(f"{module}: not carried")
    parts = target.split(".")
    return "/".join([*parts, "__init__.py"]) if is_package else "/".join(parts) + ".py"


def vendored_sources(repo: Path = REPO) -> dict[str, tuple[str, str]]:
    """Wheel path -> (repo-relative source path, renamed source), for every module of the
    packages in :data:`RENAMED`. Raises :class:`ServingDistError` on any import the light
    distribution cannot carry."""
    repo_pkgs = _repo_packages(repo)
    reqs = read_requirements(repo / "requirements-serving.txt")
    allowed = {import_name(r) for r in reqs} | set(TRANSITIVE_IMPORTS)
    allowed.add("__future__")
    out: dict[str, tuple[str, str]] = {}
    for top in RENAMED:
        paths = sorted((repo / top).glob("*.py"))
        if not (repo / top / "__init__.py").is_file():
            raise ServingDistError(f"{repo / top}: not a package (no __init__.py) to carry")
        for path in paths:
            source = path.read_text()
            text = rewrite_source(source, _imports(repo, path, source, repo_pkgs, allowed))
            _check_rewritten(path.relative_to(repo), text, repo_pkgs)
            module = _module_name(repo, path)
            out[_wheel_path(module, path.name == "__init__.py")] = (
                path.relative_to(repo).as_posix(),
                text,
            )
    return dict(sorted(out.items()))


def data_files(repo: Path = REPO) -> dict[str, str]:
    """Wheel path -> repo-relative source path of every data file (:data:`DATA_FILES`) of the
    packages in :data:`RENAMED`, carried byte for byte."""
    out: dict[str, str] = {}
    for top, target in RENAMED.items():
        for pattern in DATA_FILES:
            for path in (repo / top).glob(pattern):
                out["/".join([*target.split("."), path.name])] = path.relative_to(repo).as_posix()
    return dict(sorted(out.items()))


def _check_rewritten(rel: Path, text: str, repo_pkgs: set[str]) -> None:
    """Belt and braces: the rewritten module compiles and names no repo package any more."""
    tree = ast.parse(text, str(rel))
    compile(tree, str(rel), "exec")
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] in repo_pkgs:
                raise ServingDistError(f"{rel}:{node.lineno}: still imports {name} after rewrite")


def _git_commit(repo: Path) -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _metadata(version: str, python: str, reqs: list[Requirement]) -> str:
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {DIST_NAME}",
        f"Version: {version}",
        "Summary: Ludora's light serving runtime (weakness predictor, word-problem generator); "
        f"import name {PACKAGE}",
        f"Requires-Python: {python}",
        *(f"Requires-Dist: {r}" for r in reqs),
    ]
    return "\n".join(lines) + "\n"


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def wheel_files(repo: Path = REPO) -> dict[str, bytes]:
    """Every file of the wheel (path -> bytes), RECORD last."""
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    version, python = project["version"], project["requires-python"]
    reqs = read_requirements(repo / "requirements-serving.txt")
    sources = vendored_sources(repo)
    data = data_files(repo)
    files = {path: text.encode() for path, (_, text) in sources.items()}
    files.update({path: (repo / src).read_bytes() for path, src in data.items()})
    files[f"{PACKAGE}/py.typed"] = b""
    # Provenance: which repo files, at which commit, this wheel was cut from.
    provenance = {
        "distribution": DIST_NAME,
        "version": version,
        "git_commit": _git_commit(repo),
        "sources": {
            src: hashlib.sha256((repo / src).read_bytes()).hexdigest()
            for src in [*(src for src, _ in sources.values()), *data.values()]
        },
    }
    files[f"{PACKAGE}/_build.json"] = (json.dumps(provenance, indent=2) + "\n").encode()
    info = f"{PACKAGE}-{version}.dist-info"
    files[f"{info}/METADATA"] = _metadata(version, python, reqs).encode()
    files[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: ludora-ml export.serving_dist\n"
        b"Root-Is-Purelib: true\nTag: py3-none-any\n"
    )
    files[f"{info}/entry_points.txt"] = (
        f"[console_scripts]\n{DIST_NAME} = {PACKAGE}.cli:main\n"
    ).encode()
    files[f"{info}/top_level.txt"] = f"{PACKAGE}\n".encode()
    record = [_record_line(p, d) for p, d in sorted(files.items())] + [f"{info}/RECORD,,"]
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    return files


def build_wheel(out_dir: Path, repo: Path = REPO) -> Path:
    """Write ``ludora_serving-<version>-py3-none-any.whl`` into ``out_dir`` (atomically)."""
    files = wheel_files(repo)
    info = next(p.split("/")[0] for p in files if p.endswith(".dist-info/METADATA"))
    version = info.removeprefix(f"{PACKAGE}-").removesuffix(".dist-info")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{PACKAGE}-{version}-py3-none-any.whl"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(files, key=lambda p: (p.endswith("/RECORD"), p)):
            entry = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(entry, files[name])
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())
    logger.info("wrote %s (%d files, %d bytes)", path, len(files), path.stat().st_size)
    return path


def main(argv: list[str] | None = None) -> None:
    """``python -m export.serving_dist --out DIR``: one-line errors, exit 1."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "dist", help="Folder for the wheel.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        sys.stdout.write(f"{build_wheel(args.out)}\n")  # the path, for scripts
    except ServingDistError as exc:
        sys.stderr.write(f"error: {exc}\n")
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
