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

from data.memory_budget import check_fits_in_memory
from data.params import Range, check_value
from data.sources import DataConfig, load_events
from pipelines import paths
from pipelines.common import (
    PARAMS_FILE,
    ConfigError,
    atomic_outputs,
    build_config,
    load_params,
    resolve_input_path,
    stage_main,
)
from pipelines.dask_data import write_events_dask
from pipelines.engines import LocalEngine, stage_engine

logger = logging.getLogger(__name__)

SECTION = "data"


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
        events.to_parquet(tmp / paths.EVENTS_NAME, index=False)
        oracle.to_parquet(tmp / paths.ORACLE_NAME, index=False)
        text = json.dumps(metrics, indent=2, sort_keys=True, allow_nan=False) + "\n"
        metrics_tmp.write_text(text)


def write_events_local(
    cfg: DataConfig, *, params_path: Path, out_dir: Path, metrics_file: Path
) -> dict[str, Any]:
    """The local engine's step: load (or simulate in one stream), validate, write; file
    sources are read and validated part by part for a directory of Parquet files."""
    logger.info("data source: %s%s", cfg.source, f" ({cfg.path})" if cfg.path else "")
    if cfg.simulator is not None and cfg.source == "simulator":
        check_fits_in_memory(cfg.simulator, f"{params_path}:data.simulator")
    events, oracle = load_events(cfg)
    metrics = data_metrics(events, oracle, pass_mark=cfg.pass_mark)
    write_outputs(events, oracle, metrics, out_dir=out_dir, metrics_file=metrics_file)
    logger.info(
        "wrote %d events (%d learners, %d topics) to %s",
        metrics["n_events"],
        metrics["n_learners"],
        metrics["n_topics"],
        out_dir,
    )
    return metrics


def run(params_path: Path | str, out_dir: Path | str, metrics_file: Path | str) -> dict[str, Any]:
    """Run the stage; returns the metrics written to `metrics_file`.

    The engine writes them (`pipelines.engines`): ``engine: dask`` with the simulator writes
    learner shards; every other case is `write_events_local` (a file source is read and
    validated part by part whatever the engine).
    """
    cfg = load_config(params_path)
    engine = stage_engine(load_params(params_path), str(params_path))
    if cfg.source != "simulator":
        engine = LocalEngine()
    return engine.run(
        write_events_local,
        write_events_dask,
        cfg,
        params_path=Path(params_path),
        out_dir=Path(out_dir),
        metrics_file=Path(metrics_file),
    )


def main(params_path: Path | str = PARAMS_FILE) -> dict[str, Any]:
    """Entry point of `python -m pipelines.data` (paths declared in paths.py)."""
    return run(params_path, **paths.stage_args(SECTION))


if __name__ == "__main__":
    stage_main(main)
