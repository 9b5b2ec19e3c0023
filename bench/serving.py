"""Weakness serving latency: the serving module's predict vs a naive pandas + LightGBM path.

One learner with 20 topics x 50 attempts (1,000 events). The serving path is
``WeaknessModel.predict`` (request -> history -> shared online features -> ONNX Runtime ->
calibration -> action levels). The naive path builds a pandas DataFrame of the same events,
computes the same features with pandas ``groupby`` and calls LightGBM ``Booster.predict`` on the
same rows, then the same calibration and levels. Prints median / p99 latency of both, the ratio
(target >= 10x), and the largest probability difference between the two paths.

Uses the packaged artifact (``artifacts/weakness/<ref>``) with ``outputs/models/weakness/model.txt``
when both exist, else a tiny artifact and booster built in a temp dir.

    .venv/bin/python bench/serving.py [--repeats 300] [--ref champion]
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.report import add_out, emit  # noqa: E402  (after the repo is on sys.path)

logger = logging.getLogger("bench.serving")
N_TOPICS = 20
N_ATTEMPTS = 50


def learner_request(now: int, seed: int = 0) -> dict[str, Any]:
    """The backend's request for a learner with N_TOPICS x N_ATTEMPTS recent attempts."""
    rng = np.random.default_rng(seed)
    attempts: dict[str, list[dict[str, Any]]] = {}
    for t in range(N_TOPICS):
        mastery = rng.uniform(0.2, 0.95)
        ts = np.sort(now - rng.integers(3600, 120 * 86_400, N_ATTEMPTS))
        attempts[f"topic_{t:02d}"] = [
            {
                "score": round(float(np.clip(rng.normal(mastery, 0.2), 0, 1)), 3),
                "timestamp": int(ts[i]),
                "time_spent_s": round(float(rng.uniform(20, 400)), 1),
                "hints_used": int(rng.integers(0, 4)),
                "is_revisit": bool(rng.random() < 0.2),
                "activity": str(rng.choice(["quiz", "minigame"])),
            }
            for i in range(N_ATTEMPTS)
        ]
    return {"user_id": "bench", "recent_attempts": attempts, "now": now}


def naive_features(body: dict[str, Any], spec: dict[str, Any]) -> Any:
    """The spec's features for every topic at ``now``, computed with plain pandas groupby."""
    import pandas as pd

    now = body["now"]
    rows = [
        {
            "topic_id": t,
            **{
                k: a.get(k)
                for k in ("score", "timestamp", "time_spent_s", "hints_used", "is_revisit")
            },
        }
        for t, atts in body["recent_attempts"].items()
        for a in atts
    ]
    df = pd.DataFrame(rows).sort_values(["topic_id", "timestamp"], kind="stable")
    df = df[df["timestamp"] < now]
    rate = math.log(2.0) / spec["half_life_s"]
    df["w"] = np.exp(-rate * (now - df["timestamp"]))
    df["wx"] = df["w"] * df["score"]
    df["fail"] = df["score"] < spec["pass_mark"]
    g = df.groupby("topic_id", sort=False)
    out = pd.DataFrame(index=pd.Index(list(body["recent_attempts"]), name="topic_id"))
    out["topic_n_attempts"] = g.size()
    out["topic_mean_score"] = g["score"].mean()
    out["topic_decayed_mean"] = g["wx"].sum() / g["w"].sum()
    out["topic_decayed_weight"] = g["w"].sum()
    out["topic_n_fails"] = g["fail"].sum()
    out["topic_n_successes"] = out["topic_n_attempts"] - out["topic_n_fails"]
    out["topic_last_score"] = g["score"].last()
    out["topic_hours_since_last"] = (now - g["timestamp"].max()) / 3600.0
    out["topic_mean_time_spent_s"] = g["time_spent_s"].sum(min_count=1) / g.size()
    out["topic_mean_hints"] = g["hints_used"].sum(min_count=1) / g.size()
    out["topic_n_revisits"] = g["is_revisit"].sum()
    out["topic_revisit_share"] = out["topic_n_revisits"] / out["topic_n_attempts"]
    for k in spec["rolling_windows"]:
        out[f"topic_last{k}_mean"] = g["score"].apply(lambda s, k=k: s.tail(k).mean())
    out["learner_n_attempts"] = float(len(df))
    out["learner_mean_score"] = df["score"].mean()
    out["learner_decayed_mean"] = df["wx"].sum() / df["w"].sum()
    prior = spec["peer"]["prior_mean"]
    weight = spec["peer"]["prior_weight"]
    peer = {t: (v[0] + weight * prior) / (v[1] + weight) for t, v in spec["peer"]["topics"].items()}
    out["peer_topic_mean"] = [peer.get(t, prior) for t in out.index]
    out["topic_mean_minus_peer"] = out["topic_mean_score"] - out["peer_topic_mean"]
    return out[list(spec["names"])].to_numpy(dtype=np.float32)


