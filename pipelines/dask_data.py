"""``engine: dask`` for the data stage: the simulator's learner shards written by the workers."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from data.simulator import SimulatorConfig
    from data.sources import DataConfig
    from pipelines.engines import DaskEngine

logger = logging.getLogger(__name__)


def write_shard(
    shard: int,
    *,
    sim: SimulatorConfig,
    pass_mark: float,
    learners_per_shard: int,
    events_dir: str,
    oracle_dir: str,
) -> dict[str, Any]:
    """Simulate, validate and write one shard (a Dask task); returns its metric partials."""
    import numpy as np

    from data.simulator import simulate_shard
    from data.validate import validate_events

    events, oracle = simulate_shard(
        sim, pass_mark=pass_mark, shard=shard, learners_per_shard=learners_per_shard
    )
    name = f"part-{shard:05d}.parquet"
    events = validate_events(events, source=f"{events_dir}/{name}")
    events.to_parquet(Path(events_dir) / name, index=False)
    oracle.to_parquet(Path(oracle_dir) / name, index=False)
    ts = events["timestamp"].to_numpy()
    quiz = (events["activity"] == "quiz").to_numpy(dtype=bool)
    fail = (events["score"] < pass_mark).to_numpy(dtype=bool)
    p_fail = oracle["p_fail_true"].to_numpy(dtype=np.float64)
    return {
        "n_events": len(events),
        "n_learners": int(events["user_id"].nunique()),
        "topics": sorted(events["topic_id"].unique().tolist()),
        "n_quizzes": int(quiz.sum()),
        "quiz_fails": int(fail[quiz].sum()),
        "fails": int(fail.sum()),
        "revisits": int(events["is_revisit"].sum()),
        "time_start": int(ts.min()) if len(ts) else None,
        "time_end": int(ts.max()) if len(ts) else None,
        "p_fail_quiz_sum": float(p_fail[quiz].sum()),
        "mastery_sum": float(oracle["mastery_true"].sum()),
    }


def shard_metrics(parts: list[dict[str, Any]], *, learners_per_shard: int) -> dict[str, Any]:
    """`data_metrics`' fields from the shards' partials (the rank-based oracle AUC needs every
    quiz at once, so the sharded run leaves it out)."""
    n = sum(p["n_events"] for p in parts)
    n_quiz = sum(p["n_quizzes"] for p in parts)
    starts = [p["time_start"] for p in parts if p["time_start"] is not None]
    ends = [p["time_end"] for p in parts if p["time_end"] is not None]
    metrics: dict[str, Any] = {
        "n_events": n,
        "n_learners": sum(p["n_learners"] for p in parts),  # shards hold disjoint learners
        "n_topics": len(set().union(*(p["topics"] for p in parts))),
        "n_quizzes": n_quiz,
        "quiz_fail_rate": sum(p["quiz_fails"] for p in parts) / n_quiz if n_quiz else None,
        "fail_rate_all": sum(p["fails"] for p in parts) / n,
        "time_start": min(starts),
        "time_end": max(ends),
        "time_span_days": (max(ends) - min(starts)) / 86_400.0,
        "revisit_rate": sum(p["revisits"] for p in parts) / n,
        "simulated": True,
        "n_shards": len(parts),
        "learners_per_shard": learners_per_shard,
    }
    if n_quiz:
        metrics["oracle_mean_p_fail_quiz"] = sum(p["p_fail_quiz_sum"] for p in parts) / n_quiz
    metrics["mean_mastery_true"] = sum(p["mastery_sum"] for p in parts) / n
    return {k: v for k, v in metrics.items() if v is not None}


def write_events_dask(
    engine: DaskEngine, cfg: DataConfig, *, params_path: Path, out_dir: Path, metrics_file: Path
) -> dict[str, Any]:
    """The simulator's learner shards written by the workers, straight to
    ``events.parquet/part-*.parquet`` and ``oracle.parquet/part-*.parquet`` (same names,
    same rows), never all events in one process (`data.simulator.simulate_shard`). File
    sources never come here: the stage reads them locally, part by part."""
    import functools

    from data.simulator import shard_count
    from pipelines.common import ConfigError, atomic_outputs
    from pipelines.paths import EVENTS_NAME, ORACLE_NAME

    if cfg.simulator is None or cfg.source != "simulator":  # the stage routes file sources
        raise ConfigError("data.simulator: the Dask engine writes the simulator's shards only")
    per_shard = engine.cfg.learners_per_shard
    with atomic_outputs(out_dir, metrics_file) as (tmp, metrics_tmp):
        events_dir, oracle_dir = tmp / EVENTS_NAME, tmp / ORACLE_NAME
        events_dir.mkdir(parents=True)
        oracle_dir.mkdir()
        write = functools.partial(
            write_shard,
            sim=cfg.simulator,
            pass_mark=cfg.pass_mark,
            learners_per_shard=per_shard,
            events_dir=str(events_dir),
            oracle_dir=str(oracle_dir),
        )
        parts = engine.map(write, range(shard_count(cfg.simulator, per_shard)), desc="shards")
        metrics = shard_metrics(parts, learners_per_shard=per_shard)
        metrics_tmp.write_text(
            json.dumps(metrics, indent=2, sort_keys=True, allow_nan=False) + "\n"
        )
    logger.info(
        "wrote %d events in %d shards to %s", metrics["n_events"], metrics["n_shards"], out_dir
    )
    return metrics
