"""The Polars peer of the benchmark computes our features (else its timing means nothing)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.spec import build_spec
from features.build import compute_features

pytest.importorskip("polars")

BENCH = Path(__file__).resolve().parents[2] / "bench" / "polars_features.py"


def _peer_module():
    spec = importlib.util.spec_from_file_location("bench_polars_features", BENCH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _events(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.integers(1_700_000_000, 1_700_000_000 + 60 * 86_400, n))
    ts[5:9] = ts[5]  # a same-timestamp block: all its queries see the state before it
    return pd.DataFrame(
        {
            "user_id": rng.choice(["u1", "u2", "u3"], n),
            "topic_id": rng.choice(["a", "b"], n),
            "timestamp": ts.astype(np.int64),
            "activity": rng.choice(["quiz", "minigame"], n),
            "score": rng.random(n).round(2),
            "time_spent_s": rng.uniform(5, 300, n),
            "hints_used": rng.integers(0, 3, n).astype(float),
            "is_revisit": rng.random(n) < 0.2,
        }
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_polars_peer_equals_the_kernel(seed: int) -> None:
    events = _events(300, seed)
    spec = build_spec(
        pass_mark=0.6,
        rolling_windows=(3, 10),
        half_life_s=7 * 86_400.0,
        assessment_activities=("quiz",),
        peer={"prior_mean": 0.7, "prior_weight": 20.0, "topics": {"a": [30.0, 50.0]}},
    )
    ours = compute_features(events, spec)
    theirs = _peer_module().polars_features(events, spec)
    assert theirs.shape == ours.shape
    np.testing.assert_allclose(theirs, ours, rtol=1e-6, atol=1e-6, equal_nan=True)
