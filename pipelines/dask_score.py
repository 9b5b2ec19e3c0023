"""``engine: dask`` for the score stage: one part scored and written per partition."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipelines.engines import DaskEngine
    from training.scoring import ExportedModel, ScoreConfig

# (as_of, learners per level per topic, the model's level labels), as the local step returns
ScoreResult = tuple[int, dict[str, dict[str, int]], list[str]]


def _score_part(
    part: Any,
    i: int,
    out_dir: str,
    model: ExportedModel,
    as_of: int,
    active_days: int,
    topics: Sequence[str],
) -> dict[str, dict[str, int]]:
    """One Dask partition (whole learner histories): score, write its part, return counts."""
    from training.scoring import level_counts, load_model, part_name, score_learners

    wrapped = load_model(model.model_dir, model.sha256)
    scores = score_learners(part, wrapped, as_of=as_of, active_days=active_days, topics=topics)
    scores = scores.sort_values(["user_id", "topic_id"], kind="stable").reset_index(drop=True)
    scores.to_parquet(Path(out_dir) / part_name(i), index=False)
    return level_counts(scores)


def score_dask(
    engine: DaskEngine, cfg: ScoreConfig, model: ExportedModel, *, events_file: Path, out_dir: Path
) -> ScoreResult:
    """Events shuffled by learner, one part scored and written per partition."""
    import dask

    from features.dask_build import by_learner
    from features.dask_io import event_pieces, events_frame
    from training.scoring import (
        EVENT_COLUMNS,
        check_as_of,
        load_model,
        merge_counts,
        model_topics,
        parse_as_of,
    )

    wrapped = load_model(model.model_dir, model.sha256)
    topics = model_topics(wrapped)
    with engine.client():
        frame = events_frame(event_pieces(events_file), columns=list(EVENT_COLUMNS))
        ts = frame["timestamp"]
        first, latest = (int(x) for x in dask.compute(ts.min(), ts.max()))
        as_of = parse_as_of(cfg.as_of, latest=latest)
        check_as_of(as_of, first=first, latest=latest, active_days=cfg.active_days)
        shuffled = by_learner(frame, engine.cfg.learners_per_partition)
        tasks = [
            dask.delayed(_score_part)(part, i, str(out_dir), model, as_of, cfg.active_days, topics)
            for i, part in enumerate(shuffled.to_delayed())
        ]
        counts: dict[str, dict[str, int]] = {}
        for c in dask.compute(*tasks):
            merge_counts(counts, c)
    return as_of, counts, list(wrapped.labels)
