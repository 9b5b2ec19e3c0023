"""Peer statistics: each topic's mean score among training learners, training period only.

The table holds raw (sum, count) per topic and the global mean; smoothing toward the global mean
happens in `core.kernel.peer_topic_mean`, the one place both paths compute it. It is computed
from events the model is allowed to have seen (before the validation start, non-held-out
learners), so val/test-period events never leak into it.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)


def compute_peer_table(
    events: pd.DataFrame,
    *,
    prior_weight: float,
    before: int | None = None,
    include_users: Collection[str] | None = None,
    exclude_users: Collection[str] | None = None,
) -> dict[str, Any]:
    """Per-topic [sum_score, count] over events with timestamp < ``before`` of allowed users.

    All activities count (the same events that feed `topic_mean_score`, so the difference
    `topic_mean_minus_peer` compares like with like). Raises ValueError when nothing is left.
    """
    for col in ("user_id", "topic_id", "timestamp", "score"):
        if col not in events.columns:
            raise ValueError(f"peer statistics: events lack column '{col}'")
    mask = np.ones(len(events), dtype=bool)
    if before is not None:
        mask &= events["timestamp"].to_numpy() < before
    if include_users is not None:
        mask &= events["user_id"].isin(list(include_users)).to_numpy()
    if exclude_users is not None:
        mask &= ~events["user_id"].isin(list(exclude_users)).to_numpy()
    sel = events.loc[mask, ["topic_id", "score"]]
    if sel.empty:
        raise ValueError(
            "peer statistics: no training-period events left "
            f"(before={before}, include/exclude filters applied)"
        )
    grouped = sel.groupby("topic_id", sort=True, observed=True)["score"].agg(["sum", "count"])
    topics = {
        str(t): [float(s), float(c)]
        for t, s, c in zip(grouped.index, grouped["sum"], grouped["count"], strict=True)
    }
    prior_mean = float(sel["score"].sum() / len(sel))
    logger.info(
        "peer table: %d topics from %d events, global mean %.4f", len(topics), len(sel), prior_mean
    )
    return {"prior_mean": prior_mean, "prior_weight": float(prior_weight), "topics": topics}
