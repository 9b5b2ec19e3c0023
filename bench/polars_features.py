"""The weakness features written the way a Polars user would: the peer of `core.kernel`.

A fair speed comparison needs the peer a user would pick instead of our numpy kernel. This is
it: the same per-(learner, topic) and per-learner statistics as
`features.build.compute_features`, built with Polars window expressions (`cum_sum`,
`rolling_mean`, `shift` / `first` over groups). It is checked equal to ours (bench/features.py
and tests/bench/test_polars_features.py) and timed in the same run. Bench-only: nothing in the
pipeline imports it.

Semantics are the kernel's: rows sorted by (group, timestamp); a query at time t sees the
events of its group strictly before t, so every row of a same-timestamp block is answered from
the state after the block's previous row... of the previous block: the inclusive running state
shifted by one row, then the first value of that over the (group, timestamp) block.
The decayed sums use weights exp(rate * (t_i - t_first)) relative to the group's first event
(finite for any history shorter than DECAY_SPAN / rate, 13.8 years at a 7-day half-life), so
they agree with the kernel to ~1e-12 relative, not bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def _group_stats(
    lf: Any, group: Sequence[str], windows: Sequence[int], rate: float, pass_mark: float
) -> Any:
    """Per-row 'state before this row's timestamp block' columns for one group level."""
    import polars as pl

    g = list(group)
    t0 = pl.col("timestamp").first().over(g)
    w = ((pl.col("timestamp") - t0).cast(pl.Float64) * rate).exp()
    inclusive = {
        "n": pl.col("score").cum_count().over(g).cast(pl.Float64),
        "s_score": pl.col("score").cum_sum().over(g),
        "s_fail": (pl.col("score") < pass_mark).cast(pl.Float64).cum_sum().over(g),
        "s_spent": pl.col("time_spent_s").cum_sum().over(g),
        "s_hints": pl.col("hints_used").cum_sum().over(g),
        "s_rev": pl.col("is_revisit").cast(pl.Float64).cum_sum().over(g),
        "s_w": w.cum_sum().over(g),
        "s_wx": (w * pl.col("score")).cum_sum().over(g),
        "last_score": pl.col("score"),
        "t_last": pl.col("timestamp"),
        "t0": t0,
    }
    inclusive.update(
        {
            f"last{k}": pl.col("score").rolling_mean(window_size=k, min_samples=1).over(g)
            for k in windows
        }
    )
    lf = lf.with_columns(**inclusive)
    # state before the row = inclusive state of the previous row; ties: the block's first value
    names = [name for name in inclusive if name != "t0"]
    lf = lf.with_columns(pl.col(names).shift(1).over(g))
    lf = lf.with_columns(pl.col(names).first().over([*g, "timestamp"]))
    n = pl.col("n").fill_null(0.0)
    dt = (pl.col("timestamp") - pl.col("t_last")).cast(pl.Float64)
    has = n > 0
    out = {
        "n_attempts": n,
        "mean_score": pl.when(has).then(pl.col("s_score") / n),
        "decayed_mean": pl.when(has).then(pl.col("s_wx") / pl.col("s_w")),
        "decayed_weight": pl.when(has)
        .then(pl.col("s_w") * (-(pl.col("timestamp") - pl.col("t0")).cast(pl.Float64) * rate).exp())
        .otherwise(0.0),
        "n_fails": pl.col("s_fail").fill_null(0.0),
        "n_successes": n - pl.col("s_fail").fill_null(0.0),
        "last_score": pl.when(has).then(pl.col("last_score")),
        "hours_since_last": pl.when(has).then(dt / 3600.0),
        "mean_time_spent_s": pl.when(has).then(pl.col("s_spent") / n),
        "mean_hints": pl.when(has).then(pl.col("s_hints") / n),
        "n_revisits": pl.col("s_rev").fill_null(0.0),
        "revisit_share": pl.when(has).then(pl.col("s_rev") / n),
    }
    out.update({f"last{k}_mean": pl.when(has).then(pl.col(f"last{k}")) for k in windows})
    return lf.select("_row", "_query", **out)


def polars_features(events: Any, spec: Mapping[str, Any]) -> np.ndarray:
    """Feature matrix (float32, ``spec['names']`` order) for every assessment row, input order.

    ``events`` is the pandas frame `features.build.compute_features` takes (all rows contribute;
    rows of ``spec['assessment_activities']`` are the queries).
    """
    import polars as pl

    from core.kernel import BASE_FEATURES, N_LEARNER, decay_rate, peer_topic_mean

    windows = [int(k) for k in spec["rolling_windows"]]
    rate = decay_rate(float(spec["half_life_s"]))
    pass_mark = float(spec["pass_mark"])
    n = len(events)

    def col(name: str, default: float) -> Any:
        if name in events.columns:
            return events[name].to_numpy(dtype=np.float64)
        return np.full(n, default, dtype=np.float64)

    df = pl.DataFrame(
        {
            "_row": np.arange(n, dtype=np.int64),
            "user_id": events["user_id"].astype(str).to_numpy(),
            "topic_id": events["topic_id"].astype(str).to_numpy(),
            "timestamp": events["timestamp"].to_numpy(dtype=np.int64),
            "score": events["score"].to_numpy(dtype=np.float64),
            "time_spent_s": col("time_spent_s", math.nan),
            "hints_used": col("hints_used", math.nan),
            "is_revisit": col("is_revisit", 0.0) != 0,
            "_query": events["activity"].isin(list(spec["assessment_activities"])).to_numpy(),
        }
    )
    # NaN (unknown time spent / hints) must propagate like the kernel's running sums do
    lf = df.lazy().sort(["user_id", "topic_id", "timestamp", "_row"])
    topic = _group_stats(lf, ["user_id", "topic_id"], windows, rate, pass_mark)
    topic_cols = [*BASE_FEATURES, *(f"last{k}_mean" for k in windows)]
    lf_l = df.lazy().sort(["user_id", "timestamp", "_row"])
    learner = _group_stats(lf_l, ["user_id"], windows, rate, pass_mark).select(
        "_row", *[pl.col(c).alias(f"learner_{c}") for c in BASE_FEATURES[:N_LEARNER]]
    )
    peer_table = {
        t: peer_topic_mean(spec["peer"], t) for t in df.get_column("topic_id").unique().to_list()
    }
    joined = (
        topic.filter(pl.col("_query"))
        .select("_row", *[pl.col(c).alias(f"topic_{c}") for c in topic_cols])
        .join(learner, on="_row")
        .join(df.lazy().select("_row", "topic_id"), on="_row")
        .with_columns(
            peer_topic_mean=pl.col("topic_id").replace_strict(peer_table, return_dtype=pl.Float64)
        )
        .with_columns(topic_mean_minus_peer=pl.col("topic_mean_score") - pl.col("peer_topic_mean"))
        .sort("_row")
        .collect()
    )
    return joined.select(list(spec["names"])).to_numpy().astype(np.float32)
