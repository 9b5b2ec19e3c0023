"""``engine: dask`` for the features stage: `features.dask_build` on the cluster."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from features.config import FeatureConfig
    from features.split import SplitPlan
    from pipelines.engines import DaskEngine

# (split metrics, feature spec, split plan): what the local step returns too
FeaturesResult = tuple[dict[str, Any], dict[str, Any], "SplitPlan"]


def write_features_dask(
    engine: DaskEngine,
    cfg: FeatureConfig,
    *,
    events_file: Path,
    oracle_file: Path | None,
    out_dir: Path,
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
    with engine.client() as client:
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
            learners_per_partition=engine.cfg.learners_per_partition,
            n_users=n_users,
        )
        window = 2 * max(len(client.scheduler_info().get("workers", {})), 1)
        metrics = write_splits(iter_partitions(client, examples, window), out_dir, plan.unseen)
    return metrics, spec_from_config(cfg, peer), plan
