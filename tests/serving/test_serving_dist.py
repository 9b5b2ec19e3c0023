"""The ``ludora-serving`` wheel: one import name, no repo imports, and it serves like ``serving``.

A backend with its own ``core``, ``data``, ``features`` and ``serving`` packages imports them
first, then serves through ``ludora_serving``'s CLI; the answers must equal this repo's
``serving`` on the same tiny artifacts, and no module of this repository may be loaded. The fast
test unpacks the wheel onto ``sys.path`` behind the backend's packages; the ``venv`` one installs
it with pip into a fresh virtualenv holding only ``requirements-serving.txt`` (~1-2 min with
pip's warm cache).
"""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from export.serving_dist import (
    PACKAGE,
    RENAMED,
    ServingDistError,
    build_wheel,
    import_name,
    read_requirements,
)
from tests.fixtures.http_probe import PROBE_HELPERS, run_isolated, serving_venv
from tests.fixtures.imports import absolute_imports

REPO = Path(__file__).resolve().parents[2]
COLLIDING = ("core", "data", "features", "serving")
HEAVY = ("torch", "transformers", "lightgbm", "sklearn", "pandas", "mlflow", "onnx", "optimum")


def _requests() -> dict[str, Any]:
    from tests.fixtures.store import NOW

    return {
        "weakness": [
            {"user_id": "u1", "average_score_per_topic": {"fractions": 0.55, "addition": 0.9}},
            {
                "user_id": "u2",
                "recent_quiz_scores": {"fractions": [0.4, 0.6, 0.5]},
                "time_spent_per_topic_minutes": {"fractions": 35},
                "recent_attempts": {
                    "division": [{"score": 0.3, "timestamp": NOW - 3600, "hints_used": 2}]
                },
            },
        ],
        "word_problem": [
            {"topic": "fractions", "keywords": ["apples", "coins"], "max_length": 24, "seed": 3}
        ],
        "now": NOW,
    }


# The probe: a backend's entry point. It imports the backend's own colliding packages first
# (when BACKEND_PACKAGES=1), then runs `<pkg>.cli serve` in the main thread while a thread posts
# the requests, records the answers and what got imported, and stops the server with SIGINT.
PROBE = (
    PROBE_HELPERS
    + r"""
import importlib, os, signal, socket, sys, threading
from pathlib import Path

pkg, store, out = sys.argv[1], sys.argv[2], sys.argv[3]
requests = json.loads(sys.argv[4])
backend = os.environ.get("BACKEND_PACKAGES") == "1"
if backend:
    import core, core.schema, data, data.schema, features, features.kernel, serving
    import serving.schemas
    marks = [core.MARK, core.schema.MARK, data.MARK, data.schema.MARK, features.MARK,
             features.kernel.MARK, serving.MARK, serving.schemas.MARK]
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
base = f"http://127.0.0.1:{port}"


def probe():
    result = {"ready": False}
    try:
        result["ready"] = wait_ready(base)
        result["weakness"] = [post(base, "/api/v1/ai/predict-weakness",
                                   {**b, "now": requests["now"]}) for b in requests["weakness"]]
        result["word_problem"] = [post(base, "/api/v1/ai/word-problem", b)
                                  for b in requests["word_problem"]]
        roots = [Path(p) for p in os.environ["REPO_PACKAGE_DIRS"].split(os.pathsep)]
        result["repo_modules"] = sorted(
            name for name, mod in list(sys.modules.items())
            if getattr(mod, "__file__", None)
            and any(Path(mod.__file__).resolve().is_relative_to(r) for r in roots)
        )
        result["heavy_modules"] = sorted(m for m in os.environ["HEAVY"].split(",")
                                         if m in sys.modules)
        if backend:
            import core, data, features, serving
            result["backend_marks"] = [core.MARK, core.schema.MARK, data.MARK, data.schema.MARK,
                                       features.MARK, features.kernel.MARK, serving.MARK,
                                       serving.schemas.MARK]
        result["package_file"] = sys.modules[pkg].__file__
    finally:
        with open(out, "w") as fh:
            json.dump(result, fh)
        os.kill(os.getpid(), signal.SIGINT)


threading.Thread(target=probe, daemon=True).start()
importlib.import_module(f"{pkg}.cli").main(
    ["serve", "--port", str(port), "--weakness", "champion", "--generator", "champion",
     "--artifact-root", store])
"""
)


