"""Stage `data` end to end on tiny params: outputs, metrics, and nothing written on bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from data.validate import EventValidationError, pandas_dtypes
from pipelines import data as stage
from pipelines.common import ConfigError
from tests.fixtures.events import TINY_SIM


def write_params(tmp_path: Path, data: dict[str, Any], pass_mark: float = 0.6) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"data": data, "features": {"pass_mark": pass_mark}}))
    return path


def test_simulator_stage_writes_outputs(tmp_path: Path) -> None:
    params = write_params(tmp_path, {"source": "simulator", "path": None, "simulator": TINY_SIM})
    out_dir, metrics_file = tmp_path / "out" / "events", tmp_path / "metrics" / "data.json"
    returned = stage.run(params, out_dir=out_dir, metrics_file=metrics_file)
    events = pd.read_parquet(out_dir / "events.parquet")
    oracle = pd.read_parquet(out_dir / "oracle.parquet")
    assert {c: str(t) for c, t in events.dtypes.items()} == pandas_dtypes()
    assert len(events) == len(oracle) == returned["n_events"]
    metrics = json.loads(metrics_file.read_text())
    assert metrics == returned
    assert metrics["n_learners"] == events["user_id"].nunique()
    assert metrics["n_topics"] == TINY_SIM["n_topics"]
    assert metrics["simulated"] is True
    assert 0.5 < metrics["oracle_auc"] < 1.0
    quiz = events["activity"] == "quiz"
    assert metrics["quiz_fail_rate"] == pytest.approx((events.loc[quiz, "score"] < 0.6).mean())
    assert 0 < metrics["time_span_days"] <= TINY_SIM["days"] + 1
    # Nothing left behind but the declared outputs.
    assert sorted(p.name for p in out_dir.parent.iterdir()) == ["events"]


def test_bad_csv_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "user_id,topic_id,item_id,timestamp,activity,score,time_spent_s,hints_used,attempt,"
        "is_revisit\nu1,t1,i1,0,quiz,1.7,3,0,1,false\n"
    )
    params = write_params(tmp_path, {"source": "events_file", "path": "bad.csv"})
    out_dir, metrics_file = tmp_path / "out" / "events", tmp_path / "metrics" / "data.json"
    with pytest.raises(EventValidationError, match=r"bad\.csv[\s\S]*'score'.*line 2"):
        stage.run(params, out_dir=out_dir, metrics_file=metrics_file)
    assert not out_dir.exists()
    assert not metrics_file.exists()


def test_bad_input_keeps_previous_outputs(tmp_path: Path) -> None:
    out_dir, metrics_file = tmp_path / "out" / "events", tmp_path / "metrics" / "data.json"
    good = write_params(tmp_path, {"source": "simulator", "path": None, "simulator": TINY_SIM})
    stage.run(good, out_dir=out_dir, metrics_file=metrics_file)
    before = (out_dir / "events.parquet").read_bytes(), metrics_file.read_text()
    kt = tmp_path / "kt.tsv"
    kt.write_text("user_id\titem_id\ttimestamp\tcorrect\tskill_id\n1\t2\t0\t5\t3\n")
    bad = write_params(tmp_path, {"source": "kt_tsv", "path": str(kt)})
    with pytest.raises(EventValidationError, match="correct"):
        stage.run(bad, out_dir=out_dir, metrics_file=metrics_file)
    assert ((out_dir / "events.parquet").read_bytes(), metrics_file.read_text()) == before


def test_kt_source_metrics_have_no_oracle(tmp_path: Path) -> None:
    kt = tmp_path / "kt.tsv"
    kt.write_text("user_id\titem_id\ttimestamp\tcorrect\tskill_id\n1\t2\t0\t0\t3\n2\t2\t0\t1\t3\n")
    params = write_params(tmp_path, {"source": "kt_tsv", "path": "kt.tsv"})
    metrics = stage.run(params, out_dir=tmp_path / "ev", metrics_file=tmp_path / "m.json")
    assert metrics["simulated"] is False and "oracle_auc" not in metrics
    assert metrics["quiz_fail_rate"] == 0.5
    oracle = pd.read_parquet(tmp_path / "ev" / "oracle.parquet")
    assert oracle["p_fail_true"].isna().all()


def test_a_file_source_is_read_locally_under_the_dask_engine(tmp_path: Path) -> None:
    """The Dask engine shards the simulator only: a file source takes the local step (part by
    part), whatever the engine, and writes what ``engine: local`` writes."""
    kt = tmp_path / "kt.tsv"
    kt.write_text("user_id\titem_id\ttimestamp\tcorrect\tskill_id\n1\t2\t0\t0\t3\n2\t2\t0\t1\t3\n")
    data = {"source": "kt_tsv", "path": "kt.tsv"}
    written = {}
    for engine in ("local", "dask"):
        params = tmp_path / "params.yaml"
        params.write_text(
            yaml.safe_dump(
                {"data": data, "features": {"pass_mark": 0.6}, "engine": engine, "dask": {}}
            )
        )
        out = tmp_path / engine
        metrics = stage.run(params, out_dir=out / "ev", metrics_file=out / "m.json")
        written[engine] = metrics, (out / "ev" / "events.parquet").read_bytes()
    assert written["dask"] == written["local"]


def test_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data\.path"):
        stage.load_config(write_params(tmp_path, {"source": "kt_tsv", "path": None}))
    with pytest.raises(ConfigError, match="pass_mark"):
        stage.load_config(
            write_params(
                tmp_path, {"source": "simulator", "path": None, "simulator": TINY_SIM}, 1.5
            )
        )
    with pytest.raises(ConfigError, match="n_topics"):
        stage.load_config(
            write_params(
                tmp_path,
                {"source": "simulator", "path": None, "simulator": {**TINY_SIM, "n_topics": 0}},
            )
        )


def test_auc_by_ranks() -> None:
    assert stage.auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == 0.75
    assert stage.auc(np.array([0, 1]), np.array([0.5, 0.5])) == 0.5
    assert np.isnan(stage.auc(np.array([1, 1]), np.array([0.1, 0.2])))


def test_repo_params_build() -> None:
    cfg = stage.load_config()
    assert cfg.source in {"simulator", "events_file", "kt_tsv"}
    assert 0 < cfg.pass_mark <= 1


def test_string_pass_mark_is_named_features_pass_mark(tmp_path: Path) -> None:
    """The value lives in `features`, so the error says so."""
    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump(
            {
                "data": {"source": "simulator", "path": None, "simulator": TINY_SIM},
                "features": {"pass_mark": "0.6"},
            }
        )
    )
    with pytest.raises(ConfigError) as err:
        stage.load_config(params)
    assert str(err.value) == f"{params}:features.pass_mark: must be a number in (0, 1], got '0.6'"


def test_path_with_simulator_is_refused(tmp_path: Path) -> None:
    """A path that would be ignored is an error, not a log line."""
    params = write_params(tmp_path, {"source": "simulator", "path": "x.csv", "simulator": TINY_SIM})
    with pytest.raises(ConfigError, match=r"data\.path: must be null when data\.source is"):
        stage.load_config(params)
