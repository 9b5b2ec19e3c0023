"""Splits respect time and hold unseen learners out until test."""

from __future__ import annotations

import pandas as pd
import pytest

from data.params import build_config
from features.config import SplitConfig
from features.split import (
    SplitPlan,
    assign_splits,
    choose_unseen_learners,
    split_by_learners,
)
from pipelines.features import make_features
from tests.fixtures.events import feature_config, random_events


def test_time_monotone_and_unseen_only_in_test() -> None:
    events = random_events(6, n=1500, n_users=20)
    splits, _, plan = make_features(events, None, feature_config())
    train, val, test = splits["train"], splits["val"], splits["test"]
    assert len(train) and len(val) and len(test)
    assert train["timestamp"].max() < val["timestamp"].min()
    assert val["timestamp"].max() < test["timestamp"].min()
    assert test["timestamp"].min() >= plan.test_start
    assert len(plan.unseen) == 2
    assert not set(train["user_id"]) & plan.unseen
    assert not set(val["user_id"]) & plan.unseen
    assert set(test["user_id"]) & plan.unseen == plan.unseen


def test_assign_splits_by_hand() -> None:
    plan = SplitPlan(val_start=10, test_start=20, unseen=frozenset({"x"}))
    got = assign_splits([5, 10, 19, 20, 5, 25], ["a", "a", "a", "a", "x", "x"], plan)
    assert got.tolist() == ["train", "val", "val", "test", "", "test"]


def test_unseen_choice_is_seeded_and_order_free() -> None:
    users = [f"u{i}" for i in range(50)]
    a = choose_unseen_learners(users, 0.2, 13)
    assert len(a) == 10
    assert a == choose_unseen_learners(users[::-1], 0.2, 13)
    assert a != choose_unseen_learners(users, 0.2, 14)
    assert choose_unseen_learners(users, 0.0, 13) == frozenset()


def test_split_by_learners() -> None:
    ex = pd.DataFrame({"user_id": ["a", "b", "c", "a"], "timestamp": [1, 2, 3, 4]})
    parts = split_by_learners(ex, train_users=["a"], val_users=["b"], test_users=["c"])
    assert parts["train"]["timestamp"].tolist() == [1, 4]
    assert parts["test"]["user_id"].tolist() == ["c"]
    with pytest.raises(ValueError, match="train_users and test_users"):
        split_by_learners(ex, train_users=["a"], val_users=["b"], test_users=["a"])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"val_start_quantile": 1.2}, "val_start_quantile"),
        ({"val_start_quantile": 0.9, "test_start_quantile": 0.8}, "test_start_quantile"),
        ({"unseen_learner_frac": 1.0}, "unseen_learner_frac"),
    ],
)
def test_split_config_ranges(kwargs: dict, field: str) -> None:
    # ranges are the fields' validators: checked where params become a config (build_config)
    with pytest.raises(ValueError, match=f"features.split.{field}"):
        build_config(SplitConfig, kwargs, "features.split")
