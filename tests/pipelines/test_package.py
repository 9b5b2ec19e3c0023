"""Packaging: gates decide, versions are monotonic, identical content is reused, registry tags."""

from __future__ import annotations

import json

import pytest

from pipelines.common import ConfigError, build_config
from pipelines.package import (
    PackageConfig,
    generator_candidate,
    package_candidate,
    register_version,
    weakness_candidate,
)
from serving.manifest import list_versions, verify_artifact
from tests.fixtures.store import fresh_tracking_uri
from tests.fixtures.weakness import make_weakness_export


@pytest.fixture()
def export_dir(tmp_path):
    src = tmp_path / "onnx"
    src.mkdir()
    make_weakness_export(src)
    return src


def test_versions_are_monotonic_and_never_overwritten(export_dir, tmp_path):
    root = tmp_path / "artifacts"
    first = package_candidate(weakness_candidate(export_dir, auc_floor=0.5), root)
    assert first["status"] == "packaged" and first["version"] == 1
    again = package_candidate(weakness_candidate(export_dir, auc_floor=0.5), root)
    assert again["status"] == "reused" and again["version"] == 1  # identical content
    before = (root / "weakness/1/manifest.json").read_text()
    thresholds_v1 = (export_dir / "thresholds.json").read_text()
    (export_dir / "thresholds.json").write_text(
        json.dumps({"thresholds": [0.2, 0.5], "labels": ["low", "medium", "high"]})
    )
    second = package_candidate(weakness_candidate(export_dir, auc_floor=0.5), root)
    assert second["status"] == "packaged" and second["version"] == 2
    assert (root / "weakness/1/manifest.json").read_text() == before  # v1 untouched
    assert list_versions(root / "weakness") == [1, 2]
    verify_artifact(root / "weakness/2")
    # back to v1's content (an experiment reverted): v1 is reused, no duplicate v3
    (export_dir / "thresholds.json").write_text(thresholds_v1)
    back = package_candidate(weakness_candidate(export_dir, auc_floor=0.5), root)
    assert back["status"] == "reused" and back["version"] == 1
    assert list_versions(root / "weakness") == [1, 2]


def test_manifest_carries_provenance_gates_and_why_fp32(export_dir, tmp_path):
    result = package_candidate(weakness_candidate(export_dir, auc_floor=0.5), tmp_path / "a")
    m = json.loads((tmp_path / "a/weakness/1/manifest.json").read_text())
    assert m["variant"] == "fp32"
    assert m["mlflow_run_id"] == "run-tiny" and m["git_commit"] == "abc"
    assert m["feature_names"] == ["f0", "f1", "f2", "f3"]
    assert m["onnx"]["model.onnx"]["opset"]["ai.onnx.ml"] >= 1
    assert "TreeEnsembleClassifier" in m["quantization"]["op_types"]
    assert m["quantization"]["quantizable_ops"] == []
    names = {g["name"]: g for g in m["gates"]}
    assert names["auc_floor"]["passed"] and names["auc_floor"]["threshold"] == 0.5
    assert "export.onnx_vs_native_max_abs_diff_raw" in names
    assert result["content_sha256"] == m["content_sha256"]


def test_failed_gate_is_not_packaged(export_dir, tmp_path):
    root = tmp_path / "artifacts"
    result = package_candidate(weakness_candidate(export_dir, auc_floor=0.999), root)
    assert result["status"] == "skipped_gates_failed"
    assert result["failed_gates"] == ["auc_floor"]
    assert list_versions(root / "weakness") == []


def test_generator_without_a_passing_variant_is_not_packaged(tmp_path):
    quantize = {
        "shipped": None,
        "variants": {"fp32": {"passed": False, "metrics": {"rouge_l": 0.1}, "gates": []}},
    }
    cand = generator_candidate(
        tmp_path, quantize, draft={}, training_config={}, floors={}, eval_data={}
    )
    result = package_candidate(cand, tmp_path / "artifacts")
    assert result["status"] == "skipped_gates_failed"
    assert result["failed_gates"] == ["quantize.shipped_variant"]


