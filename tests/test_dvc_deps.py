"""dvc.yaml cannot drift from the code: each stage lists exactly the repo .py files it runs,
and exactly the paths pipelines/paths.py declares for it, in data-flow order.

The closure of a stage is computed from the code itself: its ``python -m <module>`` file, then
every repo module it imports (``import``/``from`` at any depth, function-local ones included;
``if TYPE_CHECKING:`` blocks skipped since they never run), transitively. A package
``__init__.py`` counts only when it holds code. A stage that misses a file would be skipped
by ``dvc repro`` after that file changed (a stale model); a listed file it does not use
makes it re-run for nothing.

Data files follow their modules: a module that reads a file beside itself
(``Path(__file__).with_name("noun_ranges.json")``) makes that file a dep of every stage whose
closure holds the module, so editing the data re-runs the stage as editing the code does. Other
non-.py deps (inputs a stage opens by path) are the stage's own and not checked here.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines import paths

REPO = Path(__file__).resolve().parents[1]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_names(tree: ast.AST, package: str) -> set[str]:
    """Dotted module names (and ``module.name`` candidates) imported anywhere in ``tree``."""
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return names


def _has_code(path: Path) -> bool:
    body = ast.parse(path.read_text()).body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    return bool(body)


def _module_files(dotted: str, root: Path) -> list[Path]:
    """Repo files run by importing ``dotted`` (package __init__s with code, then the module)."""
    parts = dotted.split(".")
    files: list[Path] = []
    for i in range(1, len(parts) + 1):
        init = root.joinpath(*parts[:i], "__init__.py")
        if init.is_file():
            if _has_code(init):
                files.append(init)
            continue
        module = root.joinpath(*parts[:i]).with_suffix(".py")
        if module.is_file() and i == len(parts):
            files.append(module)
        elif not module.is_file():
            return [] if i == 1 else files
    return files


def import_closure(module: str, root: Path = REPO) -> set[str]:
    """Repo-relative paths of every repo .py file that running ``python -m module`` imports."""
    seen: set[Path] = set()
    todo = _module_files(module, root)
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        package = ".".join(path.relative_to(root).parts[:-1])  # a/b/c.py, a/b/__init__.py: a.b
        for name in _imported_names(ast.parse(path.read_text()), package):
            todo.extend(f for f in _module_files(name, root) if f not in seen)
    return {p.relative_to(root).as_posix() for p in seen}


def _is_file_path(node: ast.expr) -> bool:
    """``Path(__file__)``."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "Path"
        and len(node.args) == 1
        and isinstance(node.args[0], ast.Name)
        and node.args[0].id == "__file__"
    )


def beside_files(module: str, root: Path = REPO) -> set[str]:
    """Repo-relative paths of the data files (or folders) the repo module ``module`` (a path)
    reads beside itself: each ``Path(__file__).with_name("<literal>")``."""
    folder = Path(module).parent
    return {
        (folder / node.args[0].value).as_posix()
        for node in ast.walk(ast.parse((root / module).read_text()))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "with_name"
        and _is_file_path(node.func.value)
        and len(node.args) == 1
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    }


def stage_drift(dvc_yaml: Path, root: Path = REPO) -> dict[str, tuple[list[str], list[str]]]:
    """stage -> (repo .py files it imports and data files they read beside themselves that
    dvc.yaml misses, listed .py files it never uses)."""
    stages = yaml.safe_load(dvc_yaml.read_text())["stages"]
    out: dict[str, tuple[list[str], list[str]]] = {}
    for name, stage in stages.items():
        cmd = str(stage["cmd"]).split()
        if cmd[:2] != ["python", "-m"]:
            continue
        used = import_closure(cmd[2], root)
        data = {f for module in used for f in beside_files(module, root)}
        deps = {str(d) for d in stage.get("deps", [])}
        listed = {d for d in deps if d.endswith(".py")}
        out[name] = (sorted((used - listed) | (data - deps)), sorted(listed - used))
    return out


STAGES = sorted(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])


@functools.cache
def _repo_drift() -> dict[str, tuple[list[str], list[str]]]:
    return stage_drift(REPO / "dvc.yaml")


@pytest.mark.parametrize("stage", STAGES)
def test_dvc_yaml_lists_exactly_the_code_each_stage_runs(stage: str) -> None:
    missing, unused = _repo_drift()[stage]
    assert not missing and not unused, (
        f"dvc.yaml stage '{stage}': add to deps {missing}; remove from deps {unused}"
    )


def test_closure_follows_function_local_and_transitive_imports() -> None:
    closure = import_closure("pipelines.data")
    # pipelines/data.py -> data/sources.py -> data/validate.py -> serving/ids.py -> limits.py
    assert {"pipelines/data.py", "data/sources.py", "data/validate.py"} <= closure
    assert {"serving/ids.py", "serving/limits.py", "data/params.py"} <= closure
    assert "training/weakness.py" not in closure  # never imported by the data stage


def test_a_removed_dep_is_caught(tmp_path: Path) -> None:
    """The drift test fails on a deliberately removed dep (and on a bogus extra one)."""
    text = (REPO / "dvc.yaml").read_text()
    stages = yaml.safe_load(text)["stages"]
    deps = stages["data"]["deps"]
    assert "core/schema.py" in deps
    stages["data"]["deps"] = [d for d in deps if d != "core/schema.py"] + ["training/weakness.py"]
    copy = tmp_path / "dvc.yaml"
    copy.write_text(yaml.safe_dump({"stages": stages}))
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    missing, unused = stage_drift(copy)["data"]
    assert "core/schema.py" in missing
    assert unused == ["training/weakness.py"]


