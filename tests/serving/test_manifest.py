"""Manifest verification: every file's sha256 and size, ONNX io names, gates."""

from __future__ import annotations

import json

import pytest

from pipelines.package import package_candidate, weakness_candidate
from serving.manifest import (
    ManifestError,
    content_hash,
    list_versions,
    load_manifest,
    read_aliases,
    seal,
    verify_artifact,
)
from tests.fixtures.weakness import make_weakness_export


@pytest.fixture()
def artifact(tmp_path):
    src = tmp_path / "onnx"
    src.mkdir()
    make_weakness_export(src)
    result = package_candidate(weakness_candidate(src, auc_floor=0.5), tmp_path / "artifacts")
    return tmp_path / "artifacts" / "weakness" / str(result["version"])


def test_verify_accepts_an_untouched_artifact(artifact):
    manifest = verify_artifact(artifact)
    assert manifest["name"] == "weakness" and manifest["version"] == 1
    assert set(manifest["files"]) == {
        "model.onnx",
        "calibration.json",
        "thresholds.json",
        "feature_spec.json",
    }
    assert manifest["onnx"]["model.onnx"]["inputs"][0]["name"] == "features"
    assert manifest["content_sha256"] == content_hash(manifest["files"])


def test_tampered_file_fails_sha256_naming_the_file(artifact):
    path = artifact / "thresholds.json"
    text = path.read_text()
    path.write_text(text.replace("0.3", "0.4"))  # same size, different bytes
    assert len(path.read_text()) == len(text)
    with pytest.raises(ManifestError, match=r"thresholds\.json: sha256 .* differs"):
        verify_artifact(artifact, check_io=False)


def test_resized_or_missing_file_is_refused(artifact):
    with (artifact / "model.onnx").open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ManifestError, match=r"model\.onnx: size"):
        verify_artifact(artifact)
    (artifact / "model.onnx").unlink()
    with pytest.raises(ManifestError, match=r"model\.onnx: listed in the manifest but missing"):
        verify_artifact(artifact)


def test_io_names_must_match_the_manifest(artifact):
    manifest = json.loads((artifact / "manifest.json").read_text())
    manifest["onnx"]["model.onnx"]["inputs"][0]["name"] = "x"
    (artifact / "manifest.json").write_text(json.dumps(seal(manifest)))  # digest recomputed
    with pytest.raises(ManifestError, match=r"model\.onnx: ONNX inputs \['features'\] differ"):
        verify_artifact(artifact)


def test_failed_gates_and_bad_schema_are_refused(artifact):
    manifest = json.loads((artifact / "manifest.json").read_text())
    failed = [{**g, "passed": False} for g in manifest["gates"]]
    sealed = seal({**manifest, "gates": failed, "gates_passed": False})
    (artifact / "manifest.json").write_text(json.dumps(sealed))
    with pytest.raises(ManifestError, match="gates did not pass"):
        verify_artifact(artifact, check_io=False)
    (artifact / "manifest.json").write_text(json.dumps({**manifest, "schema_version": 9}))
    with pytest.raises(ManifestError, match="schema_version 9"):
        load_manifest(artifact)
    del manifest["files"]
    (artifact / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match=r"missing key\(s\) \['files'\]"):
        load_manifest(artifact)


def test_versions_and_aliases_helpers(tmp_path):
    root = tmp_path / "weakness"
    assert list_versions(root) == []
    for v in ("1", "10", "2", "notes"):
        (root / v).mkdir(parents=True)
    assert list_versions(root) == [1, 2, 10]
    assert read_aliases(root) == {"champion": None, "history": []}


# A forged manifest: the files still match their sha256, the metadata vouching for them was
# edited. Serve used to start, /readyz 200, /api/v1/ai/models reporting the forged value.


def _edit(artifact, change, *, reseal):
    manifest = json.loads((artifact / "manifest.json").read_text())
    change(manifest)
    (artifact / "manifest.json").write_text(json.dumps(seal(manifest) if reseal else manifest))


def _gate_value(m):
    m["gates"][0]["value"] = 0.99


def _one_gate_failed(m):
    m["gates"][0]["passed"] = False


def _no_digest(m):
    del m["manifest_sha256"]


@pytest.mark.parametrize(
    ("change", "reseal", "expected"),
    [
        (_gate_value, False, "manifest_sha256 does not match the manifest's content"),
        (_one_gate_failed, False, "manifest_sha256 does not match the manifest's content"),
        (_one_gate_failed, True, "gates_passed is True but its gates say False"),
        (_no_digest, False, "no manifest_sha256"),
    ],
    ids=["gate_value", "gate_failed", "gate_failed_resealed", "no_digest"],
)
def test_a_forged_manifest_is_refused(artifact, change, reseal, expected):
    verify_artifact(artifact, check_io=False)
    _edit(artifact, change, reseal=reseal)
    with pytest.raises(ManifestError) as err:
        verify_artifact(artifact, check_io=False)
    assert expected in str(err.value) and str(artifact / "manifest.json") in str(err.value)


def test_serving_refuses_a_forged_manifest_at_start(artifact):
    from serving.settings import ServingSettings
    from serving.store import open_verified_artifact

    settings = ServingSettings(artifact_root=artifact.parent.parent)
    open_verified_artifact(artifact, "weakness", settings)  # what both model loaders call first
    _edit(artifact, _gate_value, reseal=False)
    with pytest.raises(ManifestError, match="edited after packaging"):
        open_verified_artifact(artifact, "weakness", settings)


@pytest.mark.slow
def test_serving_from_a_registry_refuses_a_resealed_manifest(tmp_path, monkeypatch):
    """Recomputing the digest after an edit passes the file check; the registry tag does not."""
    pytest.importorskip("mlflow")
    from pipelines.package import register_version
    from serving.settings import ServingSettings
    from serving.store import open_verified_artifact
    from tests.pipelines._mlflow_server import mlflow_server

    db = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", db)
    src = tmp_path / "onnx"
    src.mkdir()
    make_weakness_export(src)
    root = tmp_path / "artifacts"
    package_candidate(weakness_candidate(src, auc_floor=0.5), root)
    register_version(root / "weakness" / "1", experiment="t")
    ref = "models:/ludora-weakness/1"
    with mlflow_server(db, tmp_path) as url:
        settings = ServingSettings(artifact_root=root, tracking_uri=url)
        open_verified_artifact(ref, "weakness", settings)
        _edit(root / "weakness" / "1", _gate_value, reseal=True)
        verify_artifact(root / "weakness" / "1", check_io=False)  # the file alone looks fine
        with pytest.raises(ManifestError, match="differs from the one registered for"):
            open_verified_artifact(ref, "weakness", settings)
