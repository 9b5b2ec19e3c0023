"""Batch examples: no leakage, labels, oracle alignment, optional columns, KT-style data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.kernel import feature_names
from features.build import (
    KEY_COLUMNS,
    build_examples,
    compute_features,
    group_time_order,
    spec_from_config,
    time_order_of,
)
from tests.fixtures.events import PEER, feature_config, random_events


@pytest.mark.parametrize("cut_hour", [30, 77])
def test_events_at_or_after_t_do_not_move_features_at_t(cut_hour: int) -> None:
    events = random_events(5)
    t = cut_hour * 3600
    cfg = feature_config()
    before = build_examples(events, None, cfg=cfg, peer=PEER)

    rng = np.random.default_rng(99)
    changed = events.copy()
    late = changed["timestamp"].to_numpy() >= t
    assert late.any() and (~late).any()
    changed.loc[late, "score"] = rng.random(late.sum())
    changed.loc[late, "time_spent_s"] = 1e4
    changed.loc[late, "hints_used"] = 50
    changed.loc[late, "is_revisit"] = ~changed.loc[late, "is_revisit"]
    changed.loc[late & (changed["timestamp"] > t), "timestamp"] += 7 * 86400
    extra = changed.iloc[:40].copy()
    extra["timestamp"] = t + np.arange(40) % 2 * 3600  # new events at t and after
    extra["score"] = 0.0
    changed = pd.concat([changed, extra], ignore_index=True)
    after = build_examples(changed, None, cfg=cfg, peer=PEER)

    names = feature_names(cfg.rolling_windows)
    keep = before["timestamp"].to_numpy() <= t
    assert keep.sum() > 10
    # original rows keep their input order, so the first len(before) examples correspond
    np.testing.assert_array_equal(
        after[names].to_numpy()[: len(before)][keep], before[names].to_numpy()[keep]
    )
    # and the change was visible to later examples (the test can fail)
    assert not np.array_equal(
        after[names].to_numpy()[: len(before)][~keep], before[names].to_numpy()[~keep]
    )


@pytest.mark.parametrize(("score", "label"), [(0.6, 0), (0.6 - 1e-9, 1), (0.0, 1), (1.0, 0)])
def test_label_at_pass_mark_boundary(score: float, label: int) -> None:
    events = pd.DataFrame(
        {
            "user_id": ["u"],
            "topic_id": ["a"],
            "timestamp": np.array([5], dtype=np.int64),
            "activity": ["quiz"],
            "score": [score],
        }
    )
    ex = build_examples(events, None, cfg=feature_config(), peer=PEER)
    assert ex["label"].dtype == np.int8
    assert ex["label"].tolist() == [label]


def test_columns_oracle_and_only_assessments() -> None:
    events = random_events(2, n=200)
    oracle = pd.DataFrame({"p_fail_true": np.arange(len(events)) / 1000.0, "mastery_true": 0.5})
    ex = build_examples(events, oracle, cfg=feature_config(), peer=PEER)
    names = feature_names((2, 10))
    assert list(ex.columns) == [*KEY_COLUMNS, *names]
    quiz = np.flatnonzero(events["activity"].to_numpy() == "quiz")
    assert len(ex) == len(quiz)
    np.testing.assert_array_equal(ex["p_fail_true"].to_numpy(), quiz / 1000.0)
    np.testing.assert_array_equal(ex["score"].to_numpy(), events["score"].to_numpy()[quiz])
    assert all(ex[n].dtype == np.float32 for n in names)


def test_kt_style_events_without_optional_columns() -> None:
    events = pd.DataFrame(
        {
            "user_id": ["u1"] * 4 + ["u2"] * 2,
            "topic_id": ["s1", "s1", "s2", "s1", "s1", "s1"],
            "timestamp": np.array([0, 1, 2, 3, 0, 1], dtype=np.int64),
            "activity": "quiz",
            "score": [1.0, 0.0, 1.0, 1.0, 0.0, 0.0],
        }
    )
    ex = build_examples(events, None, cfg=feature_config(), peer=PEER)
    assert ex["label"].tolist() == [0, 1, 0, 0, 1, 1]
    assert ex["p_fail_true"].isna().all()
    assert ex["topic_n_attempts"].tolist() == [0, 1, 0, 2, 0, 1]
    assert ex["topic_n_fails"].tolist() == [0, 0, 0, 1, 0, 1]
    assert ex["topic_mean_time_spent_s"].isna().all()


@pytest.mark.parametrize(
    ("column", "value", "match"),
    [("score", 1.5, "'score'"), ("timestamp", -1, "'timestamp'")],
)
def test_bad_events_name_the_column(column: str, value: float, match: str) -> None:
    events = random_events(1, n=20)
    events.loc[3, column] = value
    with pytest.raises(ValueError, match=match):
        build_examples(events, None, cfg=feature_config(), peer=PEER)


def test_missing_column_and_misaligned_oracle() -> None:
    events = random_events(1, n=20)
    with pytest.raises(ValueError, match="activity"):
        build_examples(events.drop(columns="activity"), None, cfg=feature_config(), peer=PEER)
    with pytest.raises(ValueError, match="oracle"):
        build_examples(events, events.iloc[:5], cfg=feature_config(), peer=PEER)


@pytest.mark.parametrize("n_codes", [40, 70_000, 5_000_000_000])  # 1 and 2 radix passes, argsort
@pytest.mark.parametrize("presorted", [True, False])
def test_group_time_order_equals_lexsort(presorted: bool, n_codes: int) -> None:
    rng = np.random.default_rng(7)
    ts = rng.integers(0, 50, 3000)
    if presorted:
        ts = np.sort(ts)
    code = rng.integers(0, n_codes, 3000)
    code[:40] = rng.integers(0, 40, 40)  # some shared groups whatever the width
    got = group_time_order(code, n_codes, time_order_of(ts))
    np.testing.assert_array_equal(got, np.lexsort((ts, code)))


def test_missing_user_id_is_named() -> None:
    events = random_events(1, n=20)
    events["user_id"] = events["user_id"].astype(object)
    events.loc[4, "user_id"] = None
    with pytest.raises(ValueError, match="'user_id' is missing at rows \\[4\\]"):
        build_examples(events, None, cfg=feature_config(), peer=PEER)


def test_compute_features_validates_and_matches_build() -> None:
    events = random_events(3, n=100)
    spec = spec_from_config(feature_config(), PEER)
    ex = build_examples(events, None, cfg=feature_config(), peer=PEER)
    np.testing.assert_array_equal(compute_features(events, spec), ex[spec["names"]].to_numpy())
    events.loc[0, "score"] = -0.5
    with pytest.raises(ValueError, match="'score'"):
        compute_features(events, spec)
