"""Stage `data`: learner events from the configured source, validated, as Parquet.

Reads params `data` (+ `features.pass_mark`, which defines the simulator's fail probability);
writes `outputs/events/{events,oracle}.parquet` (one directory, replaced atomically) and
`metrics/data.json`. Nothing is written when loading or validation fails.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any

import numpy as np

from data.params import Range, check_value
from data.simulator import SimulatorConfig, check_fits_in_memory
from data.sources import DataConfig, load_events
from features.engine import DaskConfig, engine_config
from pipelines.common import (
    PARAMS_FILE,
    REPO_ROOT,
    ConfigError,
    atomic_outputs,
    build_config,
    load_params,
    resolve_input_path,
    stage_main,
)

logger = logging.getLogger(__name__)

SECTION = "data"
OUT_DIR = REPO_ROOT / "outputs" / "events"
METRICS_FILE = REPO_ROOT / "metrics" / "data.json"
EVENTS_NAME = "events.parquet"
ORACLE_NAME = "oracle.parquet"


def load_config(params_path: Path | str = PARAMS_FILE) -> DataConfig:
    """Build the typed config from `data` + `features.pass_mark`.

    A relative `data.path` is taken relative to the params file's folder (the repo root for
    `dvc repro`), so a run does not depend on the working directory.
    """
    params_path = Path(params_path)
    params = load_params(params_path)
    section = params.get(SECTION)
    if not isinstance(section, dict):
        raise ConfigError(f"{params_path}: section '{SECTION}' missing or not a mapping")
    if "pass_mark" in section:
        raise ConfigError(f"{params_path}: data.pass_mark is not allowed; set features.pass_mark")
    features = params.get("features")
    if not isinstance(features, dict) or "pass_mark" not in features:
        raise ConfigError(f"{params_path}: features.pass_mark is required by the data stage")
    # Checked under its own key: the value is injected into DataConfig, whose errors would
    # otherwise name it `data.pass_mark`.
    pass_mark = check_value(
        Annotated[float, Range(0.0, 1.0, lo_open=True)],
        features["pass_mark"],
        f"{params_path}:features.pass_mark",
    )
    values = {**section, "pass_mark": pass_mark}
    if values.get("path"):
        values["path"] = str(resolve_input_path(str(values["path"]), params_path.parent))
    return build_config(DataConfig, values, f"{params_path}:{SECTION}")


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC by ranks (ties averaged); NaN when only one class is present."""
    from scipy.stats import rankdata

    labels = labels.astype(bool)
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def data_metrics(events: Any, oracle: Any, *, pass_mark: float) -> dict[str, Any]:
    """Sizes, time span and fail rates; oracle AUC and calibration when the truth is known."""
    ts = events["timestamp"].to_numpy()
    quiz = (events["activity"] == "quiz").to_numpy(dtype=bool)
    fail = (events["score"] < pass_mark).to_numpy(dtype=bool)
    metrics: dict[str, Any] = {
        "n_events": len(events),
        "n_learners": int(events["user_id"].nunique()),
        "n_topics": int(events["topic_id"].nunique()),
        "n_quizzes": int(quiz.sum()),
        "quiz_fail_rate": float(fail[quiz].mean()) if quiz.any() else None,
        "fail_rate_all": float(fail.mean()),
        "time_start": int(ts.min()),
        "time_end": int(ts.max()),
        "time_span_days": float((ts.max() - ts.min()) / 86_400.0),
        "revisit_rate": float(events["is_revisit"].mean()),
    }
    p_fail = oracle["p_fail_true"].to_numpy(dtype=np.float64)
    simulated = bool(np.isfinite(p_fail).all())
    metrics["simulated"] = simulated
    if simulated and quiz.any():
        metrics["oracle_auc"] = auc(fail[quiz], p_fail[quiz])
        metrics["oracle_mean_p_fail_quiz"] = float(p_fail[quiz].mean())
        metrics["mean_mastery_true"] = float(oracle["mastery_true"].mean())
    return {k: v for k, v in metrics.items() if not (isinstance(v, float) and np.isnan(v))}


