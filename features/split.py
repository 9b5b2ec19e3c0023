"""Time-respecting splits of the examples, with learners held out entirely for test.

The boundaries come from the assessment timestamps (quantiles), so the model is validated and
tested on later events than it was trained on. Unseen learners contribute only their test-period
examples (earlier ones are dropped) and never feed the peer table.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from features.config import SplitConfig

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class SplitPlan:
    """Where the periods start and which learners are held out (decided before features)."""

    val_start: int
    test_start: int
    unseen: frozenset[str]


def choose_unseen_learners(users: Sequence[str], frac: float, seed: int) -> frozenset[str]:
    """A seeded ``frac`` of the distinct learners (sorted first, so input order does not matter)."""
    distinct = sorted(set(map(str, users)))
    n = round(frac * len(distinct))
    if n == 0:
        return frozenset()
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(distinct), size=n, replace=False)
    return frozenset(distinct[i] for i in picked)


def time_boundaries(timestamps: np.ndarray, val_q: float, test_q: float) -> tuple[int, int]:
    """Start of the validation and test periods: quantiles of the assessment timestamps."""
    if len(timestamps) == 0:
        raise ValueError("split: no assessment timestamps to place the boundaries")
    val_start = int(np.quantile(timestamps, val_q, method="higher"))
    test_start = int(np.quantile(timestamps, test_q, method="higher"))
    if test_start <= val_start:
        logger.warning(
            "split: validation period is empty (val_start == test_start == %d)", val_start
        )
    return val_start, test_start


def plan_split(events: pd.DataFrame, cfg: SplitConfig, assessments: Sequence[str]) -> SplitPlan:
    """Boundaries from the assessment rows of ``events`` and the seeded unseen learners."""
    is_assess = events["activity"].isin(list(assessments)).to_numpy()
    val_start, test_start = time_boundaries(
        events["timestamp"].to_numpy()[is_assess], cfg.val_start_quantile, cfg.test_start_quantile
    )
    unseen = choose_unseen_learners(
        events["user_id"].unique().tolist(), cfg.unseen_learner_frac, cfg.seed
    )
    return SplitPlan(val_start=val_start, test_start=test_start, unseen=unseen)


def assign_splits(timestamps: Any, users: Any, plan: SplitPlan) -> np.ndarray:
    """Split name per example ('train' | 'val' | 'test' | '' = dropped)."""
    import pandas as pd

    ts = np.asarray(timestamps)
    # pandas' hash-based isin: numpy's isin on object arrays is quadratic-ish and dominated
    unseen = pd.Series(users).isin(list(plan.unseen)).to_numpy()
    out = np.full(len(ts), "", dtype=object)
    out[(ts < plan.val_start) & ~unseen] = "train"
    out[(ts >= plan.val_start) & (ts < plan.test_start) & ~unseen] = "val"
    out[ts >= plan.test_start] = "test"
    return out


def split_examples(examples: pd.DataFrame, plan: SplitPlan) -> dict[str, pd.DataFrame]:
    """Examples per split following ``plan`` (unseen learners' pre-test examples dropped)."""
    names = assign_splits(examples["timestamp"].to_numpy(), examples["user_id"], plan)
    parts = {s: examples.loc[names == s].reset_index(drop=True) for s in SPLITS}
    logger.info(
        "split: %s examples, %d dropped (unseen learners before test)",
        {s: len(p) for s, p in parts.items()},
        int((names == "").sum()),
    )
    return parts


def split_by_learners(
    examples: pd.DataFrame,
    *,
    train_users: Collection[str],
    val_users: Collection[str],
    test_users: Collection[str],
) -> dict[str, pd.DataFrame]:
    """Split by given learner lists (e.g. a KT benchmark's fold); lists must not overlap."""
    sets = {"train": set(train_users), "val": set(val_users), "test": set(test_users)}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        overlap = sets[a] & sets[b]
        if overlap:
            raise ValueError(
                f"split_by_learners: {a}_users and {b}_users share {sorted(overlap)[:5]}"
            )
    users = examples["user_id"]
    return {s: examples.loc[users.isin(list(sets[s]))].reset_index(drop=True) for s in SPLITS}
