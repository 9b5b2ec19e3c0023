"""MLflow as the UI shows it: experiment type, dataset lineage, logged models (real store)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines import tracking
from pipelines.common import setup_mlflow
from tests.fixtures.store import fresh_tracking_uri
from tests.fixtures.weakness import write_two_feature_splits

pytestmark = pytest.mark.slow


@pytest.fixture()
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    uri = fresh_tracking_uri(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def test_experiments_are_typed_as_model_training(store: str) -> None:
    import mlflow

    setup_mlflow("typed")
    setup_mlflow("typed")  # idempotent, and an existing experiment gets the tag too
    exp = mlflow.get_experiment_by_name("typed")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"


def test_weakness_run_shows_datasets_and_a_logged_model(store: str, tmp_path: Path) -> None:
    import mlflow
    from mlflow import MlflowClient

    features = tmp_path / "outputs" / "features"
    booster = write_two_feature_splits(features)
    (tmp_path / "outputs" / "events").mkdir()
    (tmp_path / "outputs" / "events" / "events.parquet").write_bytes(b"events")
    setup_mlflow("weakness-t")
    with mlflow.start_run() as run:
        tracking.log_weakness_training(features, booster, ["a", "b"], root=tmp_path)
    got = MlflowClient().get_run(run.info.run_id)
    inputs = {d.dataset.name: d for d in got.inputs.dataset_inputs}
    assert set(inputs) == {"features/train", "features/val", "features/test"}
    train = inputs["features/train"]
    tags = {t.key: t.value for t in train.tags}
    assert tags["mlflow.data.context"] == "training"
    assert {t.value for d in inputs.values() for t in d.tags if t.key == "mlflow.data.context"} == {
        "training",
        "validation",
        "test",
    }
    assert tags["sha256"].startswith(train.dataset.digest) and len(train.dataset.digest) == 32
    assert tags["lineage.events"].startswith("outputs/events/events.parquet@")
    assert json.loads(train.dataset.source)["uri"].endswith("train.parquet")
    models = mlflow.search_logged_models(
        experiment_ids=[got.info.experiment_id], output_format="list"
    )
    assert [m.name for m in models] == ["weakness-booster"]
    assert models[0].source_run_id == run.info.run_id
    loaded = mlflow.lightgbm.load_model(models[0].model_uri)
    x = pd.read_parquet(features / "test.parquet", columns=["a", "b"]).to_numpy()[:5]
    assert np.allclose(loaded.predict(x), booster.predict(x))


def test_torch_model_is_logged(store: str) -> None:
    import mlflow
    from transformers import T5Config, T5ForConditionalGeneration

    cfg = T5Config(vocab_size=32, d_model=8, d_ff=16, num_layers=1, num_heads=1, d_kv=8)
    setup_mlflow("gen-t")
    with mlflow.start_run() as run:
        tracking.log_torch_model(T5ForConditionalGeneration(cfg), name="generator-t5")
    models = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id], output_format="list"
    )
    assert [m.name for m in models] == ["generator-t5"]
