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
from features.peer import compute_peer_table
from features.split import SPLITS, SplitPlan, plan_split, split_examples
from pipelines import paths
from pipelines.common import atomic_outputs, stage_main
from pipelines.dask_features import write_features_dask
from pipelines.engines import Engine, LocalEngine, engine_stage

logger = logging.getLogger(__name__)

SECTION = "features"


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


def write_features_local(
    cfg: FeatureConfig, *, events_file: Path, oracle_file: Path | None, out_dir: Path
) -> tuple[dict[str, Any], dict[str, Any], SplitPlan]:
    """The local engine's step: read the events file, `make_features`, write the three splits
    into ``out_dir``; returns (split metrics, spec, plan)."""
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
    for name, part in splits.items():
        part.to_parquet(out_dir / f"{name}.parquet", index=False)
    return split_metrics(splits, plan.unseen), spec, plan


def run(
    cfg: FeatureConfig,
    *,
    engine: Engine | None = None,
    events_file: Path,
    oracle_file: Path | None,
    out_dir: Path,
    metrics_file: Path,
) -> dict[str, Any]:
    """Build the splits and spec with ``engine`` (default local), write them atomically;
    return the metrics. Both engines write the same metrics, spec and rows."""
    engine = engine or LocalEngine()
    with atomic_outputs(out_dir, metrics_file) as (tmp, metrics_tmp):
        tmp.mkdir()
        metrics, spec, plan = engine.run(
            write_features_local,
            write_features_dask,
            cfg,
            events_file=events_file,
            oracle_file=oracle_file,
            out_dir=tmp,
        )
        metrics["n_features"] = len(spec["names"])
        metrics["val_start"] = plan.val_start
        metrics["test_start"] = plan.test_start
        (tmp / SPEC_FILENAME).write_text(write_spec_text(spec))
        metrics_tmp.write_text(
            json.dumps(metrics, indent=2, sort_keys=True, allow_nan=False) + "\n"
        )
    logger.info("features (%s engine) written to %s: %s", engine.name, out_dir, metrics)
    return metrics


def main() -> None:
    """Entry point of `python -m pipelines.features` (paths declared in paths.py); the engine
    named in params.yaml builds the examples."""
    cfg, engine = engine_stage(FeatureConfig, SECTION)
    run(cfg, engine=engine, **paths.stage_args(SECTION))


if __name__ == "__main__":
    stage_main(main)
