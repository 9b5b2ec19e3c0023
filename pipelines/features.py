"""Stage `features`: learner events -> time-split weakness examples and the feature spec.

Reads `outputs/events/{events,oracle}.parquet`; writes `outputs/features/{train,val,test}.parquet`
with `outputs/features/feature_spec.json` (one directory, replaced atomically) and
`metrics/features.json`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from core.spec import SPEC_FILENAME, write_spec_text
from features.build import build_examples, spec_from_config
from features.config import FeatureConfig
from features.engine import DaskConfig, engine_config
from features.peer import compute_peer_table
from features.split import SPLITS, SplitPlan, plan_split, split_examples
from pipelines.common import (
    REPO_ROOT,
    atomic_outputs,
    build_config,
    load_params,
    load_section,
    stage_main,
)

logger = logging.getLogger(__name__)

SECTION = "features"
EVENTS_FILE = REPO_ROOT / "outputs" / "events" / "events.parquet"
ORACLE_FILE = REPO_ROOT / "outputs" / "events" / "oracle.parquet"
OUT_DIR = REPO_ROOT / "outputs" / "features"
METRICS_FILE = REPO_ROOT / "metrics" / "features.json"


def make_features(
    events: Any, oracle: Any, cfg: FeatureConfig
) -> tuple[dict[str, Any], dict[str, Any], SplitPlan]:
    """Pure part of the stage: (splits by name, spec, split plan) from events in memory.

    The plan comes first: the peer table may only see events before the validation start from
    learners that are not held out, and the examples' peer features depend on it.
    """
    plan = plan_split(events, cfg.split, cfg.assessment_activities)
    peer = compute_peer_table(
        events, prior_weight=cfg.peer_prior_weight, before=plan.val_start, exclude_users=plan.unseen
    )
    examples = build_examples(events, oracle, cfg=cfg, peer=peer)
    splits = split_examples(examples, plan)
    return splits, spec_from_config(cfg, peer), plan


def split_metrics(splits: dict[str, Any], unseen: frozenset[str] | set[str]) -> dict[str, Any]:
    """Rows and positive (fail) rate per split, and how many unseen learners reach test."""
    metrics: dict[str, Any] = {}
    for name in SPLITS:
        part = splits[name]
        metrics[f"{name}_rows"] = len(part)
        metrics[f"{name}_positive_rate"] = float(part["label"].mean()) if len(part) else 0.0
    test_users = set(splits["test"]["user_id"].unique())
    metrics["test_unseen_learners"] = len(test_users & set(unseen))
    return metrics


def run(
    cfg: FeatureConfig,
    *,
    events_file: Path = EVENTS_FILE,
    oracle_file: Path | None = ORACLE_FILE,
    out_dir: Path = OUT_DIR,
    metrics_file: Path = METRICS_FILE,
) -> dict[str, Any]:
    """Read events, build the splits and spec, write them atomically; return the metrics."""
    import pandas as pd

    if Path(events_file).is_dir():
        raise IsADirectoryError(f"{events_file}: is a directory, expected a file")
    if not Path(events_file).is_file():
        raise FileNotFoundError(f"{events_file}: events not found (run the data stage)")
    events = pd.read_parquet(events_file)
    oracle = (
        pd.read_parquet(oracle_file)
        if oracle_file is not None and Path(oracle_file).is_file()
        else None
    )
    splits, spec, plan = make_features(events, oracle, cfg)
    metrics = split_metrics(splits, plan.unseen)
    metrics["n_features"] = len(spec["names"])
    metrics["val_start"] = plan.val_start
    metrics["test_start"] = plan.test_start
    with atomic_outputs(out_dir, metrics_file) as (tmp, metrics_tmp):
        tmp.mkdir()
        for name, part in splits.items():
            part.to_parquet(tmp / f"{name}.parquet", index=False)
        (tmp / SPEC_FILENAME).write_text(write_spec_text(spec))
        metrics_tmp.write_text(
            json.dumps(metrics, indent=2, sort_keys=True, allow_nan=False) + "\n"
        )
    logger.info("features written to %s: %s", out_dir, metrics)
    return metrics


def run_dask(
    cfg: FeatureConfig,
    dask_cfg: DaskConfig,
    *,
    events_file: Path = EVENTS_FILE,
    oracle_file: Path | None = ORACLE_FILE,
    out_dir: Path = OUT_DIR,
    metrics_file: Path = METRICS_FILE,
) -> dict[str, Any]:
    """`run` on a Dask cluster (`features.dask_build`): the same splits, spec and metrics.

    ``events_file`` may be one Parquet file or a directory of Parquet shards (the data stage's
    output under ``engine: dask``). Splits stream into the same three files, one row group per
    partition, so every later stage reads them unchanged.
    """
    from features.dask_build import (
        build_examples_dask,
        compute_peer_table_dask,
        event_pieces,
        events_frame,
        iter_partitions,
        split_plan_and_users,
        write_splits,
    )
    from features.engine import dask_client

    pieces = event_pieces(events_file, oracle_file)
    with dask_client(dask_cfg) as client:
        frame = events_frame(pieces)
        plan, n_users = split_plan_and_users(frame, cfg)
        peer = compute_peer_table_dask(
            frame,
            prior_weight=cfg.peer_prior_weight,
            before=plan.val_start,
            exclude_users=plan.unseen,
        )
        spec = spec_from_config(cfg, peer)
        examples = build_examples_dask(
            frame,
            cfg,
            peer,
            plan,
            learners_per_partition=dask_cfg.learners_per_partition,
            n_users=n_users,
        )
        with atomic_outputs(out_dir, metrics_file) as (tmp, metrics_tmp):
            tmp.mkdir()
            window = 2 * max(len(client.scheduler_info().get("workers", {})), 1)
            metrics = write_splits(iter_partitions(client, examples, window), tmp, plan.unseen)
            metrics["n_features"] = len(spec["names"])
            metrics["val_start"] = plan.val_start
            metrics["test_start"] = plan.test_start
            (tmp / SPEC_FILENAME).write_text(write_spec_text(spec))
            metrics_tmp.write_text(
                json.dumps(metrics, indent=2, sort_keys=True, allow_nan=False) + "\n"
            )
    logger.info("features (dask) written to %s: %s", out_dir, metrics)
    return metrics


def main() -> None:
    """Entry point of `python -m pipelines.features` (paths fixed by dvc.yaml).

    ``engine: dask`` (params.yaml) runs `run_dask`; the default runs `run`, unchanged.
    """
    cfg = build_config(FeatureConfig, load_section(SECTION), SECTION)
    engine = engine_config(load_params())
    if engine.engine == "dask":
        run_dask(cfg, engine.dask)
        return
    run(cfg)


if __name__ == "__main__":
    stage_main(main)
