"""Tiny inline event tables for the feature tests (no simulator, no files)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.config import FeatureConfig

PEER = {"prior_mean": 0.5, "prior_weight": 20.0, "topics": {"a": [30.0, 40.0]}}


def config(**overrides: object) -> FeatureConfig:
    """Feature config with windows (2, 10) and a 7-day half-life unless overridden."""
    values: dict[str, object] = {
        "pass_mark": 0.6,
        "assessment_activities": ("quiz",),
        "rolling_windows": (2, 10),
        "half_life_days": 7.0,
        "peer_prior_weight": 20.0,
    }
    values.update(overrides)
    return FeatureConfig(**values)  # type: ignore[arg-type]


def random_events(seed: int, *, n: int = 600, n_users: int = 4, n_topics: int = 3) -> pd.DataFrame:
    """Random events with many timestamp ties (hour grid) across users and topics."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "user_id": rng.choice([f"u{i}" for i in range(n_users)], n),
            "topic_id": rng.choice([f"t{i}" for i in range(n_topics)], n),
            "item_id": "",
            "timestamp": (rng.integers(0, 120, n) * 3600).astype(np.int64),
            "activity": rng.choice(["quiz", "minigame"], n),
            "score": rng.integers(0, 21, n) / 20.0,
            "time_spent_s": rng.random(n) * 300.0,
            "hints_used": rng.integers(0, 4, n),
            "attempt": 1,
            "is_revisit": rng.random(n) < 0.3,
        }
    )
