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
    (artifact / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match=r"model\.onnx: ONNX inputs \['features'\] differ"):
        verify_artifact(artifact)


def test_failed_gates_and_bad_schema_are_refused(artifact):
    manifest = json.loads((artifact / "manifest.json").read_text())
    (artifact / "manifest.json").write_text(json.dumps({**manifest, "gates_passed": False}))
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
