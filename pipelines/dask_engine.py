"""``engine: dask``: the stages' engine steps on a Dask cluster (`pipelines.engines.Engine`).

Every step opens the cluster of the ``dask`` section (`features.engine.dask_client`: a
LocalCluster, or the scheduler at ``DASK_SCHEDULER_ADDRESS``) and runs the same kernels as the
local engine per partition of whole learner histories, so the rows are the same (docs/design.md,
"Engines"). Dask is imported only inside the steps.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from features.engine import DaskConfig, dask_client

if TYPE_CHECKING:
    from data.simulator import SimulatorConfig
    from data.sources import DataConfig
    from features.config import FeatureConfig
    from pipelines.engines import FeaturesResult, R, ScoreResult, T
    from training.scoring import ExportedModel, ScoreConfig

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
    from pipelines.score import part_name
    from training.scoring import level_counts, load_model, score_learners

    wrapped = load_model(model.model_dir, model.sha256)
    scores = score_learners(part, wrapped, as_of=as_of, active_days=active_days, topics=topics)
    scores = scores.sort_values(["user_id", "topic_id"], kind="stable").reset_index(drop=True)
    scores.to_parquet(Path(out_dir) / part_name(i), index=False)
    return level_counts(scores)


class DaskEngine:
    """``engine: dask`` on the cluster ``cfg`` describes (one client per step)."""

    name = "dask"

    def __init__(self, cfg: DaskConfig | None = None) -> None:
        self.cfg = cfg or DaskConfig()

    def write_events(
        self, cfg: DataConfig, *, params_path: Path, out_dir: Path, metrics_file: Path
    ) -> dict[str, Any]:
        """The simulator's learner shards written by the workers, straight to
        ``events.parquet/part-*.parquet`` and ``oracle.parquet/part-*.parquet`` (same names,
        same rows), never all events in one process (`data.simulator.simulate_shard`). File
        sources take the local path (read and validated part by part)."""
        import functools

        from data.simulator import shard_count
        from pipelines.common import ConfigError, atomic_outputs
        from pipelines.data import EVENTS_NAME, ORACLE_NAME, shard_metrics, write_events_local

        if cfg.source != "simulator":
            return write_events_local(
                cfg, params_path=params_path, out_dir=out_dir, metrics_file=metrics_file
            )
        if cfg.simulator is None:  # guarded in DataConfig; kept for the type checker
            raise ConfigError("data.simulator: required when data.source is 'simulator'")
        per_shard = self.cfg.learners_per_shard
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
            parts = self.map(write, range(shard_count(cfg.simulator, per_shard)), desc="shards")
            metrics = shard_metrics(parts, learners_per_shard=per_shard)
            metrics_tmp.write_text(
                json.dumps(metrics, indent=2, sort_keys=True, allow_nan=False) + "\n"
            )
        logger.info(
            "wrote %d events in %d shards to %s", metrics["n_events"], metrics["n_shards"], out_dir
        )
        return metrics

    def write_features(
        self, cfg: FeatureConfig, *, events_file: Path, oracle_file: Path | None, out_dir: Path
    ) -> FeaturesResult:
        """`features.dask_build` on the cluster: the local engine's splits, spec and metrics.

        ``events_file`` may be one Parquet file or a directory of Parquet shards (the data
        stage's output under ``engine: dask``). Splits stream into the same three files, one
        row group per partition, so every later stage reads them unchanged.
        """
        from features.build import spec_from_config
        from features.dask_build import build_examples_dask, split_plan_and_users
        from features.dask_io import event_pieces, events_frame, iter_partitions, write_splits
        from features.dask_peer import compute_peer_table_dask

        pieces = event_pieces(events_file, oracle_file)
        with dask_client(self.cfg) as client:
            frame = events_frame(pieces)
            plan, n_users = split_plan_and_users(frame, cfg)
            peer = compute_peer_table_dask(
                frame,
                prior_weight=cfg.peer_prior_weight,
                before=plan.val_start,
                exclude_users=plan.unseen,
            )
            examples = build_examples_dask(
                frame,
                cfg,
                peer,
                plan,
                learners_per_partition=self.cfg.learners_per_partition,
                n_users=n_users,
            )
            window = 2 * max(len(client.scheduler_info().get("workers", {})), 1)
            metrics = write_splits(iter_partitions(client, examples, window), out_dir, plan.unseen)
        return metrics, spec_from_config(cfg, peer), plan

    @contextmanager
    def final_fit(self) -> Iterator[Callable[..., Any] | None]:
        """`training.weakness_dask.train_booster_dask` bound to a client open meanwhile."""
        import functools

        from training.weakness_dask import train_booster_dask

        with dask_client(self.cfg) as client:
            yield functools.partial(train_booster_dask, client)

    def score(
        self, cfg: ScoreConfig, model: ExportedModel, *, events_file: Path, out_dir: Path
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
        with dask_client(self.cfg):
            frame = events_frame(event_pieces(events_file), columns=list(EVENT_COLUMNS))
            ts = frame["timestamp"]
            first, latest = (int(x) for x in dask.compute(ts.min(), ts.max()))
            as_of = parse_as_of(cfg.as_of, latest=latest)
            check_as_of(as_of, first=first, latest=latest, active_days=cfg.active_days)
            shuffled = by_learner(frame, self.cfg.learners_per_partition)
            tasks = [
                dask.delayed(_score_part)(
                    part, i, str(out_dir), model, as_of, cfg.active_days, topics
                )
                for i, part in enumerate(shuffled.to_delayed())
            ]
            counts: dict[str, dict[str, int]] = {}
            for c in dask.compute(*tasks):
                merge_counts(counts, c)
        return as_of, counts, list(wrapped.labels)

    def map(self, fn: Callable[[T], R], items: Sequence[T], *, desc: str) -> list[R]:
        """One task per item (never cached: the tasks write files), progress as they finish,
        results gathered in the items' order."""
        from distributed import as_completed
        from tqdm import tqdm

        with dask_client(self.cfg) as client:
            futures = client.map(fn, items, pure=False)
            for _ in tqdm(as_completed(futures), total=len(futures), desc=desc, unit="part"):
                pass
            return list(client.gather(futures))
