"""Each feature against values computed by hand on a tiny history, in both paths."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from core.kernel import feature_names, kernel_columns
from core.online import request_features
from features.build import build_examples, spec_from_config
from tests.fixtures.events import PEER, feature_config

HL = 7 * 86400.0
T = 7200 + 7 * 86400  # the assessment we inspect: exactly one half-life after the last event

# user u, topic a: three earlier events, one in topic b, one tied with the query (excluded)
HISTORY = pd.DataFrame(
    {
        "user_id": ["u"] * 6,
        "topic_id": ["a", "b", "a", "a", "a", "a"],
        "item_id": "",
        "timestamp": np.array([0, 1800, 3600, 7200, T, T], dtype=np.int64),
        "activity": ["quiz", "quiz", "minigame", "quiz", "minigame", "quiz"],
        "score": [0.5, 0.0, 1.0, 0.8, 0.1, 0.2],
        "time_spent_s": [10.0, 99.0, 20.0, 30.0, 500.0, 40.0],
        "hints_used": [1, 9, 0, 2, 7, 0],
        "attempt": 1,
        "is_revisit": [False, True, True, False, True, False],
    }
)


def _w(t: int) -> float:
    return 0.5 ** ((T - t) / HL)


W_A = _w(0) + _w(3600) + _w(7200)
W_U = W_A + _w(1800)
EXPECTED = {
    "topic_n_attempts": 3.0,
    "topic_mean_score": 2.3 / 3,
    "topic_decayed_mean": (0.5 * _w(0) + 1.0 * _w(3600) + 0.8 * _w(7200)) / W_A,
    "topic_decayed_weight": W_A,
    "topic_n_fails": 1.0,  # 0.5 < 0.6
    "topic_n_successes": 2.0,
    "topic_last_score": 0.8,
    "topic_hours_since_last": 168.0,
    "topic_mean_time_spent_s": 20.0,
    "topic_mean_hints": 1.0,
    "topic_n_revisits": 1.0,
    "topic_revisit_share": 1.0 / 3,
    "topic_last2_mean": 0.9,
    "topic_last10_mean": 2.3 / 3,
    "learner_n_attempts": 4.0,
    "learner_mean_score": 2.3 / 4,
    "learner_decayed_mean": (0.5 * _w(0) + 0.0 * _w(1800) + 1.0 * _w(3600) + 0.8 * _w(7200)) / W_U,
    "peer_topic_mean": (30.0 + 20.0 * 0.5) / (40.0 + 20.0),
    "topic_mean_minus_peer": 2.3 / 3 - 40.0 / 60.0,
}


def test_names_are_stable_and_complete() -> None:
    names = feature_names((2, 10))
    assert names == list(EXPECTED)
    assert len(kernel_columns((3,))) == 13


@pytest.fixture(scope="module")
def batch_row() -> pd.Series:
    examples = build_examples(HISTORY, None, cfg=feature_config(), peer=PEER)
    assert len(examples) == 4  # the four quizzes
    return examples.iloc[3]


@pytest.fixture(scope="module")
def online_row() -> np.ndarray:
    spec = spec_from_config(feature_config(), PEER)
    history = {c: HISTORY[c].tolist() for c in HISTORY.columns}
    return request_features(spec, history, ["a", "b", "zz"], T)


@pytest.mark.parametrize(("name", "expected"), list(EXPECTED.items()))
def test_feature_by_hand_batch(batch_row: pd.Series, name: str, expected: float) -> None:
    assert batch_row["timestamp"] == T
    assert float(batch_row[name]) == pytest.approx(expected, rel=1e-6, abs=1e-6)


@pytest.mark.parametrize(("name", "expected"), list(EXPECTED.items()))
def test_feature_by_hand_online(online_row: np.ndarray, name: str, expected: float) -> None:
    col = list(EXPECTED).index(name)
    assert float(online_row[0, col]) == pytest.approx(expected, rel=1e-6, abs=1e-6)


def test_first_attempt_has_counts_zero_and_means_missing() -> None:
    examples = build_examples(HISTORY, None, cfg=feature_config(), peer=PEER)
    first = examples.iloc[0]
    assert first["topic_n_attempts"] == 0.0
    assert first["topic_decayed_weight"] == 0.0
    assert first["topic_n_revisits"] == 0.0
    for name in ("topic_mean_score", "topic_last2_mean", "topic_hours_since_last"):
        assert math.isnan(first[name])
    assert math.isnan(first["topic_mean_minus_peer"])
    assert first["learner_n_attempts"] == 0.0


def test_unseen_topic_online_uses_prior_and_learner_level(online_row: np.ndarray) -> None:
    names = list(EXPECTED)
    zz = online_row[2]
    assert zz[names.index("topic_n_attempts")] == 0.0
    assert zz[names.index("peer_topic_mean")] == np.float32(0.5)
    assert zz[names.index("learner_n_attempts")] == 4.0
    b = online_row[1]
    assert b[names.index("topic_n_attempts")] == 1.0
    assert b[names.index("topic_last_score")] == 0.0
