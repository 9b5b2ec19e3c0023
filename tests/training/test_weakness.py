"""Weakness training units: label, ECE, config validation, weights, explanation, data checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.common import ConfigError, build_config
from tests.fixtures.weakness import NAMES, TINY_PARAMS, fit_booster, make_frame
from training.weakness import (
    WeaknessConfig,
    class_weights,
    explain,
    split_from_frame,
)
from training.weakness_metrics import binary_metrics, expected_calibration_error


@pytest.mark.parametrize(("pass_mark", "expected"), [(0.6, [1, 0, 0, 1]), (0.5, [1, 0, 0, 0])])
def test_label_is_score_below_pass_mark(pass_mark: float, expected: list[int]) -> None:
    from features.build import build_examples
    from features.config import FeatureConfig

    events = pd.DataFrame(
        {
            "user_id": ["u"] * 4,
            "topic_id": ["t"] * 4,
            "timestamp": np.array([10, 20, 30, 40], dtype=np.int64),
            "activity": ["quiz"] * 4,
            "score": [0.2, 0.6, 0.9, 0.55],  # 0.6 == pass_mark is a pass
        }
    )
    peer = {"prior_mean": 0.6, "prior_weight": 20.0, "topics": {}}
    ex = build_examples(events, None, cfg=FeatureConfig(pass_mark=pass_mark), peer=peer)
    assert ex["label"].tolist() == expected
    assert ex["label"].dtype == np.int8


def test_ece_by_hand() -> None:
    # 2 bins: [0, .5) holds p=.2,.2 with y=0,1 -> |.5-.2|; [.5, 1] holds p=.9,1.0 with y=1,1
    y = [0, 1, 1, 1]
    p = [0.2, 0.2, 0.9, 1.0]
    expected = (2 * abs(0.5 - 0.2) + 2 * abs(1.0 - 0.95)) / 4
    assert expected_calibration_error(y, p, 2) == pytest.approx(expected)
    assert expected_calibration_error([0, 1], [0.0, 1.0], 10) == 0.0


def test_binary_metrics_values() -> None:
    m = binary_metrics([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], n_bins=5)
    assert m["auc"] == pytest.approx(0.75)
    assert m["positive_rate"] == 0.5
    assert m["brier"] == pytest.approx((0.01 + 0.16 + 0.4225 + 0.04) / 4)


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ({"num_threads": 0}, "num_threads"),
        ({"imbalance": "smote"}, "imbalance"),
        ({"base": {"num_leavs": 3}}, "base.num_leavs"),
        (
            {"action_levels": {**TINY_PARAMS["action_levels"], "thresholds": [0.5, 0.3, 0.7]}},
            "action_levels: thresholds: must be strictly increasing",
        ),
        (
            {"tuning": {**TINY_PARAMS["tuning"], "space": {"num_leaves": {"low": 9, "high": 3}}}},
            "tuning.space.num_leaves",
        ),
        ({"tuning": {**TINY_PARAMS["tuning"], "n_trials": -1}}, "n_trials"),
        ({"bogus": 1}, "unknown key"),
    ],
)
def test_config_errors_name_the_field(override: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build_config(WeaknessConfig, {**TINY_PARAMS, **override}, "train_weakness")


def test_class_weights() -> None:
    y = np.array([1, 0, 0, 0], dtype=np.int8)
    w, spw = class_weights(y, "balanced")
    assert spw is None
    np.testing.assert_allclose(w, [2.0, 2 / 3, 2 / 3, 2 / 3])
    assert class_weights(y, "scale_pos_weight") == (None, 3.0)
    assert class_weights(y, "none") == (None, None)


def test_split_from_frame_errors_name_rows() -> None:
    df = make_frame(10, 0)
    df.loc[3, "label"] = 2
    with pytest.raises(ValueError, match=r"label.*rows \[3\]"):
        split_from_frame(df, NAMES, "x.parquet")
    with pytest.raises(ValueError, match="missing column"):
        split_from_frame(make_frame(5, 0), [*NAMES, "absent"], "x.parquet")
    df = make_frame(10, 0)
    df.loc[4, "noise"] = np.inf
    with pytest.raises(ValueError, match="row 4 column 'noise'"):
        split_from_frame(df, NAMES, "x.parquet")


def test_explain_contributions_add_up() -> None:
    tr, va = make_frame(800, 1), make_frame(300, 2)
    Xtr, ytr = tr[NAMES].to_numpy(np.float32), tr["label"].to_numpy()
    Xva, yva = va[NAMES].to_numpy(np.float32), va["label"].to_numpy()
    booster = fit_booster(
        (Xtr, ytr), (Xva, yva), NAMES, params={"num_leaves": 7}, rounds=30, stop=5
    )
    top = explain(booster, Xva[0], NAMES, top_k=len(NAMES))
    assert [n for n, _ in top] != [] and {n for n, _ in top} == set(NAMES)
    mags = [abs(c) for _, c in top]
    assert mags == sorted(mags, reverse=True)
    contrib = booster.predict(Xva[:1], pred_contrib=True, num_iteration=booster.best_iteration)
    raw = booster.predict(Xva[:1], raw_score=True, num_iteration=booster.best_iteration)
    assert sum(c for _, c in top) + contrib[0, -1] == pytest.approx(raw[0], abs=1e-9)
    assert len(explain(booster, Xva[0], NAMES, top_k=2)) == 2
    with pytest.raises(ValueError, match="expected 5 features"):
        explain(booster, Xva[0, :3], NAMES)
