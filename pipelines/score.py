"""Stage `score`: weakness of every active learner x topic as of a cut-off (nightly batch job).

Reads `outputs/events/events.parquet` (a file, or a directory of shards under engine: dask) and
the exported model `outputs/onnx/weakness/`; writes `outputs/scores/part-*.parquet` (columns
`training.scoring.SCORE_COLUMNS`, one file per block of learners or per Dask partition),
`metrics/score.json` (learners per action level per topic, the model's sha256) and
`plots/score/levels.csv`. Both engines write the same rows (compare sorted by user, topic).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pipelines import paths
from pipelines.common import atomic_outputs, atomic_write_csv, stage_main, write_json
from pipelines.dask_score import score_dask
from pipelines.engines import Engine, LocalEngine, engine_stage
from training.scoring import (
    EVENT_COLUMNS,
    ExportedModel,
    ScoreConfig,
    check_as_of,
    exported_model,
    level_counts,
    load_model,
    merge_counts,
    model_topics,
    parse_as_of,
    part_name,
    score_learners,
    score_summary,
)

logger = logging.getLogger(__name__)

SECTION = "score"


def _read_events(events_file: Path) -> Any:
    import pandas as pd

    from features.dask_io import parquet_files

    files = parquet_files(events_file)
    frames = [pd.read_parquet(f, columns=list(EVENT_COLUMNS)) for f in files]
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def score_local(
    cfg: ScoreConfig, model: ExportedModel, events_file: Path, out_dir: Path
) -> tuple[int, dict[str, dict[str, int]], list[str]]:
    """Score in this process, ``learners_per_file`` learners per part; returns (as_of, counts,
    labels)."""
    from training.scoring import active_users

    events = _read_events(events_file)
    first, latest = int(events["timestamp"].min()), int(events["timestamp"].max())
    as_of = parse_as_of(cfg.as_of, latest=latest)
    users = active_users(events, as_of=as_of, active_days=cfg.active_days)
    check_as_of(as_of, first=first, latest=latest, active_days=cfg.active_days, n_users=len(users))
    wrapped = load_model(model.model_dir, model.sha256)
    topics = model_topics(wrapped)
    counts: dict[str, dict[str, int]] = {}
    user_col = events["user_id"].astype(str)
    for i, start in enumerate(range(0, max(len(users), 1), cfg.learners_per_file)):
        block = users[start : start + cfg.learners_per_file]
        sub = events.loc[user_col.isin(block).to_numpy()] if len(block) else events.iloc[:0]
        scores = score_learners(
            sub, wrapped, as_of=as_of, active_days=cfg.active_days, topics=topics
        )
        scores.to_parquet(out_dir / part_name(i), index=False)
        merge_counts(counts, level_counts(scores))
    logger.info("scored %d learners x %d topics (local)", len(users), len(topics))
    return as_of, counts, list(wrapped.labels)


def run(
    cfg: ScoreConfig,
    *,
    engine: Engine | None = None,
    events_file: Path,
    model_dir: Path,
    out_dir: Path,
    metrics_file: Path,
    plot_file: Path,
) -> dict[str, Any]:
    """Score with ``engine`` (default local) and write parts, metrics and plot (atomically)."""
    engine = engine or LocalEngine()
    model = exported_model(model_dir)
    with atomic_outputs(out_dir, metrics_file) as (tmp, metrics_tmp):
        tmp.mkdir()
        as_of, counts, labels = engine.run(
            score_local, score_dask, cfg, model, events_file=events_file, out_dir=tmp
        )
        metrics, plot = score_summary(
            counts, labels=labels, as_of=as_of, model=model, engine=engine.name
        )
        write_json(metrics_tmp, metrics)
        atomic_write_csv(plot_file, plot, ["topic_id", "level", "learners"])
    logger.info(
        "score: %d rows (%d learners) as of %d with %s -> %s",
        metrics["n_rows"],
        metrics["n_learners"],
        as_of,
        model.version,
        out_dir,
    )
    return metrics


def main() -> None:
    """Entry point of `python -m pipelines.score` (paths declared in paths.py)."""
    cfg, engine = engine_stage(ScoreConfig, SECTION)
    run(cfg, engine=engine, **paths.stage_args(SECTION))


if __name__ == "__main__":
    stage_main(main)
