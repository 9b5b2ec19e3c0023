"""Artifact references: directory, version, latest, alias, and MLflow registry URIs (no mlflow)."""

from __future__ import annotations

import json
import sqlite3
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from serving.store import ArtifactResolutionError, parse_registry_uri, resolve_artifact


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


def _registry_tables(db: Path, store: Path) -> None:
    """The two MLflow registry tables serving reads, with MLflow's column layout."""
    con = sqlite3.connect(db)
    con.execute(
        "CREATE TABLE registered_model_aliases (workspace VARCHAR(63), name VARCHAR(256), "
        "alias VARCHAR(256), version INTEGER)"
    )
    con.execute(
        "CREATE TABLE model_version_tags (workspace VARCHAR(63), name VARCHAR(256), "
        "version INTEGER, key VARCHAR(250), value TEXT)"
    )
    con.execute(
        "INSERT INTO registered_model_aliases VALUES ('default', 'ludora-weakness', 'champion', 2)"
    )
    for v in (1, 2):
        con.execute(
            "INSERT INTO model_version_tags VALUES ('default', 'ludora-weakness', ?, "
            "'ludora.artifact_dir', ?)",
            (v, str(store / "weakness" / str(v))),
        )
    con.commit()
    con.close()


def test_sqlite_registry_tables(store: Path, tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    _registry_tables(db, store)
    uri = f"sqlite:///{db}"
    for ref, v in (("models:/ludora-weakness@champion", "2"), ("models:/ludora-weakness/1", "1")):
        got = resolve_artifact(ref, "weakness", artifact_root=store, tracking_uri=uri)
        assert got == store / "weakness" / v
    with pytest.raises(ArtifactResolutionError, match="no 'staging'"):
        resolve_artifact(
            "models:/ludora-weakness@staging", "weakness", artifact_root=store, tracking_uri=uri
        )
    with pytest.raises(ArtifactResolutionError, match="not found"):
        resolve_artifact(
            "models:/ludora-weakness@champion",
            "weakness",
            artifact_root=store,
            tracking_uri=f"sqlite:///{tmp_path / 'missing.db'}",
        )


@pytest.mark.slow
def test_sqlite_registry_real_mlflow_store(store: Path, tmp_path: Path) -> None:
    """A real MLflow registry (sqlite) resolved by stdlib sqlite3; serving never imports mlflow."""
    mlflow = pytest.importorskip("mlflow")
    db = tmp_path / "mlflow.db"
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}", registry_uri=f"sqlite:///{db}")
    client.create_registered_model("ludora-weakness")
    for v in ("1", "2"):
        mv = client.create_model_version("ludora-weakness", source=str(store / "weakness" / v))
        client.set_model_version_tag(
            "ludora-weakness", mv.version, "ludora.artifact_dir", str(store / "weakness" / v)
        )
    client.set_registered_model_alias("ludora-weakness", "champion", "2")
    uri = f"sqlite:///{db}"
    got = resolve_artifact(
        "models:/ludora-weakness@champion", "weakness", artifact_root=store, tracking_uri=uri
    )
    assert got == store / "weakness" / "2"
    got = resolve_artifact(
        "models:/ludora-weakness/1", "weakness", artifact_root=store, tracking_uri=uri
    )
    assert got == store / "weakness" / "1"
    with pytest.raises(ArtifactResolutionError, match="no 'staging'"):
        resolve_artifact(
            "models:/ludora-weakness@staging", "weakness", artifact_root=store, tracking_uri=uri
        )


class _Registry(BaseHTTPRequestHandler):
    """Answers like MLflow's REST API for one alias and one version."""

    artifact_dir = ""

    def do_GET(self) -> None:
        url = urlparse(self.path)
        q = parse_qs(url.query)
        tags = [{"key": "ludora.artifact_dir", "value": self.artifact_dir}]
        by_alias = url.path.endswith("/registered-models/alias") and q.get("alias") == ["champion"]
        by_version = url.path.endswith("/model-versions/get") and q.get("version") == ["2"]
        if by_alias or by_version:
            body = {"model_version": {"name": q["name"][0], "version": "2", "tags": tags}}
        else:
            self.send_response(404)
            self.end_headers()
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def rest_registry(store: Path) -> Iterator[str]:
    _Registry.artifact_dir = str(store / "weakness" / "2")
    httpd = HTTPServer(("127.0.0.1", 0), _Registry)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_rest_registry(store: Path, rest_registry: str) -> None:
    for ref in ("models:/ludora-weakness@champion", "models:/ludora-weakness/2"):
        got = resolve_artifact(ref, "weakness", artifact_root=store, tracking_uri=rest_registry)
        assert got == store / "weakness" / "2"
    with pytest.raises(ArtifactResolutionError, match="HTTP 404"):
        resolve_artifact(
            "models:/ludora-weakness@nope",
            "weakness",
            artifact_root=store,
            tracking_uri=rest_registry,
        )


def test_store_module_does_not_import_mlflow() -> None:
    import serving.store  # noqa: F401

    assert "serving.store" in sys.modules
    src = Path(sys.modules["serving.store"].__file__ or "").read_text()
    assert "import mlflow" not in src
