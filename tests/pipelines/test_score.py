"""Stage `score`: both engines write the same scores, equal to what serving answers online.

A tiny real model: LightGBM on simulated features, converted to ONNX by the export stage's
converter, laid out as `outputs/onnx/weakness` is (model.onnx, spec, calibration, thresholds,
manifest.draft.json); the Dask run uses the shared 2-worker LocalCluster.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from data.simulator import simulate
from features.config import FeatureConfig
from features.engine import DaskConfig
from pipelines.engines import DaskEngine, Engine, LocalEngine
from pipelines.features import make_features
from pipelines.score import run
from tests.fixtures.cluster import shared_client
from tests.fixtures.events import sim_config
from tests.fixtures.weakness import tiny_booster, write_weakness_dir
from training.scoring import ScoreConfig, load_model

SIM = sim_config(seed=11, n_learners=50, n_topics=4, sessions_per_week=4.0)


def write_exported_model(out: Path, splits: dict[str, pd.DataFrame], spec: dict[str, Any]) -> Path:
    """A tiny exported weakness model in the export stage's layout."""
    names = spec["names"]
    train = splits["train"]
    booster = tiny_booster(
        train[names].to_numpy(np.float32), train["label"].to_numpy(), names, rounds=15
    )
    calibration = {
        "method": "platt",
        "a": 1.2,
        "b": -0.1,
        # per-view maps, as train_weakness writes them: batch scoring uses the top level
        "views": {
            "full": {"method": "platt", "a": 1.2, "b": -0.1},
            "averages": {"method": "platt", "a": 0.5, "b": 0.3},
        },
    }
    write_weakness_dir(out, booster, spec, calibration=calibration)
    draft = {
        "onnx": {"probability_output": "probabilities", "probability_column": 1},
        "topics": sorted(spec["peer"]["topics"]),
        "topic_aliases": {},
    }
    (out / "manifest.draft.json").write_text(json.dumps(draft))
    return out


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("score")
    events, oracle = simulate(SIM, pass_mark=0.6)
    splits, spec, _ = make_features(events, oracle, FeatureConfig())
    model_dir = write_exported_model(root / "onnx", splits, spec)
    events.to_parquet(root / "events.parquet", index=False, row_group_size=1000)
    return {"root": root, "events": events, "model_dir": model_dir}


def _run(setup: dict[str, Any], out: Path, cfg: ScoreConfig, engine: str, **kw: Any) -> Any:
    chosen: Engine = LocalEngine()
    if engine == "dask":
        chosen = DaskEngine(
            DaskConfig(
                scheduler_address=shared_client().scheduler.address, learners_per_partition=13
            )
        )
    metrics = run(
        cfg,
        engine=chosen,
        events_file=kw.get("events_file", setup["root"] / "events.parquet"),
        model_dir=setup["model_dir"],
        out_dir=out / "scores",
        metrics_file=out / "score.json",
        plot_file=out / "levels.csv",
    )
    scores = (
        pd.concat(
            [pd.read_parquet(p) for p in sorted((out / "scores").glob("part-*.parquet"))],
            ignore_index=True,
        )
        .sort_values(["user_id", "topic_id"], kind="stable")
        .reset_index(drop=True)
    )
    return metrics, scores


def test_engines_write_identical_scores(setup: dict[str, Any], tmp_path: Path) -> None:
    cfg = ScoreConfig(as_of=None, active_days=14)
    m_local, local = _run(setup, tmp_path / "local", cfg, "local")
    m_dask, dask_scores = _run(setup, tmp_path / "dask", cfg, "dask")
    assert len(list((tmp_path / "dask" / "scores").glob("*.parquet"))) > 1  # partitioned
    pd.testing.assert_frame_equal(local, dask_scores)  # bit for bit, float64 probabilities
    assert {k: v for k, v in m_local.items() if k != "engine"} == {
        k: v for k, v in m_dask.items() if k != "engine"
    }
    events = setup["events"]
    as_of = int(events["timestamp"].max()) + 1
    active = events.loc[events["timestamp"] >= as_of - 14 * 86_400, "user_id"].unique()
    assert 0 < len(active) < events["user_id"].nunique()  # the window excludes someone
    assert set(local["user_id"]) == set(active)
    assert len(local) == len(active) * 4 and local["as_of"].eq(as_of).all()
    assert m_local["n_rows"] == len(local)
    plot = pd.read_csv(tmp_path / "local" / "levels.csv")
    assert plot["learners"].sum() == len(local)
    assert local["model_version"].str.startswith("weakness@").all()


