"""Artifact references: directory, version, latest, alias, ``models:/`` (alias file, REST)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from serving.store import ArtifactResolutionError, parse_registry_uri, resolve_artifact
from tests.pipelines._mlflow_server import free_port
from tests.pipelines._mlflow_server import mlflow_server as running_mlflow_server


def _version(root: Path, model: str, v: int) -> Path:
    d = root / model / str(v)
    d.mkdir(parents=True)
    (d / "manifest.json").write_text("{}")
    return d


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "artifacts"
    for v in (1, 2, 10):
        _version(root, "weakness", v)
    (root / "weakness" / "aliases.json").write_text(
        json.dumps({"champion": 2, "previous-champion": 1, "history": [1, 2]})
    )
    return root


@pytest.mark.parametrize(
    ("ref", "expected"),
    [("1", "1"), ("latest", "10"), ("champion", "2"), ("previous-champion", "1")],
)
def test_local_refs(store: Path, ref: str, expected: str) -> None:
    assert resolve_artifact(ref, "weakness", artifact_root=store) == store / "weakness" / expected


def test_directory_ref(store: Path) -> None:
    d = store / "weakness" / "2"
    assert resolve_artifact(str(d), "generator", artifact_root=store) == d


@pytest.mark.parametrize("ref", ["staging", "7", "", "models:/x"])
def test_unknown_refs_name_the_ref(store: Path, ref: str) -> None:
    with pytest.raises(ArtifactResolutionError) as err:
        resolve_artifact(ref, "weakness", artifact_root=store, tracking_uri="sqlite:///nope.db")
    assert ref in str(err.value) or "empty" in str(err.value)


def test_directory_without_manifest_refused(tmp_path: Path) -> None:
    with pytest.raises(ArtifactResolutionError, match=r"manifest\.json"):
        resolve_artifact(str(tmp_path), "weakness", artifact_root=tmp_path)


def test_parse_registry_uri() -> None:
    assert parse_registry_uri("models:/ludora-weakness@champion") == (
        "ludora-weakness",
        "champion",
        None,
    )
    assert parse_registry_uri("models:/ludora-weakness/3") == ("ludora-weakness", None, "3")
    with pytest.raises(ArtifactResolutionError):
        parse_registry_uri("models:/a/b/c")


@pytest.mark.parametrize("tracking_uri", [None, "sqlite:///unused.db", "file:///mlruns"])
def test_registry_alias_from_the_store_alias_file(store: Path, tracking_uri: str | None) -> None:
    """Without a tracking server, ``models:/name@alias`` reads the store's aliases.json."""
    for alias, v in (("champion", "2"), ("previous-champion", "1")):
        got = resolve_artifact(
            f"models:/ludora-weakness@{alias}",
            "weakness",
            artifact_root=store,
            tracking_uri=tracking_uri,
        )
        assert got == store / "weakness" / v


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        (
            "models:/ludora-weakness@staging",
            "'staging' is not a directory, a version or a set alias",
        ),
        ("models:/ludora-weakness/2", "registry version numbers need an http"),
        ("models:/ludora-ranker@champion", "unknown registered model 'ludora-ranker'"),
    ],
)
def test_registry_refs_a_local_store_cannot_answer(store: Path, ref: str, message: str) -> None:
    with pytest.raises(ArtifactResolutionError, match=message):
        resolve_artifact(ref, "weakness", artifact_root=store, tracking_uri="sqlite:///x.db")


