"""Peer statistics see only training-period events of learners that are not held out."""

from __future__ import annotations

import numpy as np
import pytest

from features.peer import compute_peer_table
from features.split import plan_split
from pipelines.features import make_features
from tests.fixtures.events import feature_config, random_events


def test_peer_table_by_hand() -> None:
    events = random_events(0, n=30)
    events["score"] = 0.5
    events.loc[events["topic_id"] == "t1", "score"] = 1.0
    table = compute_peer_table(events, prior_weight=3.0, before=None)
    n1 = int((events["topic_id"] == "t1").sum())
    assert table["topics"]["t1"] == [float(n1), float(n1)]
    assert table["prior_mean"] == pytest.approx(events["score"].mean())
    assert table["prior_weight"] == 3.0


def test_peer_never_sees_val_test_period_or_unseen_learners() -> None:
    events = random_events(4, n=800, n_users=10)
    cfg = feature_config()
    plan = plan_split(events, cfg.split, cfg.assessment_activities)
    assert plan.unseen  # 10% of 10 learners
    _, spec, _ = make_features(events, None, cfg)

    perturbed = events.copy()
    rng = np.random.default_rng(1)
    hidden = (perturbed["timestamp"] >= plan.val_start) | perturbed["user_id"].isin(plan.unseen)
    assert hidden.any()
    perturbed.loc[hidden, "score"] = rng.random(int(hidden.sum()))
    _, spec2, plan2 = make_features(perturbed, None, cfg)
    assert plan2 == plan
    assert spec2["peer"] == spec["peer"]

    # ... while a training-period change does move it (the comparison can fail)
    seen = ~hidden.to_numpy()
    perturbed.loc[seen, "score"] = 1.0 - perturbed.loc[seen, "score"]
    _, spec3, _ = make_features(perturbed, None, cfg)
    assert spec3["peer"] != spec["peer"]


def test_empty_selection_raises() -> None:
    events = random_events(0, n=10)
    with pytest.raises(ValueError, match="no training-period events"):
        compute_peer_table(events, prior_weight=1.0, before=-1)