def write_backend(root: Path) -> Path:
    """A backend's source tree: its own ``core``, ``data``, ``features`` and ``serving`` packages,
    with modules named like ours or like what used to be ours (``core/schema.py``,
    ``data/schema.py``, ``features/kernel.py``, ``serving/schemas.py``) that hold none of our
    names, so any stray repo import fails or reads the wrong module."""
    for pkg, sub in (
        ("core", "schema"),
        ("data", "schema"),
        ("features", "kernel"),
        ("serving", "schemas"),
    ):
        (root / pkg).mkdir(parents=True, exist_ok=True)
        (root / pkg / "__init__.py").write_text(f"MARK = 'backend {pkg}'\n")
        (root / pkg / f"{sub}.py").write_text(f"MARK = 'backend {pkg}.{sub}'\n")
    return root


BACKEND_MARKS = [
    "backend core",
    "backend core.schema",
    "backend data",
    "backend data.schema",
    "backend features",
    "backend features.kernel",
    "backend serving",
    "backend serving.schemas",
]


def run_probe(
    python: str, pkg: str, store: Path, probe_dir: Path, *, pythonpath: str | None, backend: bool
) -> dict[str, Any]:
    """Run the probe with ``python``; return what it recorded."""
    probe = probe_dir / "probe.py"
    probe.write_text(PROBE)
    out = probe_dir / f"result-{pkg}-{os.getpid()}-{time.monotonic_ns()}.json"
    env = {
        # this repo's packages (not .venv, which lives in the repo too)
        "REPO_PACKAGE_DIRS": os.pathsep.join(str(p.parent) for p in REPO.glob("*/__init__.py")),
        "HEAVY": ",".join(HEAVY),
        "BACKEND_PACKAGES": "1" if backend else "0",
    }
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    run_isolated(
        [python, str(probe), pkg, str(store), str(out), json.dumps(_requests())],
        cwd=probe_dir,
        env=env,
    )
    return dict(json.loads(out.read_text()))


def answers(result: dict[str, Any]) -> dict[str, Any]:
    return {k: result[k] for k in ("ready", "weakness", "word_problem")}


def assert_served_alone(result: dict[str, Any], site: Path, expected: dict[str, Any]) -> None:
    """The package installed in ``site`` served by itself: no module of this repo and nothing
    heavy loaded, the backend's own ``core`` / ``data`` / ``features`` / ``serving`` still what
    those names import, and the same answers as this repo's ``serving``."""
    assert result["repo_modules"] == []
    assert result["backend_marks"] == BACKEND_MARKS
    assert result["heavy_modules"] == []
    assert Path(result["package_file"]).resolve().is_relative_to(site)
    assert answers(result) == expected


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.fixtures.store import champion_store

    return champion_store(tmp_path_factory, "dist-store")