def test_data_beside_a_module_is_found_and_a_removed_one_caught(tmp_path: Path) -> None:
    """A data file a module reads beside itself is a dep of each stage importing the module."""
    assert beside_files("serving/quantities.py") == {"serving/noun_ranges.json"}
    assert beside_files("data/word_problems/templates.py") == {"data/word_problems/templates.yaml"}
    assert beside_files("serving/sizes.py") == set()
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    deps = stages["quests"]["deps"]
    assert "serving/noun_ranges.json" in deps
    stages["quests"]["deps"] = [d for d in deps if d != "serving/noun_ranges.json"]
    copy = tmp_path / "dvc.yaml"
    copy.write_text(yaml.safe_dump({"stages": stages}))
    assert stage_drift(copy)["quests"] == (["serving/noun_ranges.json"], [])


# ----------------------------------------------------------------------------- declared paths
# Deps under these folders are made by other stages; pipelines/paths.py declares them (source
# files tracked by git, like data/word_problems/requests/*.json, belong to their readers).
_STAGE_MADE = ("outputs/", "metrics/", "plots/")


def _names(entries: list[Any]) -> set[str]:
    """``- path`` or ``- path: {options}`` entries of a dvc.yaml section -> the paths."""
    return {str(next(iter(e))) if isinstance(e, dict) else str(e) for e in entries}


def test_dvc_yaml_stages_are_the_declared_ones_in_flow_order() -> None:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert list(stages) == list(paths.STAGES)


@pytest.mark.parametrize("stage", STAGES)
def test_dvc_yaml_paths_are_the_declared_ones(stage: str) -> None:
    """Each stage's deps made by other stages, outs, metrics and plots equal pipelines/paths.py."""
    spec = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"][stage]
    declared = paths.STAGES[stage]
    deps = {d for d in _names(spec.get("deps", [])) if d.startswith(_STAGE_MADE)}
    assert deps == set(declared.inputs), f"{stage}: deps"
    assert _names(spec.get("outs", [])) == set(declared.outs), f"{stage}: outs"
    assert _names(spec.get("metrics", [])) == set(declared.metrics), f"{stage}: metrics"
    assert _names(spec.get("plots", [])) == set(declared.plots), f"{stage}: plots"


def test_every_input_is_written_by_an_earlier_stage() -> None:
    """Flow order: a stage reads only what a stage listed before it writes (a file or a folder)."""
    written: list[str] = []
    for name, files in paths.STAGES.items():
        for path in files.inputs:
            assert any(path == w or path.startswith(f"{w}/") for w in written), (name, path)
        written += [*files.outs, *files.metrics, *files.plots]


def test_source_deps_exist() -> None:
    """The deps that no stage writes are files of the repository, not typos."""
    for name, spec in yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"].items():
        for dep in _names(spec.get("deps", [])):
            if not dep.startswith(_STAGE_MADE):
                assert (REPO / dep).exists(), (name, dep)


def test_pipeline_modules_spell_no_declared_path_again() -> None:
    """A path pipelines/paths.py declares (or a file under one) is never a literal elsewhere."""
    declared = {v for v in vars(paths).values() if isinstance(v, str) and v.startswith(_STAGE_MADE)}
    found = []
    for file in sorted((REPO / "pipelines").glob("*.py")):
        if file.name == "paths.py":
            continue
        literals = [
            n
            for n in ast.walk(ast.parse(file.read_text()))
            if isinstance(n, ast.Constant) and isinstance(n.value, str)
        ]
        found += [
            f"pipelines/{file.name}:{n.lineno}: {n.value!r}"
            for n in literals
            if any(n.value == d or n.value.startswith(f"{d}/") for d in declared)
        ]
    assert not found, "use pipelines.paths: " + "; ".join(found)


@pytest.mark.parametrize("stage", STAGES)
def test_run_arguments_come_from_the_declared_paths(stage: str) -> None:
    """What ``main()`` hands to ``run()`` (``StageFiles.args``) is the stage's own: a declared
    path, a file inside a declared folder or the folder of declared files; and ``run()`` (the
    stage's function of its own name where there is no ``run``) takes each as a keyword."""
    import importlib
    import inspect

    declared = paths.STAGES[stage]
    own = (*declared.inputs, *declared.outs, *declared.metrics, *declared.plots)
    for keyword, path in declared.args.items():
        assert any(
            path == p or path.startswith(f"{p}/") or p.startswith(f"{path}/") for p in own
        ), f"{stage}: {keyword}={path!r} is none of the stage's declared paths"
    module = importlib.import_module(f"pipelines.{stage}")
    run = getattr(module, "run", None) or getattr(module, stage)
    parameters = inspect.signature(run).parameters
    if stage == "package":  # its inputs travel as one PackageInputs
        fields = {f.name for f in dataclasses.fields(module.PackageInputs)}
        parameters = {**parameters, **dict.fromkeys(fields)}
    missing = set(declared.args) - set(parameters)
    assert not missing, f"{stage}: run() takes no {sorted(missing)}"
