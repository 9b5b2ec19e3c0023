"""Tiny synthetic feature splits shaped like `outputs/features/*.parquet` (for weakness tests)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

NAMES = ["topic_mean", "topic_n_attempts", "learner_level", "since_last_s", "noise"]


def make_frame(n: int, seed: int, t0: int = 1_700_000_000, n_users: int = 40) -> pd.DataFrame:
    """Rows with a known fail probability driven by the first features (NaN allowed in one)."""
    rng = np.random.default_rng(seed)
    topic_mean = rng.uniform(0, 1, n)
    attempts = rng.integers(0, 30, n).astype(np.float64)
    level = rng.uniform(0, 1, n)
    since = rng.exponential(86400, n)
    since[attempts == 0] = np.nan
    noise = rng.normal(size=n)
    z = 2.0 - 3.0 * topic_mean - 1.5 * level + 0.02 * attempts
    p_fail = 1 / (1 + np.exp(-z))
    label = (rng.uniform(size=n) < p_fail).astype(np.int8)
    df = pd.DataFrame(
        {
            "user_id": [f"u{i % n_users}" for i in range(n)],
            "topic_id": [f"t{i % 5}" for i in range(n)],
            "timestamp": t0 + np.arange(n, dtype=np.int64) * 60,
            "score": np.where(label == 1, 0.3, 0.9),
            "label": label,
            "p_fail_true": p_fail,
        }
    )
    for name, col in zip(NAMES, (topic_mean, attempts, level, since, noise), strict=True):
        df[name] = col.astype(np.float32)
    return df


def write_features_dir(
    root: Path, n_train: int = 1500, n_val: int = 500, n_test: int = 500
) -> Path:
    """Write train/val/test parquet + feature_spec.json under ``root`` and return it."""
    root.mkdir(parents=True, exist_ok=True)
    make_frame(n_train, 1).to_parquet(root / "train.parquet", index=False)
    make_frame(n_val, 2, t0=1_800_000_000).to_parquet(root / "val.parquet", index=False)
    make_frame(n_test, 3, t0=1_900_000_000).to_parquet(root / "test.parquet", index=False)
    spec = {
        "version": 1,
        "input_name": "features",
        "names": NAMES,
        "dtypes": ["float32"] * len(NAMES),
        "pass_mark": 0.6,
        "rolling_windows": [3, 10],
        "half_life_s": 604800.0,
        "assessment_activities": ["quiz"],
        "peer": {"prior_mean": 0.7, "prior_weight": 20.0, "topics": {}},
    }
    (root / "feature_spec.json").write_text(json.dumps(spec))
    return root


TINY_PARAMS: dict = {
    "seed": 3,
    "num_threads": 1,
    "imbalance": "balanced",
    "num_boost_round": 60,
    "early_stopping_rounds": 10,
    "base": {"num_leaves": 7, "learning_rate": 0.1, "min_data_in_leaf": 20},
    "tuning": {
        "n_trials": 2,
        "max_train_rows": 1000,
        "timeout_s": 60,
        "space": {
            "num_leaves": {"low": 4, "high": 15, "kind": "int"},
            "learning_rate": {"low": 0.05, "high": 0.3, "log": True},
        },
    },
    "calibration": "isotonic",
    "ece_bins": 10,
    "action_thresholds": [0.3, 0.5, 0.7],
    "action_labels": ["none", "review", "practice", "intervene"],
}
