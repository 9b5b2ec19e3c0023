"""End to end with the packaging stage's own code: tiny models packaged by
``pipelines.package.package_candidate``, promoted through ``aliases.json``, served over HTTP."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from serving import limits
from serving.app import create_app
from serving.settings import ServingSettings
from tests.fixtures.store import NOW, artifact_store, set_alias
from tests.serving._server import live_server

API = "/api/v1/ai"


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pipelines.package import GENERATOR_FILES, WEAKNESS_FILES, Candidate, package_candidate

    src = artifact_store(tmp_path_factory.mktemp("pkg-src"))
    root = tmp_path_factory.mktemp("pkg") / "artifacts"
    gate = {"name": "auc_floor", "kind": "floor", "threshold": 0.5, "value": 0.8, "passed": True}
    for model, files, extra in (
        (
            "weakness",
            WEAKNESS_FILES,
            {"probability_output": "probabilities", "probability_column": 1},
        ),
        ("generator", GENERATOR_FILES, {}),
    ):
        fields = {"variant": "fp32", "metrics": {}, "gates": [gate], "gates_passed": True, **extra}
        for _ in range(2):  # the second call reuses the same content: still version 1
            rec = package_candidate(Candidate(model, src / model / "1", files, fields), root)
        assert rec["version"] == 1
        set_alias(root, model, "champion", 1)
    return root


@pytest.fixture(scope="module")
def client(packaged: Path) -> Iterator[httpx.Client]:
    app = create_app(
        weakness_ref="champion",
        generator_ref="champion",
        settings=ServingSettings(artifact_root=packaged, generator_max_attempts=1),
    )
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        yield c


def test_packaged_artifacts_serve_both_endpoints(client: httpx.Client, packaged: Path) -> None:
    assert client.get("/readyz").status_code == 200
    models = client.get(f"{API}/models").json()["models"]
    assert {(m["name"], m["version"]) for m in models} == {("weakness", "1"), ("generator", "1")}
    r = client.post(
        f"{API}/predict-weakness",
        json={"user_id": "u", "recent_quiz_scores": {"fractions": [0.1, 0.2]}, "now": NOW},
    )
    assert r.status_code == 200 and r.json()["model_version"] == "1"
    r = client.post(
        f"{API}/word-problem",
        json={
            "topic": "money",
            "keywords": ["coins"],
            "max_length": limits.MIN_COMPLETE_LENGTH,
            "seed": 2,
        },
    )
    assert r.status_code == 200 and r.json()["attempts"] == 1
    manifest = json.loads((packaged / "weakness" / "1" / "manifest.json").read_text())
    assert manifest["name"] == "weakness" and manifest["gates_passed"] is True


def test_packaged_artifact_tampered_after_packaging_is_refused(
    packaged: Path, tmp_path: Path
) -> None:
    root = tmp_path / "artifacts"
    shutil.copytree(packaged / "generator", root / "generator")
    tok = root / "generator" / "1" / "tokenizer.json"
    tok.write_text(tok.read_text().replace("apples", "pears"))
    app = create_app(generator_ref="champion", settings=ServingSettings(artifact_root=root))
    with live_server(app) as url, httpx.Client(base_url=url) as c:
        ready = c.get("/readyz")
        assert ready.status_code == 503 and "tokenizer.json" in ready.json()["errors"]["generator"]
