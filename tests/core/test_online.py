"""Serving path == batch path, exactly, and request validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.online import request_features
from features.build import build_examples, spec_from_config
from tests.fixtures.events import PEER, feature_config, random_events
from tests.fixtures.imports import loaded_modules


def _history(events: pd.DataFrame, user: str, now: int) -> dict[str, list]:
    h = events[(events["user_id"] == user) & (events["timestamp"] <= now)]
    return {c: h[c].tolist() for c in h.columns}


@pytest.mark.parametrize("seed", [0, 1])
def test_batch_equals_online_exactly(seed: int) -> None:
    events = random_events(seed)
    assert events.duplicated(["user_id", "topic_id", "timestamp"]).any()  # ties are exercised
    cfg = feature_config()
    examples = build_examples(events, None, cfg=cfg, peer=PEER)
    spec = spec_from_config(cfg, PEER)
    names = spec["names"]
    batch = examples[names].to_numpy()
    assert batch.dtype == np.float32
    for i in range(0, len(examples), 3):
        row = examples.iloc[i]
        now = int(row["timestamp"])
        online = request_features(
            spec, _history(events, row["user_id"], now), [row["topic_id"]], now
        )
        assert online.dtype == np.float32
        np.testing.assert_array_equal(online[0], batch[i], err_msg=f"example {i}")


def test_unsorted_history_gives_the_same_features_as_sorted() -> None:
    events = random_events(3, n=80, n_users=1, n_topics=1)
    spec = spec_from_config(feature_config(), PEER)
    now = int(events["timestamp"].max()) + 1
    ordered = events.sort_values("timestamp", kind="stable")
    assert not events["timestamp"].is_monotonic_increasing
    a = request_features(spec, {c: events[c].tolist() for c in events.columns}, ["t0"], now)
    b = request_features(spec, {c: ordered[c].tolist() for c in ordered.columns}, ["t0"], now)
    np.testing.assert_array_equal(a, b)


def test_optional_columns_default() -> None:
    spec = spec_from_config(feature_config(), PEER)
    out = request_features(
        spec, {"topic_id": ["a", "a"], "timestamp": [0, 10], "score": [0.2, 0.9]}, ["a"], 20
    )
    names = spec["names"]
    assert out.shape == (1, len(names))
    assert out[0, names.index("topic_n_attempts")] == 2.0
    assert np.isnan(out[0, names.index("topic_mean_time_spent_s")])
    assert out[0, names.index("topic_n_revisits")] == 0.0


def test_empty_history() -> None:
    spec = spec_from_config(feature_config(), PEER)
    out = request_features(spec, {"topic_id": [], "timestamp": [], "score": []}, ["a", "b"], 5)
    names = spec["names"]
    assert out.shape == (2, len(names))
    assert (out[:, names.index("topic_n_attempts")] == 0.0).all()


@pytest.mark.parametrize(
    ("history", "topics", "now", "field"),
    [
        ({"topic_id": ["a"], "timestamp": [1, 2], "score": [0.5]}, ["a"], 5, "history.topic_id"),
        ({"topic_id": ["a"], "timestamp": [1], "score": [1.5]}, ["a"], 5, "history.score"),
        ({"topic_id": ["a"], "timestamp": [9], "score": [0.5]}, ["a"], 5, "history.timestamp"),
        ({"topic_id": ["a"], "timestamp": [-1], "score": [0.5]}, ["a"], 5, "history.timestamp"),
        ({"topic_id": ["a"], "timestamp": [1.5], "score": [0.5]}, ["a"], 5, "history.timestamp"),
        ({"topic_id": ["a"], "timestamp": [1]}, ["a"], 5, "history.score"),
        (
            {"topic_id": ["a"], "timestamp": [1], "score": [0.5], "time_spent_s": [-3.0]},
            ["a"],
            5,
            "history.time_spent_s",
        ),
        (
            {"topic_id": ["a"], "timestamp": [1], "score": [0.5], "hints_used": [1, 2]},
            ["a"],
            5,
            "history.hints_used",
        ),
        ({"topic_id": ["a"], "timestamp": [1], "score": [float("nan")]}, ["a"], 5, "history.score"),
        ({"topic_id": ["a"], "timestamp": [1], "score": [0.5]}, [], 5, "topics"),
        ({"topic_id": ["a"], "timestamp": [1], "score": [0.5]}, [""], 5, "topics[0]"),
        ({"topic_id": ["a"], "timestamp": [1], "score": [0.5]}, ["a"], -1, "now"),
    ],
)
def test_validation_names_the_field(history: dict, topics: list, now: int, field: str) -> None:
    spec = spec_from_config(feature_config(), PEER)
    with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("]", r"\]")):
        request_features(spec, history, topics, now)


def test_serving_path_imports_numpy_only() -> None:
    modules = ["core.online", "core.spec", "core.kernel"]
    assert loaded_modules(modules, ("pandas", "numba", "torch", "lightgbm", "pipelines")) == []


def test_repeated_and_unknown_topics_in_one_request() -> None:
    events = random_events(8, n=120, n_users=1, n_topics=3)
    spec = spec_from_config(feature_config(), PEER)
    now = int(events["timestamp"].max()) + 60
    h = {c: events[c].tolist() for c in events.columns}
    both = request_features(spec, h, ["t1", "zz", "t0", "t1"], now)
    np.testing.assert_array_equal(both[0], both[3])
    np.testing.assert_array_equal(both[2], request_features(spec, h, ["t0"], now)[0])
    names = spec["names"]
    assert both[1, names.index("topic_n_attempts")] == 0.0
    assert both[1, names.index("learner_n_attempts")] == len(events)