@pytest.fixture(scope="module")
def expected(store: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The answers of this repo's ``serving`` (same probe, the repo on the path, no backend)."""
    result = run_probe(
        sys.executable,
        "serving",
        store,
        tmp_path_factory.mktemp("probe-repo"),
        pythonpath=str(REPO),
        backend=False,
    )
    assert result["ready"] and result["heavy_modules"] == []
    assert {"serving.cli", "core.online", "core.schema"} <= set(result["repo_modules"])
    assert Path(result["package_file"]).resolve().is_relative_to(REPO)
    assert [status for status, _ in result["weakness"] + result["word_problem"]] == [200] * 3
    return answers(result)


# ----------------------------------------------------------------------------- the wheel itself


def test_wheel_holds_only_ludora_serving(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        record = zf.read(next(n for n in names if n.endswith(".dist-info/RECORD"))).decode()
        meta = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        blobs = {n: zf.read(n) for n in names}
    tops = {n.split("/")[0] for n in names}
    assert tops == {PACKAGE, wheel.name.split("-py3")[0] + ".dist-info"}
    # every serving and core module is carried (globbed, so a renamed or new module is too), and
    # nothing else of the repository
    for src in (REPO / "serving").glob("*.py"):
        assert f"{PACKAGE}/{src.name}" in names, src.name
    for src in (REPO / "core").glob("*.py"):
        assert f"{PACKAGE}/_core/{src.name}" in names, src.name
    # and the data files beside them, byte for byte (serving/noun_ranges.json)
    data = [*(REPO / "serving").glob("*.json"), *(REPO / "core").glob("*.json")]
    assert REPO / "serving" / "noun_ranges.json" in data
    for src in data:
        inside = "" if src.parent.name == "serving" else "_core/"
        assert blobs[f"{PACKAGE}/{inside}{src.name}"] == src.read_bytes(), src.name
    assert {n.split("/")[1] for n in names if n.startswith(f"{PACKAGE}/") and n.count("/") > 1} == {
        "_core"
    }
    # RECORD matches every file; METADATA pins exactly requirements-serving.txt
    for line in record.splitlines():
        path, digest, size = line.rsplit(",", 2)
        if digest:
            sha = base64.urlsafe_b64encode(hashlib.sha256(blobs[path]).digest()).rstrip(b"=")
            assert digest == "sha256=" + sha.decode() and int(size) == len(blobs[path]), path
    reqs = read_requirements(REPO / "requirements-serving.txt")
    fields = [line.split(": ", 1) for line in meta.splitlines()]
    assert [v for k, v in fields if k == "Requires-Dist"] == [str(r) for r in reqs]
    assert [v for k, v in fields if k == "Name"] == ["ludora-serving"]


def test_no_vendored_module_imports_a_repo_package(wheel: Path) -> None:
    repo_pkgs = {p.parent.name for p in REPO.glob("*/__init__.py")}
    allowed = {import_name(r) for r in read_requirements(REPO / "requirements-serving.txt")}
    allowed |= {"starlette", PACKAGE}
    seen: set[str] = set()
    with zipfile.ZipFile(wheel) as zf:
        for name in (n for n in zf.namelist() if n.endswith(".py")):
            for line, mod in absolute_imports(ast.parse(zf.read(name), name)):
                top = mod.split(".")[0]
                seen.add(top)
                assert top not in repo_pkgs, f"{name}:{line} imports {mod}"
                assert top in allowed or top in sys.stdlib_module_names, f"{name}: {mod}"
    assert {PACKAGE, "numpy", "onnxruntime", "fastapi"} <= seen  # the walk saw real imports


def test_the_only_edit_is_the_listed_rename(wheel: Path) -> None:
    """Every carried module is its repository source, except import lines naming a package of
    RENAMED, which name its wheel name instead (the one exception the build makes)."""
    back = {new: old for old, new in RENAMED.items()}
    pattern = re.compile("|".join(re.escape(n) for n in sorted(back, key=len, reverse=True)))
    renamed: set[str] = set()
    with zipfile.ZipFile(wheel) as zf:
        for top, target in RENAMED.items():
            for src in sorted((REPO / top).glob("*.py")):
                text = zf.read("/".join([*target.split("."), src.name])).decode()
                ours = src.read_text()
                assert len(text.splitlines()) == len(ours.splitlines()), src
                for new, old in zip(text.splitlines(), ours.splitlines(), strict=True):
                    if new != old:
                        assert new.lstrip().startswith(("from ", "import ")), (src, new)
                        assert pattern.sub(lambda m: back[m.group(0)], new) == old, (src, new)
                        renamed.add(top)
    assert renamed == set(RENAMED)  # both packages' imports were renamed somewhere


def test_the_carried_modules_read_their_data_files(wheel: Path, tmp_path: Path) -> None:
    """Unpacked alone, the wheel's modules find their data beside them (the served probe below
    renders no sizes with its tiny generator, so this asks for the tables directly)."""
    from serving.sizes import SIZES

    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    code = f"import json; from {PACKAGE}.sizes import SIZES; print(json.dumps(SIZES))"
    out = run_isolated([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(site)})
    assert json.loads(out) == json.loads(json.dumps(SIZES))


def test_build_is_reproducible(wheel: Path, tmp_path: Path) -> None:
    assert build_wheel(tmp_path).read_bytes() == wheel.read_bytes()


def _repo_copy(root: Path) -> Path:
    for name in ("serving", "core", "features", "data"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "training").mkdir()
    (root / "training" / "__init__.py").write_text("")
    for name in ("pyproject.toml", "requirements-serving.txt"):
        shutil.copy2(REPO / name, root / name)
    return root


@pytest.mark.parametrize("source", ["serving/keywords.py", "core/io.py"])
@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("from features.build import build_features", "imports features.build, which"),
        ("from data.params import require", "imports data.params, which"),
        ("from training.weakness import train", "imports training.weakness, which"),
        ("import pandas as pd", "imports pandas, which is neither"),
        ("import serving.limits", "'import serving.limits' binds the repo name 'serving'"),
        ("from ..training import weakness", "relative import leaves its package"),
    ],
)
def test_build_fails_when_a_carried_module_imports_what_the_wheel_cannot_carry(
    tmp_path: Path, source: str, line: str, message: str
) -> None:
    repo = _repo_copy(tmp_path / "repo")
    module = repo / source
    text = module.read_text().rstrip("\n") + "\n"
    lineno = text.count("\n") + 1
    module.write_text(f"{text}{line}\n")
    with pytest.raises(ServingDistError) as err:
        build_wheel(tmp_path / "out", repo=repo)
    assert str(err.value).startswith(f"{source}:{lineno}: ")
    assert message in str(err.value)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_build_rewrites_function_local_and_aliased_imports(tmp_path: Path) -> None:
    repo = _repo_copy(tmp_path / "repo")
    module = repo / "serving" / "keywords.py"
    module.write_text(
        module.read_text()
        + "\n\ndef _probe():  # comment naming serving.limits stays\n"
        + "    import serving.limits as lim; from core.spec import validate_spec\n"
        + "    return lim, validate_spec\n"
    )
    with zipfile.ZipFile(build_wheel(tmp_path / "out", repo=repo)) as zf:
        text = zf.read(f"{PACKAGE}/keywords.py").decode()
    assert (
        "    import ludora_serving.limits as lim; "
        "from ludora_serving._core.spec import validate_spec\n"
    ) in text
    assert "# comment naming serving.limits stays" in text


