"""Two real packaging processes at once (as `dvc queue start -j 2` runs them), and kills.

Each worker is a separate Python process packaging tiny weakness exports into ONE artifact store
and ONE MLflow SQLite store, interleaved with MLflow run logging like a training stage's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from serving.manifest import MANIFEST_NAME, list_versions, read_aliases, verify_artifact
from tests.fixtures.store import fresh_tracking_uri
from tests.fixtures.weakness import make_weakness_export

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def _exports(tmp_path: Path, names: list[str]) -> list[Path]:
    """One weakness export per name; each has its own thresholds, hence its own content."""
    out = []
    for name in names:
        src = tmp_path / "exports" / name
        src.mkdir(parents=True)
        make_weakness_export(src)
        if name != "shared":
            (src / "thresholds.json").write_text(
                json.dumps({"thresholds": [0.3, 0.6], "labels": ["low", "mid", name]})
            )
        out.append(src)
    return out


def _spawn(tmp_path: Path, tag: str, env: dict[str, str], **spec: object) -> subprocess.Popen:
    path = tmp_path / f"spec-{tag}.json"
    path.write_text(json.dumps(spec, default=str))
    return subprocess.Popen(
        [sys.executable, "-m", "tests.pipelines._package_worker", str(path)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture()
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "MLFLOW_TRACKING_URI": fresh_tracking_uri(tmp_path)}


def _registry_versions(uri: str) -> list[dict[str, str]]:
    from mlflow import MlflowClient

    found = MlflowClient(tracking_uri=uri).search_model_versions("name='ludora-weakness'")
    return [dict(mv.tags) for mv in found]


def test_two_packaging_processes_at_once(tmp_path: Path, env: dict[str, str]) -> None:
    root = tmp_path / "artifacts"
    a = _exports(tmp_path / "a", ["a1", "a2", "shared"])
    b = _exports(tmp_path / "b", ["b1", "b2", "shared"])
    start = tmp_path / "go"
    procs = [
        _spawn(
            tmp_path,
            tag,
            env,
            artifacts_root=root,
            experiment="concurrent",
            sources=srcs,
            start_file=start,
            log_runs=2,
        )
        for tag, srcs in (("a", a), ("b", b))
    ]
    start.touch()  # both are past their imports and MLflow set-up: go together
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
        assert "database is locked" not in err
    results = [json.loads(line) for out, _ in outs for line in out.splitlines()]
    by_source = {"/".join(Path(r["source"]).parts[-3::2]): r for r in results}
    assert len(results) == 6
    # 5 distinct contents (the "shared" export is the same bytes in both workers): 5 versions
    assert list_versions(root / "weakness") == [1, 2, 3, 4, 5]
    unique = [by_source[k]["version"] for k in ("a/a1", "a/a2", "b/b1", "b/b2")]
    assert len(set(unique)) == 4
    shared = {by_source["a/shared"]["version"], by_source["b/shared"]["version"]}
    assert len(shared) == 1 and shared.isdisjoint(unique)  # one packaged it, the other reused
    assert sorted(r["status"] for r in results).count("reused") == 1
    for v in range(1, 6):
        manifest = verify_artifact(root / "weakness" / str(v))  # files intact, sha256 match
        assert manifest["version"] == v
    assert not [p.name for p in (root / "weakness").iterdir() if p.name.endswith(".tmp")]
    tags = _registry_versions(env["MLFLOW_TRACKING_URI"])
    assert sorted(int(t["ludora.version"]) for t in tags) == [1, 2, 3, 4, 5]  # one entry each
    assert {r["registry_version"] for r in results} == {str(i) for i in range(1, 6)}
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name("concurrent")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    assert len([r for r in runs if r.info.run_name.startswith("package-")]) == 5
    assert len([r for r in runs if r.info.run_name.startswith("train-like-")]) == 12


def _state(root: Path) -> dict[str, object]:
    model_root = root / "weakness"
    return {
        "entries": sorted(p.name for p in model_root.iterdir()) if model_root.is_dir() else [],
        "aliases": read_aliases(model_root),
    }


def _assert_consistent(root: Path, uri: str) -> None:
    """No version without a manifest; every alias (file and registry) points at a version."""
    from mlflow import MlflowClient

    model_root = root / "weakness"
    for v in list_versions(model_root):
        assert (model_root / str(v) / MANIFEST_NAME).is_file()
        verify_artifact(model_root / str(v))
    aliases = read_aliases(model_root)
    for key in ("champion", "previous-champion"):
        if aliases.get(key) is not None:
            assert (model_root / str(aliases[key]) / MANIFEST_NAME).is_file()
    client = MlflowClient(tracking_uri=uri)
    for mv in client.search_model_versions("name='ludora-weakness'"):
        assert (Path(mv.tags["ludora.artifact_dir"]) / MANIFEST_NAME).is_file()
    try:
        rm = client.get_registered_model("ludora-weakness")
    except Exception:
        return
    for alias, version in rm.aliases.items():
        mv = client.get_model_version("ludora-weakness", version)
        assert (Path(mv.tags["ludora.artifact_dir"]) / MANIFEST_NAME).is_file(), alias


@pytest.mark.parametrize("point", ["package:copied", "register:logged"])
def test_killed_package_leaves_store_and_registry_usable(
    tmp_path: Path, env: dict[str, str], point: str
) -> None:
    root = tmp_path / "artifacts"
    (first,) = _exports(tmp_path / "first", ["v1"])
    (second,) = _exports(tmp_path / "second", ["v2"])
    spec = {"artifacts_root": root, "experiment": "crash"}
    ok = _spawn(tmp_path, "ok", env, sources=[first], **spec)
    assert ok.wait(timeout=120) == 0, ok.communicate()[1][-2000:]
    before = _state(root)
    killed = _spawn(tmp_path, "kill", {**env, "LUDORA_CRASH_AT": point}, sources=[second], **spec)
    assert killed.wait(timeout=120) == -signal.SIGKILL
    killed.communicate()
    _assert_consistent(root, env["MLFLOW_TRACKING_URI"])
    assert list_versions(root / "weakness") == ([1] if point == "package:copied" else [1, 2])
    assert len(_registry_versions(env["MLFLOW_TRACKING_URI"])) == 1  # nothing registered
    if point == "package:copied":  # only a hidden leftover, swept by the next writer
        hidden = [e for e in _state(root)["entries"] if e not in before["entries"]]  # type: ignore[union-attr]
        assert all(e.startswith(".") and e.endswith(".tmp") for e in hidden)
    again = _spawn(tmp_path, "again", env, sources=[second], **spec)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err[-2000:]
    (result,) = [json.loads(line) for line in out.splitlines()]
    assert result["version"] == 2 and result["registry_version"] == "2"
    assert _state(root)["entries"] == [".lock", "1", "2"]  # leftovers swept
    tags = _registry_versions(env["MLFLOW_TRACKING_URI"])
    assert sorted(t["ludora.version"] for t in tags) == ["1", "2"]
    _assert_consistent(root, env["MLFLOW_TRACKING_URI"])


def _champions(root: Path, uri: str) -> tuple[int | None, int | None, list[int]]:
    """(registry champion, aliases.json champion, registry history)."""
    from mlflow import MlflowClient

    from training.packaging import registry as reg

    client = MlflowClient(tracking_uri=uri)
    mv = reg.current_champion(client, "ludora-weakness")
    in_registry = None if mv is None else int(mv.tags["ludora.version"])
    return (
        in_registry,
        read_aliases(root / "weakness")["champion"],
        reg.history(client, "ludora-weakness"),
    )


@pytest.mark.parametrize("point", ["promote:history", "promote:aliases"])
def test_killed_promote_never_points_at_nothing(
    tmp_path: Path, env: dict[str, str], point: str
) -> None:
    root = tmp_path / "artifacts"
    uri = env["MLFLOW_TRACKING_URI"]
    test_file = tmp_path / "test.parquet"
    v1, v2 = _exports(tmp_path / "x", ["v1", "v2"])
    make_weakness_export(tmp_path / "ref").to_parquet(test_file, index=False)
    spec = {"artifacts_root": root, "experiment": "crash", "test_file": test_file}
    for step in (
        {"sources": [v1, v2]},
        {"action": "promote", "version": 1},
    ):
        proc = _spawn(tmp_path, "setup", env, **spec, **step)
        assert proc.wait(timeout=120) == 0, proc.communicate()[1][-2000:]
    assert _champions(root, uri) == (1, 1, [1])
    killed = _spawn(
        tmp_path, "kill", {**env, "LUDORA_CRASH_AT": point}, **spec, action="promote", version=2
    )
    assert killed.wait(timeout=120) == -signal.SIGKILL
    killed.communicate()
    _assert_consistent(root, uri)
    in_registry, mirrored, history = _champions(root, uri)
    assert mirrored == 1  # serving's alias file still names the old champion
    assert in_registry == (1 if point == "promote:history" else 2)
    assert history == [1, 2]  # the decision was recorded before any alias moved
    # the next command finishes the interrupted promotion, then does its own work
    back = _spawn(tmp_path, "rollback", env, **spec, action="rollback")
    out, err = back.communicate(timeout=120)
    assert back.returncode == 0, err[-2000:]
    assert json.loads(out) == [2, 1]
    assert _champions(root, uri) == (1, 1, [1])
    _assert_consistent(root, uri)


SETUP_AT_ONCE = """
import sys, time
from pathlib import Path
import mlflow  # imported before the barrier: both open the store at the same instant
from pipelines.common import setup_mlflow
go = Path(sys.argv[1])
Path(sys.argv[2]).touch()
while not go.exists():
    time.sleep(0.005)
setup_mlflow("weakness")
"""


def test_two_stages_open_a_new_store_at_once(tmp_path: Path) -> None:
    """A fresh mlflow.db opened by two workers at once: without the store lock one of them
    failed in MLflow's schema migration (alembic "expected to match one row ... 0 found")."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'new' / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SETUP_AT_ONCE, str(go), str(tmp_path / f"ready{i}")],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready{i}").exists() for i in range(2)):
        assert time.monotonic() < deadline, "workers never got past their imports"
        time.sleep(0.05)
    go.touch()  # both have imported mlflow: they open the new store at the same instant
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    exps = [e.name for e in MlflowClient(tracking_uri=uri).search_experiments()]
    assert sorted(exps) == ["Default", "weakness"]