def _stats(lat: list[float]) -> dict[str, float]:
    lat = sorted(lat)
    return {
        "median_ms": round(statistics.median(lat), 3),
        "p99_ms": round(lat[min(len(lat) - 1, int(0.99 * len(lat)))], 3),
    }


def _time_interleaved(
    fast: Callable[[], Any], slow: Callable[[], Any], repeats: int, block: int = 20
) -> tuple[dict[str, float], dict[str, float]]:
    """Latencies (ms) of both paths, run in alternating blocks so machine noise hits both alike
    (blocks rather than single calls, so one path does not evict the other's caches each call).
    """
    fast()
    slow()  # warm-up
    lat_fast: list[float] = []
    lat_slow: list[float] = []
    while len(lat_fast) < repeats:
        for fn, lat in ((fast, lat_fast), (slow, lat_slow)):
            for _ in range(block):
                t0 = time.perf_counter()
                fn()
                lat.append((time.perf_counter() - t0) * 1000.0)
    return _stats(lat_fast), _stats(lat_slow)


def _artifacts(ref: str, tmp: Path) -> tuple[str, Path, Path, str]:
    """(ref, artifact root, booster file, source label): the pipeline's, else tiny ones."""
    root = REPO / "artifacts"
    booster = REPO / "outputs" / "models" / "weakness" / "model.txt"
    if (root / "weakness").is_dir() and booster.is_file():
        return ref, root, booster, "pipeline artifact"
    from tests.fixtures.weakness import make_weakness_artifact

    make_weakness_artifact(tmp, version=1)
    return "1", tmp, tmp / "weakness" / "booster_v1.txt", "tiny artifact built by the bench"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=300)
    ap.add_argument("--ref", default="champion", help="weakness artifact ref under artifacts/")
    add_out(ap)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import lightgbm as lgb

    from serving.schemas import WeaknessPredictionInput
    from serving.settings import ServingSettings
    from serving.weakness import load_weakness
    from serving.weakness_post import action_levels, apply_calibration

    with tempfile.TemporaryDirectory() as tmp:
        ref, root, booster_file, source = _artifacts(args.ref, Path(tmp))
        model = load_weakness(ref, ServingSettings(artifact_root=root, intra_op_threads=1))
        booster = lgb.Booster(model_file=str(booster_file))
        body = learner_request(now=1_767_225_600)
        request = WeaknessPredictionInput.model_validate(body)

        def serving_path() -> Any:
            return model.predict(request)

        def naive_path() -> Any:
            x = naive_features(body, model.spec)
            p = apply_calibration(booster.predict(x, num_threads=1), model.calibration)
            return p, action_levels(p, model.thresholds, model.labels)

        served = {w.topic_id: w.weakness_probability for w in serving_path().predicted_weaknesses}
        p_naive, _ = naive_path()
        max_diff = max(
            abs(served[t] - p) for t, p in zip(body["recent_attempts"], p_naive, strict=True)
        )
        fast, slow = _time_interleaved(serving_path, naive_path, args.repeats)
    result = {
        "source": source,
        "learner": f"{N_TOPICS} topics x {N_ATTEMPTS} attempts",
        "serving_predict": fast,
        "naive_pandas_lightgbm": slow,
        "ratio_median": round(slow["median_ms"] / fast["median_ms"], 1),
        "ratio_p99": round(slow["p99_ms"] / fast["p99_ms"], 1),
        "max_abs_prob_diff": float(f"{max_diff:.3g}"),
        "target_ratio": 10,
    }
    emit(result, args.out)


if __name__ == "__main__":
    main()