# ----------------------------------------------------------------------------- it serves


def test_wheel_serves_beside_a_backends_colliding_packages(
    wheel: Path, store: Path, expected: dict[str, Any], tmp_path: Path
) -> None:
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    backend = write_backend(tmp_path / "backend")
    # the backend first: its data / features / serving win every lookup of those names
    result = run_probe(
        sys.executable,
        PACKAGE,
        store,
        tmp_path,
        pythonpath=f"{backend}{os.pathsep}{site}",
        backend=True,
    )
    assert_served_alone(result, site, expected)


@pytest.mark.slow
@pytest.mark.venv
def test_wheel_installs_and_serves_in_a_light_venv(
    wheel: Path, store: Path, expected: dict[str, Any], tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    pip = [str(serving_venv(venv)), "-m", "pip", "--disable-pip-version-check"]
    # --no-index: the wheel's pinned Requires-Dist must be met by requirements-serving.txt alone
    t0 = time.perf_counter()
    inst = subprocess.run(
        [*pip, "install", "-q", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert inst.returncode == 0, inst.stderr[-2000:]
    install_s = time.perf_counter() - t0
    purelib = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = Path(
        subprocess.check_output([str(venv / "bin/python"), "-c", purelib], text=True).strip()
    )
    # the install added no common top-level name; then the backend installs its own beside it
    assert not [n for n in COLLIDING if (site / n).exists()]
    write_backend(site)
    assert subprocess.run([*pip, "check"], capture_output=True, timeout=120).returncode == 0
    cli = subprocess.run(
        [str(venv / "bin/ludora-serving"), "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0 and "--artifact-root" in cli.stdout, cli.stderr[-2000:]
    result = run_probe(
        str(venv / "bin/python"), PACKAGE, store, tmp_path, pythonpath=None, backend=True
    )
    assert_served_alone(result, site, expected)
    size = wheel.stat().st_size
    sys.stderr.write(f"ludora-serving wheel: {size} bytes, pip install {install_s:.1f} s\n")


@pytest.mark.parametrize(
    "line",
    ["numpy>=2", "numpy", "numpy==2.4.6,<3", "numpy[extra]==2.4.6", "numpy==2.4.6; os_name=='nt'"],
)
def test_requirements_must_be_exact_pins(tmp_path: Path, line: str) -> None:
    path = tmp_path / "requirements-serving.txt"
    path.write_text(f"# pins\ntokenizers==0.22.2\n{line}\n")
    with pytest.raises(ServingDistError, match=r"requirements-serving.txt:3: expected 'name==ver"):
        read_requirements(path)


def test_requirements_give_pins_and_import_names(tmp_path: Path) -> None:
    path = tmp_path / "requirements-serving.txt"
    path.write_text("pydantic-settings==2.16.3  # settings\n\nnumpy==2.4.6\n")
    reqs = read_requirements(path)
    assert [str(r) for r in reqs] == ["pydantic-settings==2.16.3", "numpy==2.4.6"]
    assert [import_name(r) for r in reqs] == ["pydantic_settings", "numpy"]