def test_scores_equal_serving_online_answer(setup: dict[str, Any], tmp_path: Path) -> None:
    """The batch job answers what serving answers for the learner's history at as_of."""
    events = setup["events"]
    as_of = int(events["timestamp"].quantile(0.8))
    _, scores = _run(setup, tmp_path, ScoreConfig(as_of=as_of, active_days=0), "local")
    from training.scoring import exported_model

    exp = exported_model(setup["model_dir"])
    model = load_model(exp.model_dir, exp.sha256)
    topics = sorted(model.topics)
    for user in scores["user_id"].unique()[:5]:
        ev = events[(events["user_id"] == user) & (events["timestamp"] < as_of)]
        history = {
            c: ev[c].tolist()
            for c in ("topic_id", "timestamp", "score", "time_spent_s", "hints_used", "is_revisit")
        }
        online = {p.topic_id: p.probability for p in model.predict_history(history, topics, as_of)}
        batch = scores[scores["user_id"] == user].set_index("topic_id")["weakness_probability"]
        assert {t: batch[t] for t in topics} == online


def test_events_at_or_after_as_of_do_not_move_scores(setup: dict[str, Any], tmp_path: Path) -> None:
    events = setup["events"]
    as_of = int(events["timestamp"].quantile(0.6))
    changed = events.copy()
    late = changed["timestamp"] >= as_of
    changed.loc[late, "score"] = 1.0 - changed.loc[late, "score"]
    changed.to_parquet(tmp_path / "changed.parquet", index=False)
    cfg = ScoreConfig(as_of=as_of, active_days=0)
    _, a = _run(setup, tmp_path / "a", cfg, "local")
    _, b = _run(setup, tmp_path / "b", cfg, "dask", events_file=tmp_path / "changed.parquet")
    pd.testing.assert_frame_equal(a, b)
    # a later cut-off sees the change (the test can fail)
    _, c = _run(
        setup,
        tmp_path / "c",
        ScoreConfig(active_days=0),
        "local",
        events_file=tmp_path / "changed.parquet",
    )
    _, d = _run(setup, tmp_path / "d", ScoreConfig(active_days=0), "local")
    assert not np.array_equal(c["weakness_probability"], d["weakness_probability"])


@pytest.mark.parametrize(
    ("as_of", "expected"),
    [
        (0, "score.as_of: must be in (2000-01-01T00:00:00Z, 2100-01-01T00:00:00Z]"),
        ("2200-01-01T00:00:00Z", "got '2200-01-01T00:00:00Z'"),
    ],
)
def test_an_as_of_outside_any_event_time_is_refused_at_load(as_of: Any, expected: str) -> None:
    from data.params import ConfigError, build_config

    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace("[", r"\[")):
        build_config(ScoreConfig, {"as_of": as_of}, "score")


@pytest.mark.parametrize("where", ["before", "after"])
def test_an_as_of_that_scores_nobody_is_refused_and_keeps_the_last_scores(
    setup: dict[str, Any], tmp_path: Path, where: str
) -> None:
    """It used to replace outputs/scores with 0 rows and exit 0."""
    from data.params import ConfigError

    _, before = _run(setup, tmp_path, ScoreConfig(as_of=None, active_days=14), "local")
    ts = setup["events"]["timestamp"]
    as_of = int(ts.min()) if where == "before" else int(ts.max()) + 15 * 86_400
    with pytest.raises(ConfigError, match="leaves no learner to score: the events span"):
        _run(setup, tmp_path, ScoreConfig(as_of=as_of, active_days=14), "local")
    kept = pd.concat(
        [pd.read_parquet(p) for p in sorted((tmp_path / "scores").glob("part-*.parquet"))]
    )
    assert len(kept) == len(before) > 0
