"""Views are what serving computes: each view row == serving's features for that request shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from core.online import request_features
from core.summary import MAX_SUMMARY_COUNT, VIEWS, summary_events, view_of
from features.build import build_examples
from features.config import FeatureConfig
from features.peer import compute_peer_table
from serving.schemas import WeaknessPredictionInput
from serving.weakness import build_history, request_views
from tests.fixtures.events import sim_config
from tests.fixtures.weakness import FAST_PARAMS
from training.weakness_views import ViewBuilder, ViewSettings, check_views

SETTINGS = ViewSettings(recent_k=4, spacing_s=86_400)


@pytest.fixture(scope="module")
def sim() -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    from data.simulator import simulate
    from features.build import spec_from_config

    cfg = sim_config(n_learners=12, n_topics=4, activities_per_session=4, quiz_share=0.4)
    events, oracle = simulate(cfg, pass_mark=0.6)
    fcfg = FeatureConfig()
    peer = compute_peer_table(events, prior_weight=20.0)
    examples = build_examples(events, oracle, cfg=fcfg, peer=peer)
    return events, examples, spec_from_config(fcfg, peer)


def _request(view: str, events: pd.DataFrame, row: pd.Series, k: int) -> WeaknessPredictionInput:
    """The backend's request of this shape for the learner's events strictly before the row."""
    before = events[
        (events["user_id"] == row["user_id"]) & (events["timestamp"] < row["timestamp"])
    ]
    body: dict[str, Any] = {"user_id": str(row["user_id"]), "now": int(row["timestamp"])}
    by_topic = dict(tuple(before.groupby("topic_id", sort=True)))
    quizzes = before[before["activity"] == "quiz"]
    if view.startswith("recent_scores"):
        body["recent_quiz_scores"] = {
            t: g["score"].tolist()[-k:] for t, g in quizzes.groupby("topic_id", sort=True)
        }
        shown = list(body["recent_quiz_scores"])
    else:
        body["average_score_per_topic"] = {t: float(g["score"].mean()) for t, g in by_topic.items()}
        shown = list(by_topic)
        if view.startswith("averages_counts"):
            body["attempts_per_topic"] = {t: len(g) for t, g in by_topic.items()}
        if view.startswith("averages_flat") and len(quizzes):
            body["recent_quiz_scores"] = quizzes["score"].tolist()[-k:]
    if view.endswith("_time"):
        body["time_spent_per_topic_minutes"] = {
            t: float(by_topic[t]["time_spent_s"].sum() / 60.0) for t in shown
        }
    if str(row["topic_id"]) not in shown:  # the asked topic has no evidence yet
        body.setdefault("time_spent_per_topic_minutes", {})[str(row["topic_id"])] = 0.0
    return WeaknessPredictionInput.model_validate(body)


@pytest.mark.parametrize("view", [v for v in VIEWS if v not in ("full", "full_notime")])
def test_view_rows_equal_serving_features(sim: Any, view: str) -> None:
    events, examples, spec = sim
    rows = examples.iloc[5::7].head(25).reset_index(drop=True)
    got = ViewBuilder(events, spec, SETTINGS).build(view, rows)
    for i, row in rows.iterrows():
        req = _request(view, events, row, SETTINGS.recent_k)
        now = int(row["timestamp"])
        hist = build_history(req, now=now, quiz_spacing_s=SETTINGS.spacing_s)
        want = request_features(spec, hist, [str(row["topic_id"])], now)[0]
        # the averages computed by pandas may differ from the cumulative sums in the last bit
        np.testing.assert_allclose(got[i], want, rtol=1e-5, atol=1e-6, err_msg=f"{view} row {i}")
        assert str(row["topic_id"]) in req.topics()


def test_full_notime_equals_features_without_time(sim: Any) -> None:
    events, examples, spec = sim
    rows = examples.head(30)
    got = ViewBuilder(events, spec, SETTINGS).build("full_notime", rows)
    names = list(spec["names"])
    full = rows[names].to_numpy(dtype=np.float32)
    time_col = names.index("topic_mean_time_spent_s")
    assert np.isnan(got[:, time_col]).all()
    others = [j for j in range(len(names)) if j != time_col]
    np.testing.assert_array_equal(got[:, others], full[:, others])


def test_summary_events_rules() -> None:
    ev = summary_events(
        now=np.array([1000, 5000], dtype=np.int64),
        spacing_s=10,
        topic_request=np.array([0, 0, 1]),
        topic_code=np.array([0, 1, 0]),
        average=np.array([0.5, np.nan, 0.9]),
        count=np.array([0, 0, 3]),
        minutes=np.array([1.0, np.nan, 3.0]),
        recent_offsets=np.array([0, 0, 2, 2]),
        recent_scores=np.array([0.1, 0.2]),
        flat_offsets=np.array([0, 1, 1]),
        flat_scores=np.array([0.7]),
    )
    assert ev.request.tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert ev.topic.tolist() == [0, 1, 1, -1, 0, 0, 0]
    assert ev.timestamp.tolist() == [990, 980, 990, 990, 4990, 4990, 4990]
    assert ev.score.tolist() == [0.5, 0.1, 0.2, 0.7, 0.9, 0.9, 0.9]
    assert ev.time_spent_s[0] == 60.0 and ev.time_spent_s[4] == 60.0
    assert np.isnan(ev.time_spent_s[1:4]).all()


def test_counts_are_clipped() -> None:
    ev = summary_events(
        now=np.array([10**6]),
        spacing_s=1,
        topic_request=np.array([0]),
        topic_code=np.array([0]),
        average=np.array([0.8]),
        count=np.array([10**6]),
        minutes=np.array([np.nan]),
        recent_offsets=np.array([0, 0]),
        recent_scores=np.zeros(0),
        flat_offsets=np.array([0, 0]),
        flat_scores=np.zeros(0),
    )
    assert ev.score.size == MAX_SUMMARY_COUNT


def test_request_views_pick_the_richest_evidence() -> None:
    req = WeaknessPredictionInput.model_validate(
        {
            "user_id": "u",
            "now": 1_767_225_600,
            "average_score_per_topic": {"a": 0.5, "b": 0.5, "c": 0.4},
            "attempts_per_topic": {"b": 4},
            "recent_quiz_scores": {"c": [0.1]},
            "time_spent_per_topic_minutes": {"b": 3.0},
            "recent_attempts": {"d": [{"score": 0.5, "timestamp": 1_767_225_000}]},
        }
    )
    assert request_views(req, req.topics()) == [
        "averages",
        "averages_counts_time",
        "recent_scores",
        "full_notime",
    ]
    assert (
        view_of(
            has_attempts=False,
            attempts_timed=False,
            has_recent=False,
            has_average=True,
            has_count=False,
            has_minutes=False,
            has_flat=True,
        )
        == "averages_flat"
    )


def test_check_views_names_the_allowed_values() -> None:
    assert check_views(["averages", "full", "averages"], "x") == ("full", "averages")
    with pytest.raises(ValueError, match="unknown view"):
        check_views(["avg"], "train_weakness.views.names")


def test_attempts_without_average_is_refused() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="attempts_per_topic"):
        WeaknessPredictionInput.model_validate(
            {"user_id": "u", "average_score_per_topic": {"a": 0.5}, "attempts_per_topic": {"b": 2}}
        )


@pytest.mark.slow
def test_train_and_export_with_views(tmp_path: Path, mlflow_tmp: str) -> None:
    """Tiny simulated events -> features -> train_weakness with views -> export with view gates."""
    import json

    from data.simulator import simulate
    from pipelines import export_weakness, train_weakness
    from pipelines.common import build_config
    from pipelines.features import make_features
    from training.weakness import WeaknessConfig

    sim = sim_config(
        seed=5, n_learners=120, n_topics=4, days=60, activities_per_session=4, quiz_share=0.4
    )
    events, oracle = simulate(sim, pass_mark=0.6)
    events_file = tmp_path / "events.parquet"
    events.to_parquet(events_file, index=False)
    splits, spec, _ = make_features(events, oracle, FeatureConfig())
    feats = tmp_path / "features"
    feats.mkdir()
    for name, part in splits.items():
        part.to_parquet(feats / f"{name}.parquet", index=False)
    (feats / "feature_spec.json").write_text(json.dumps(spec))
    names = ["full", "recent_scores", "averages_counts", "averages", "averages_flat_time"]
    views = {**FAST_PARAMS["views"], "names": names, "max_val_rows": 200, "recent_k": 5}
    params = {**FAST_PARAMS, "views": views}
    cfg = build_config(WeaknessConfig, params, "train_weakness")
    model_dir = tmp_path / "model"
    metrics = train_weakness.run(
        cfg=cfg,
        all_params={"train_weakness": params},
        features_dir=feats,
        model_dir=model_dir,
        metrics_file=tmp_path / "metrics.json",
        plots_dir=tmp_path / "plots",
        events_file=events_file,
    )
    assert list(metrics["views"]) == names
    assert metrics["views"]["full"]["auc"] == pytest.approx(metrics["auc"])
    assert sum(m["n_train_rows"] for m in metrics["views"].values()) == metrics["n_train"]
    cal = json.loads((model_dir / "calibration.json").read_text())
    assert set(cal["views"]) == set(names)
    assert all((tmp_path / "plots" / "views" / f"calibration_{v}.csv").is_file() for v in names)
    strict = export_weakness.ViewGates(min_auc=0.99, max_ece=0.5, max_auc_gap={"averages": 0.5})
    out = tmp_path / "onnx"
    exported = export_weakness.run(
        cfg=export_weakness.ExportConfig(topic_aliases={"bruchrechnen": "t1"}),
        section={},
        model_dir=model_dir,
        test_file=feats / "test.parquet",
        out_dir=out,
        metrics_file=tmp_path / "export.json",
        train_metrics_file=tmp_path / "metrics.json",
        gates_views=strict,
    )
    assert exported["parity_view_rows"] > 0 and exported["decision_flips"] == 0
    draft = json.loads((out / "manifest.draft.json").read_text())
    gates = {g["name"]: g["passed"] for g in draft["gates"]}
    assert gates["view_auc_floor[averages]"] is False  # 0.99 is out of reach: the gate bites
    assert gates["view_ece_max[averages]"] is True and "view_auc_gap_to_full[averages]" in gates
    assert exported["gates_passed"] is False
    assert draft["topics"] == sorted(spec["peer"]["topics"])
    assert draft["topic_aliases"] == {"bruchrechnen": "t1"}
    with pytest.raises(ValueError, match="topic_aliases"):
        export_weakness.run(
            cfg=export_weakness.ExportConfig(topic_aliases={"x": "nope"}),
            section={},
            model_dir=model_dir,
            test_file=feats / "test.parquet",
            out_dir=tmp_path / "onnx2",
            metrics_file=tmp_path / "export2.json",
            train_metrics_file=tmp_path / "metrics.json",
        )
