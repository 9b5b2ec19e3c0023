"""The features stage on Dask: the same examples as `features.build`, partitioned by learner.

Why it gives the local engine's numbers: the shared kernel computes each learner's values from
that learner's events only, in their input order (`core.kernel`), so running
`features.build.build_examples` on a partition holding whole learner histories, rows kept in
the global input order, gives the same float32 rows bit for bit. What needs the whole table is
done as distributed aggregations whose results equal the local ones:

- the split plan: the boundaries are order statistics of the assessment timestamps (found
  exactly in two counting passes, the value `np.quantile(..., method="higher")` returns) and the
  unseen learners are drawn by `features.split.choose_unseen_learners` from the distinct ids;
- the peer table (`features.dask_peer`): exact per-topic sums, independent of the
  partitioning.

Inputs and outputs (`features.dask_io`): every event keeps its global row number `_gid`, so a
partition can restore the input order after the shuffle by learner. An input already
partitioned by learner (the simulator's shards; checked exactly in the plan pass) is not
shuffled at all (`by_learner`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from features.build import build_examples
from features.config import FeatureConfig
from features.dask_io import GID, SPLIT
from features.dask_peer import in_set
from features.split import SplitPlan, assign_splits, choose_unseen_learners

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- split plan


def quantile_index(n: int, q: float) -> int:
    """The 0-based rank ``np.quantile(x, q, method="higher")`` returns for ``len(x) == n``."""
    return int(np.ceil(q * (n - 1)))


def kth_smallest(values: Any, k: int, *, coarse: int = 86_400) -> int:
    """The k-th smallest (0-based) of an integer dask Series, exactly (see `order_statistics`)."""
    return order_statistics(values, [k], coarse=coarse)[0]


def _counts_in(values: pd.Series, wanted: Sequence[int] | None, coarse: int) -> pd.Series:
    """Counts per ``coarse`` bucket (``wanted`` None), else per value inside those buckets.

    Per partition and added on the client: a dask ``value_counts`` of many distinct values
    runs as a shuffle (a pass of its own over the values)."""
    import pandas as pd

    v = values.to_numpy()
    if wanted is None:
        return pd.Series(v // coarse).value_counts()
    return pd.Series(v[np.isin(v // coarse, np.asarray(wanted))]).value_counts()


def _add_counts(parts: Sequence[pd.Series]) -> pd.Series:
    import pandas as pd

    kept = [c for c in parts if len(c)]
    if not kept:
        return pd.Series([], dtype=np.int64)
    return pd.concat(kept).groupby(level=0).sum()


def order_statistics(
    values: Any, ks: Sequence[int], *, coarse: int = 86_400, buckets: Any = None
) -> list[int]:
    """The ks-th smallest (0-based) of an integer dask Series, exactly, in two counting passes:
    counts per ``coarse`` bucket find each k's bucket (``buckets``: those counts, when already
    computed), value counts inside those buckets find the values."""
    import dask

    parts = values.to_delayed()
    if buckets is None:
        buckets = _add_counts(
            dask.compute(*[dask.delayed(_counts_in)(p, None, coarse) for p in parts])
        )
    buckets = buckets.sort_index()
    cum = np.cumsum(buckets.to_numpy())
    where = []
    for k in ks:
        b = int(np.searchsorted(cum, k, side="right"))
        where.append((int(buckets.index[b]), k - (int(cum[b - 1]) if b else 0)))
    wanted = sorted({b for b, _ in where})
    counts = _add_counts(
        dask.compute(*[dask.delayed(_counts_in)(p, wanted, coarse) for p in parts])
    ).sort_index()
    out = []
    for b, rank in where:
        sel = counts[(counts.index.to_numpy() // coarse) == b]
        cum_in = np.cumsum(sel.to_numpy())
        out.append(int(sel.index[int(np.searchsorted(cum_in, rank, side="right"))]))
    return out


def plan_split_dask(events: Any, cfg: FeatureConfig) -> SplitPlan:
    """`features.split.plan_split` on a dask frame: the same boundaries and unseen learners."""
    return split_plan_and_users(events, cfg)[0]


@dataclass(frozen=True)
class LearnerLayout:
    """Distinct learners per partition of an event frame, and whether no learner spans two.

    ``disjoint`` is exact: the per-partition distinct counts add up to the global distinct
    count only when every learner's events sit in one partition (the simulator's learner
    shards, or any source written by learner)."""

    n_users: int
    per_partition: tuple[int, ...]

    @property
    def disjoint(self) -> bool:
        return sum(self.per_partition) == self.n_users


# Layouts found by a pass over a frame, keyed by the frame's expression name (a token of the
# whole expression: a frame derived from it in any way has another name and is never taken for
# it), so `by_learner` reuses the split-plan pass instead of reading the user ids again.
_LAYOUTS: dict[str, LearnerLayout] = {}
_MAX_LAYOUTS = 64


def _remember(events: Any, layout: LearnerLayout) -> None:
    if len(_LAYOUTS) >= _MAX_LAYOUTS:
        _LAYOUTS.pop(next(iter(_LAYOUTS)))
    _LAYOUTS[events._name] = layout


def _layout_from_uniques(uniques: Sequence[np.ndarray]) -> tuple[LearnerLayout, np.ndarray]:
    import pandas as pd

    everyone = pd.unique(np.concatenate([np.asarray(u, dtype=object) for u in uniques]))
    layout = LearnerLayout(len(everyone), tuple(len(u) for u in uniques))
    return layout, everyone


def _unique_users(part: pd.DataFrame) -> np.ndarray:
    return np.asarray(part["user_id"].unique(), dtype=object)


def learner_layout(events: Any) -> LearnerLayout:
    """The frame's `LearnerLayout` (remembered from `split_plan_and_users` when it ran on this
    very frame; otherwise one pass over the user ids, what ``nunique`` would cost)."""
    import dask

    cached = _LAYOUTS.get(events._name)
    if cached is not None:
        return cached
    uniques = dask.compute(
        *[dask.delayed(_unique_users)(p) for p in events[["user_id"]].to_delayed()]
    )
    layout, _ = _layout_from_uniques(uniques)
    _remember(events, layout)
    return layout


def _plan_partials(
    part: pd.DataFrame, activities: tuple[str, ...], coarse: int
) -> tuple[pd.Series, np.ndarray]:
    """One partition's share of the plan pass: assessment counts per coarse time bucket and
    its distinct learners (read once, both from the same partition)."""
    import pandas as pd

    ts = part["timestamp"].to_numpy()[part["activity"].isin(list(activities)).to_numpy()]
    return pd.Series(ts // coarse).value_counts(), _unique_users(part)


def split_plan_and_users(
    events: Any, cfg: FeatureConfig, *, coarse: int = 86_400
) -> tuple[SplitPlan, int]:
    """The split plan and the number of distinct learners, in two passes over the events.

    The first pass also gives each partition's distinct learners (`learner_layout`, kept for
    `by_learner`, which then needs no pass of its own and skips the shuffle when the input is
    already partitioned by learner)."""
    import dask

    t0 = time.perf_counter()
    activities = tuple(cfg.assessment_activities)
    cols = events[["user_id", "timestamp", "activity"]].to_delayed()
    partials = dask.compute(*[dask.delayed(_plan_partials)(p, activities, coarse) for p in cols])
    buckets = _add_counts([b for b, _ in partials])
    layout, users = _layout_from_uniques([u for _, u in partials])
    _remember(events, layout)
    n = int(buckets.sum())
    if n == 0:
        raise ValueError("split: no assessment timestamps to place the boundaries")
    ts = events["timestamp"][events["activity"].isin(list(cfg.assessment_activities))]
    val_start, test_start = order_statistics(
        ts,
        [
            quantile_index(n, cfg.split.val_start_quantile),
            quantile_index(n, cfg.split.test_start_quantile),
        ],
        coarse=coarse,
        buckets=buckets,
    )
    if test_start <= val_start:
        logger.warning(
            "split: validation period is empty (val_start == test_start == %d)", val_start
        )
    unseen = choose_unseen_learners(users.tolist(), cfg.split.unseen_learner_frac, cfg.split.seed)
    logger.info(
        "split plan (dask): %d learners in %d partitions (%s) in %.1fs",
        layout.n_users,
        len(layout.per_partition),
        "learner-partitioned" if layout.disjoint else "learners span partitions",
        time.perf_counter() - t0,
    )
    return SplitPlan(val_start=val_start, test_start=test_start, unseen=unseen), layout.n_users


# ----------------------------------------------------------------------------- examples


# A learner-partitioned input is used as it is when its partitions are at most this many
# times ``learners_per_partition`` (a shuffled partition's size varies too): moving every event
# across the network costs more than a somewhat larger partition.
NO_SHUFFLE_SLACK = 1.5


def by_learner(events: Any, learners_per_partition: int, n_users: int | None = None) -> Any:
    """Each learner's whole history in one partition: the frame itself when it already is
    (`learner_layout` disjoint, partitions not over ``NO_SHUFFLE_SLACK`` x the size), else a
    shuffle on the hash of user_id into ``ceil(n_users / learners_per_partition)`` partitions.

    Either way a partition holds whole histories in input order (``_gid`` ascending), so the
    kernel's rows are the same; only which rows share a partition differs."""
    layout = _LAYOUTS.get(events._name)
    if layout is None and n_users is None:
        layout = learner_layout(events)
    if layout is not None:
        n_users = layout.n_users
        biggest = max(layout.per_partition, default=0)
        if layout.disjoint and biggest <= NO_SHUFFLE_SLACK * learners_per_partition:
            logger.info(
                "by learner: input already partitioned by learner (%d partitions, <= %d "
                "learners each): no shuffle",
                len(layout.per_partition),
                biggest,
            )
            return events
    assert n_users is not None
    n_parts = max(1, math.ceil(n_users / learners_per_partition))
    logger.info("by learner: shuffle on user_id into %d partitions", n_parts)
    return events.shuffle(on="user_id", npartitions=n_parts)


