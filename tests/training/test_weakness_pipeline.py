"""Tiny end to end: synthetic feature splits -> train_weakness (2 trials) -> export -> parity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipelines.common import build_config
from tests.fixtures.weakness import TINY_PARAMS, write_features_dir
from training.weakness import WeaknessConfig


@pytest.mark.slow
def test_train_then_export_end_to_end(tmp_path: Path, mlflow_tmp: str) -> None:
    import mlflow

    from pipelines import export_weakness, train_weakness

    features = write_features_dir(tmp_path / "features")
    cfg = build_config(WeaknessConfig, TINY_PARAMS, "train_weakness")
    model_dir = tmp_path / "models" / "weakness"
    metrics = train_weakness.run(
        cfg=cfg,
        all_params={"train_weakness": TINY_PARAMS, "other": {"x": [1, 2]}},
        features_dir=features,
        model_dir=model_dir,
        metrics_file=tmp_path / "metrics" / "weakness.json",
        plots_dir=tmp_path / "plots",
    )
    for key in (
        "auc",
        "pr_auc",
        "logloss",
        "brier",
        "ece_before",
        "ece_after",
        "positive_rate",
        "n_test",
        "best_iteration",
        "oracle_auc",
        "auc_gap_to_oracle",
        "val_auc",
    ):
        assert key in metrics
    assert metrics["n_test"] == 500
    assert 0.6 < metrics["auc"] <= 1.0
    assert metrics["oracle_auc"] is not None
    written = json.loads((tmp_path / "metrics" / "weakness.json").read_text())
    assert written["auc"] == metrics["auc"]
    assert sorted(p.name for p in model_dir.iterdir()) == [
        "calibration.json",
        "feature_spec.json",
        "model.txt",
        "thresholds.json",
        "training_summary.json",
    ]
    for plot in (
        "roc.csv",
        "pr.csv",
        "calibration_before.csv",
        "calibration_after.csv",
        "importance.csv",
    ):
        assert (tmp_path / "plots" / plot).stat().st_size > 0
    summary = json.loads((model_dir / "training_summary.json").read_text())

    runs = mlflow.search_runs(experiment_names=["weakness"], output_format="list")
    parent = [r for r in runs if r.info.run_id == summary["mlflow_run_id"]]
    assert len(parent) == 1
    assert parent[0].data.params["train_weakness.tuning.n_trials"] == "2"
    assert parent[0].data.params["other.x"] == "[1, 2]"
    assert "git_commit" in parent[0].data.tags
    assert "auc" in parent[0].data.metrics
    children = [
        r for r in runs if r.data.tags.get("mlflow.parentRunId") == summary["mlflow_run_id"]
    ]
    assert len(children) == 2

    out_dir = tmp_path / "onnx" / "weakness"
    export_metrics = export_weakness.run(
        cfg=export_weakness.ExportConfig(),
        section={},
        model_dir=model_dir,
        test_file=features / "test.parquet",
        out_dir=out_dir,
        metrics_file=tmp_path / "metrics" / "weakness_export.json",
        train_metrics_file=tmp_path / "metrics" / "weakness.json",
    )
    assert export_metrics["gates_passed"] is True
    assert export_metrics["max_abs_diff_raw"] <= 1e-5
    assert export_metrics["decision_flips"] == 0
    manifest = json.loads((out_dir / "manifest.draft.json").read_text())
    assert manifest["onnx"]["inputs"][0]["name"] == "features"
    assert manifest["onnx"]["inputs"][0]["shape"] == [None, 5]
    assert manifest["mlflow_run_id"] == summary["mlflow_run_id"]
    assert {"model.onnx", "calibration.json", "thresholds.json", "feature_spec.json"} <= set(
        manifest["files"]
    )
    assert all(g["passed"] for g in manifest["gates"])
    # float32 outputs can merge near-equal probabilities into ties, which moves AUC a little
    assert manifest["metrics"]["onnx_test"]["auc"] == pytest.approx(metrics["auc"], abs=2e-3)

    # the served path: ONNX + the artifact's calibration reproduces the pipeline's probability
    import lightgbm as lgb
    import pandas as pd

    from export.weakness_onnx import onnx_fail_probability
    from serving.weakness_post import apply_calibration

    test = pd.read_parquet(features / "test.parquet")
    X = test[manifest["feature_names"]].to_numpy(np.float32)
    cal = json.loads((out_dir / "calibration.json").read_text())
    served = apply_calibration(
        onnx_fail_probability((out_dir / "model.onnx").read_bytes(), X, "features"), cal
    )
    booster = lgb.Booster(model_file=str(model_dir / "model.txt"))
    native = apply_calibration(booster.predict(X), cal)
    assert np.max(np.abs(served - native)) < 1e-5