def write_outputs(
    events: Any, oracle: Any, metrics: dict[str, Any], *, out_dir: Path, metrics_file: Path
) -> None:
    """Write the events directory (as a whole) and the metrics; they never disagree after a kill."""
    with atomic_outputs(out_dir, metrics_file) as (tmp, metrics_tmp):
        tmp.mkdir(parents=True)
        events.to_parquet(tmp / EVENTS_NAME, index=False)
        oracle.to_parquet(tmp / ORACLE_NAME, index=False)
        text = json.dumps(metrics, indent=2, sort_keys=True, allow_nan=False) + "\n"
        metrics_tmp.write_text(text)


def _write_shard(
    shard: int,
    *,
    sim: SimulatorConfig,
    pass_mark: float,
    learners_per_shard: int,
    events_dir: str,
    oracle_dir: str,
) -> dict[str, Any]:
    """Simulate, validate and write one shard (a Dask task); returns its metric partials."""
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


def write_shards(
    cfg: DataConfig, dask_cfg: DaskConfig, *, out_dir: Path, metrics_file: Path
) -> dict[str, Any]:
    """``engine: dask``: the simulator's learner shards written by the workers, straight to
    ``events.parquet/part-*.parquet`` and ``oracle.parquet/part-*.parquet`` (same names, same
    rows), never all events in one process (`data.simulator.simulate_shard`)."""
    from data.simulator import shard_count
    from features.engine import dask_client

    if cfg.simulator is None:  # guarded in DataConfig; kept for the type checker
        raise ConfigError("data.simulator: required when data.source is 'simulator'")
    n_shards = shard_count(cfg.simulator, dask_cfg.learners_per_shard)
    with atomic_outputs(out_dir, metrics_file) as (tmp, metrics_tmp):
        events_dir, oracle_dir = tmp / EVENTS_NAME, tmp / ORACLE_NAME
        events_dir.mkdir(parents=True)
        oracle_dir.mkdir()
        with dask_client(dask_cfg) as client:
            futures = client.map(
                _write_shard,
                range(n_shards),
                sim=cfg.simulator,
                pass_mark=cfg.pass_mark,
                learners_per_shard=dask_cfg.learners_per_shard,
                events_dir=str(events_dir),
                oracle_dir=str(oracle_dir),
                pure=False,
            )
            parts = client.gather(futures)
        metrics = shard_metrics(parts, learners_per_shard=dask_cfg.learners_per_shard)
        metrics_tmp.write_text(
            json.dumps(metrics, indent=2, sort_keys=True, allow_nan=False) + "\n"
        )
    return metrics


def main(
    params_path: Path | str = PARAMS_FILE,
    out_dir: Path | str = OUT_DIR,
    metrics_file: Path | str = METRICS_FILE,
) -> dict[str, Any]:
    """Run the stage; returns the metrics written to `metrics_file`.

    ``engine: dask`` with the simulator writes learner shards (`write_shards`); every other
    case is the local path, unchanged (file sources are read and validated here, part by part
    for a directory of Parquet files).
    """
    cfg = load_config(params_path)
    engine = engine_config(load_params(params_path), str(params_path))
    if engine.engine == "dask" and cfg.source == "simulator":
        metrics = write_shards(
            cfg, engine.dask, out_dir=Path(out_dir), metrics_file=Path(metrics_file)
        )
        logger.info(
            "wrote %d events in %d shards to %s", metrics["n_events"], metrics["n_shards"], out_dir
        )
        return metrics
    logger.info("data source: %s%s", cfg.source, f" ({cfg.path})" if cfg.path else "")
    if cfg.simulator is not None and cfg.source == "simulator":
        check_fits_in_memory(cfg.simulator, f"{params_path}:data.simulator")
    events, oracle = load_events(cfg)
    metrics = data_metrics(events, oracle, pass_mark=cfg.pass_mark)
    write_outputs(events, oracle, metrics, out_dir=Path(out_dir), metrics_file=Path(metrics_file))
    logger.info(
        "wrote %d events (%d learners, %d topics) to %s",
        metrics["n_events"],
        metrics["n_learners"],
        metrics["n_topics"],
        out_dir,
    )
    return metrics


if __name__ == "__main__":
    stage_main(main)