def examples_partition(
    part: pd.DataFrame, cfg: FeatureConfig, peer: Mapping[str, Any], plan: SplitPlan
) -> pd.DataFrame:
    """The shared batch build on whole learner histories, input order restored by ``_gid``."""
    part = part.sort_values(GID, kind="stable").reset_index(drop=True)
    oracle = part[["p_fail_true"]]
    is_query = part["activity"].isin(list(cfg.assessment_activities)).to_numpy()
    events = part.drop(columns=["p_fail_true", GID])
    out = build_examples(events, oracle, cfg=cfg, peer=peer)
    out[GID] = part[GID].to_numpy()[is_query]
    # the plan's unseen learners cut to this partition's (same splits, see `in_set`)
    mine = part["user_id"].unique()
    local = dataclasses.replace(plan, unseen=frozenset(np.asarray(mine)[in_set(mine, plan.unseen)]))
    out[SPLIT] = assign_splits(out["timestamp"].to_numpy(), out["user_id"], local)
    return out


def build_examples_dask(
    events: Any,
    cfg: FeatureConfig,
    peer: Mapping[str, Any],
    plan: SplitPlan,
    *,
    learners_per_partition: int,
    n_users: int | None = None,
) -> Any:
    """Examples (+ ``_gid``, ``_split``) as a dask frame, one partition per learner block."""
    shuffled = by_learner(events, learners_per_partition, n_users)
    meta = examples_partition(shuffled._meta.assign(), cfg, peer, plan)
    return shuffled.map_partitions(examples_partition, cfg, peer, plan, meta=meta)