def test_generator_floor_gate(tmp_path):
    quantize = {
        "shipped": "fp32",
        "variants": {"fp32": {"passed": True, "metrics": {"rouge_l": 0.1}, "gates": []}},
    }
    with pytest.raises(FileNotFoundError, match="shipped variant lacks"):
        generator_candidate(
            tmp_path,
            quantize,
            draft={},
            training_config={},
            floors={"rouge_l": 0.2},
            eval_data={},
        )


def test_register_tags_the_model_version(export_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", fresh_tracking_uri(tmp_path))
    from mlflow import MlflowClient

    result = package_candidate(weakness_candidate(export_dir, auc_floor=0.5), tmp_path / "a")
    version = register_version(tmp_path / "a/weakness/1", experiment="t")
    assert register_version(tmp_path / "a/weakness/1", experiment="t") == version  # idempotent
    mv = MlflowClient().get_model_version("ludora-weakness", version)
    assert mv.tags["ludora.version"] == "1"
    assert mv.tags["ludora.gates_passed"] == "true"
    assert mv.tags["ludora.artifact_dir"] == str((tmp_path / "a/weakness/1").resolve())
    assert mv.tags["ludora.content_sha256"] == result["content_sha256"]
    assert mv.tags["gate.auc_floor"].endswith("(pass)")


def test_package_config_rejects_unknown_model():
    with pytest.raises(ConfigError, match=r"package.models"):
        build_config(PackageConfig, {"models": ["ranker"]}, "package")


def test_one_gate_format_and_old_drafts_still_read():
    from training.packaging.candidates import failed_gate_names, normalize_gates

    old = [{"name": "parity", "threshold": 1e-5, "value": 0.0, "pass": True}]  # older drafts' key
    new = [{"name": "parity", "kind": "ceiling", "threshold": 1e-5, "value": 1.0, "passed": False}]
    (rec,) = normalize_gates(old, "export")
    assert rec == {
        "name": "export.parity",
        "kind": "ceiling",
        "threshold": 1e-5,
        "value": 0.0,
        "passed": True,
    }
    (rec,) = normalize_gates(new, "export")
    assert rec["passed"] is False and "pass" not in rec
    assert failed_gate_names([*old, *new]) == ["parity"]


def test_per_view_gate_names_become_valid_mlflow_tags(export_dir, tmp_path, monkeypatch):
    """Found by a real `dvc queue` run: MLflow refused the tag `gate.export.view_auc_floor[...]`."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", fresh_tracking_uri(tmp_path))
    from mlflow import MlflowClient

    draft = json.loads((export_dir / "manifest.draft.json").read_text())
    draft["gates"].append(
        {"name": "view_auc_floor[averages]", "threshold": 0.5, "value": 0.8, "passed": True}
    )
    (export_dir / "manifest.draft.json").write_text(json.dumps(draft))
    package_candidate(weakness_candidate(export_dir, auc_floor=0.5), tmp_path / "a")
    version = register_version(tmp_path / "a/weakness/1", experiment="t")
    tags = MlflowClient().get_model_version("ludora-weakness", version).tags
    assert tags["gate.export.view_auc_floor.averages"] == "0.8 (pass)"
    m = json.loads((tmp_path / "a/weakness/1/manifest.json").read_text())
    assert "export.view_auc_floor[averages]" in {g["name"] for g in m["gates"]}  # name kept


def test_the_report_names_a_version_inside_the_checkout_relatively(tmp_path):
    from pipelines.package import shown_path

    root = tmp_path / "repo"
    assert shown_path(root / "artifacts" / "generator" / "3", root) == "artifacts/generator/3"
    assert shown_path(tmp_path / "store" / "weakness" / "1", root) == str(
        tmp_path / "store" / "weakness" / "1"
    )