def test_store_module_reads_no_mlflow_tables() -> None:
    src = Path(sys.modules["serving.store"].__file__ or "").read_text()
    assert "sqlite3" not in src and "SELECT" not in src


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A real ``mlflow server`` on a private SQLite store with two registered versions."""
    mlflow = pytest.importorskip("mlflow")
    base = tmp_path_factory.mktemp("registry")
    store = base / "artifacts"
    for v in (1, 2):
        _version(store, "weakness", v)
    db = f"sqlite:///{base / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=db, registry_uri=db)
    client.create_registered_model("ludora-weakness")
    for v in ("1", "2"):
        mv = client.create_model_version("ludora-weakness", source=str(store / "weakness" / v))
        client.set_model_version_tag(
            "ludora-weakness", mv.version, "ludora.artifact_dir", str(store / "weakness" / v)
        )
    client.set_registered_model_alias("ludora-weakness", "champion", "2")
    with running_mlflow_server(db, base) as url:
        yield url, store


@pytest.mark.slow
def test_rest_registry_of_a_real_mlflow_server(mlflow_server: tuple[str, Path]) -> None:
    url, store = mlflow_server
    for ref, v in (("models:/ludora-weakness@champion", "2"), ("models:/ludora-weakness/1", "1")):
        got = resolve_artifact(ref, "weakness", artifact_root=store, tracking_uri=url)
        assert got == store / "weakness" / v
    with pytest.raises(ArtifactResolutionError, match=r"registry answered HTTP 4\d\d"):
        resolve_artifact(
            "models:/ludora-weakness@staging", "weakness", artifact_root=store, tracking_uri=url
        )
    with pytest.raises(ArtifactResolutionError, match="registry unreachable"):
        resolve_artifact(
            "models:/ludora-weakness@champion",
            "weakness",
            artifact_root=store,
            tracking_uri=f"http://127.0.0.1:{free_port()}",
        )


def test_store_module_does_not_import_mlflow() -> None:
    import serving.store  # noqa: F401

    assert "serving.store" in sys.modules
    src = Path(sys.modules["serving.store"].__file__ or "").read_text()
    assert "import mlflow" not in src


def test_the_alias_log_is_not_offered_as_an_alias(store: Path) -> None:
    """`events` (the promotion log in aliases.json) was listed as an alias, then refused."""
    aliases = store / "weakness" / "aliases.json"
    data = json.loads(aliases.read_text())
    aliases.write_text(json.dumps({**data, "events": [{"event": "promote v2", "champion": 2}]}))
    with pytest.raises(ArtifactResolutionError) as err:
        resolve_artifact("events", "weakness", artifact_root=store)
    assert "aliases set: ['champion', 'previous-champion']" in str(err.value)


def test_a_truncated_alias_file_is_named(store: Path) -> None:
    aliases = store / "weakness" / "aliases.json"
    aliases.write_text('{"champion": ')
    with pytest.raises(ArtifactResolutionError) as err:
        resolve_artifact("champion", "weakness", artifact_root=store)
    assert f"{aliases}: not valid JSON" in str(err.value) and "\n" not in str(err.value)


def test_an_empty_reference_is_refused_not_the_champion(store: Path) -> None:
    with pytest.raises(ArtifactResolutionError, match="empty model reference"):
        resolve_artifact("", "weakness", artifact_root=store)


def test_a_registry_version_packaged_elsewhere_resolves_to_its_pulled_copy(tmp_path: Path) -> None:
    """``ludora.artifact_dir`` names a folder on the packaging machine (a CI runner); a host
    that pulled the same version serves its own copy, only when the content matches."""
    from serving.store import _pulled_copy

    local = _version(tmp_path, "weakness", 4)
    (local / "manifest.json").write_text(json.dumps({"content_sha256": "abc"}))
    tags = {
        "ludora.artifact_dir": "/runner/work/artifacts/weakness/4",
        "ludora.version": "4",
        "ludora.content_sha256": "abc",
    }
    uri = "models:/ludora-weakness@champion"
    assert _pulled_copy(uri, "ludora-weakness", tags, tmp_path) == local
    with pytest.raises(ArtifactResolutionError, match=r"does not hold the registry's content"):
        _pulled_copy(uri, "ludora-weakness", {**tags, "ludora.content_sha256": "other"}, tmp_path)
    with pytest.raises(ArtifactResolutionError, match="/runner/work"):
        _pulled_copy(uri, "ludora-weakness", {**tags, "ludora.version": "5"}, tmp_path)
