"""Batch build of the weakness examples: one row per assessment, features from earlier events.

Every event (quiz, minigame, ...) updates the learner's state; only assessments become examples.
The per-(learner, topic) and per-learner statistics come from `core.kernel.run_kernel`
(numpy, two calls for all learners: ~0.17 s for 1M events), the code serving runs for one
learner.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from core.kernel import (
    BASE_FEATURES,
    N_LEARNER,
    OPTIONAL_DEFAULTS,
    assemble,
    decay_rate,
    group_starts,
    kernel_columns,
    peer_topic_mean,
    run_kernel,
)
from core.spec import build_spec
from features.config import FeatureConfig

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS: tuple[str, ...] = ("user_id", "topic_id", "timestamp", "activity", "score")
KEY_COLUMNS: tuple[str, ...] = ("user_id", "topic_id", "timestamp", "score", "label", "p_fail_true")


def spec_from_config(cfg: FeatureConfig, peer: Mapping[str, Any]) -> dict[str, Any]:
    """The feature spec for this config and peer table (what serving will read)."""
    return build_spec(
        pass_mark=cfg.pass_mark,
        rolling_windows=cfg.rolling_windows,
        half_life_s=cfg.half_life_s,
        assessment_activities=cfg.assessment_activities,
        peer=peer,
    )


def _column(events: pd.DataFrame, name: str, dtype: Any) -> np.ndarray:
    """A column as a numpy array, or the documented default when the source lacks it."""
    if name in events.columns:
        return events[name].to_numpy(dtype=dtype)
    return np.full(len(events), OPTIONAL_DEFAULTS[name], dtype=dtype)


def _validate(events: pd.DataFrame, oracle: pd.DataFrame | None) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in events.columns]
    if missing:
        raise ValueError(f"events: missing column(s) {missing}; required {list(REQUIRED_COLUMNS)}")
    score = events["score"].to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~((score >= 0.0) & (score <= 1.0)))
    if bad.size:
        raise ValueError(
            f"events: column 'score' must be in [0, 1]; rows {bad[:5].tolist()} have "
            f"{score[bad[:5]].tolist()}"
        )
    ts = events["timestamp"]
    if not np.issubdtype(ts.dtype, np.integer):
        raise ValueError(f"events: column 'timestamp' must be int64 seconds, got {ts.dtype}")
    bad = np.flatnonzero(ts.to_numpy() < 0)
    if bad.size:
        raise ValueError(f"events: column 'timestamp' must be >= 0; rows {bad[:5].tolist()}")
    if oracle is not None and len(oracle) != len(events):
        raise ValueError(
            f"oracle: {len(oracle)} rows but events have {len(events)}; must be aligned row by row"
        )


def _grouped_run(
    group_code: np.ndarray,
    n_codes: int,
    time_order: np.ndarray | None,
    ts: np.ndarray,
    arrays: dict[str, np.ndarray],
    is_query: np.ndarray,
    spec: Mapping[str, Any],
    n_cols: int,
    position: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Run the kernel with ``group_code`` as the group.

    Returns the kernel rows and the input row of each query in the (group, time) order. Rows
    come in that order, or at ``position[input row]`` when ``position`` is given.
    """
    order = group_time_order(group_code, n_codes, time_order)
    code_sorted = group_code[order]
    change = np.empty(len(order), dtype=bool)
    if len(order):
        change[0] = True
        np.not_equal(code_sorted[1:], code_sorted[:-1], out=change[1:])
    del code_sorted
    query_sorted = is_query[order]
    query_rows = order[query_sorted]

    def sorted_column(name: str, feature: str) -> np.ndarray:
        # an event column only feeds its feature: none needed when that column is not asked for
        if n_cols > BASE_FEATURES.index(feature):
            return arrays[name][order]
        return np.broadcast_to(np.zeros(1, dtype=arrays[name].dtype), order.shape)

    rows = run_kernel(
        starts=group_starts(change),
        ts=ts[order],
        score=arrays["score"][order],
        time_spent=sorted_column("time_spent_s", "mean_time_spent_s"),
        hints=sorted_column("hints_used", "mean_hints"),
        revisit=sorted_column("is_revisit", "n_revisits"),
        contributes=np.ones(len(order), dtype=bool),
        is_query=query_sorted,
        windows=spec["rolling_windows"],
        rate=decay_rate(spec["half_life_s"]),
        pass_mark=spec["pass_mark"],
        n_cols=n_cols,
        dest=None if position is None else position[query_rows],
    )
    return rows, query_rows


def group_time_order(code: np.ndarray, n_codes: int, time_order: np.ndarray | None) -> np.ndarray:
    """Row order by (group code, timestamp), input order breaking ties: np.lexsort((ts, code)).

    ``time_order`` is the stable time order of the rows (None: they are in time order); a
    stable sort by group on top of it gives the (group, time) order. numpy sorts 16-bit keys
    stably by radix (linear), so wider codes are sorted in 16-bit passes, least significant
    first.
    """
    if time_order is not None and len(code) != len(time_order):
        raise ValueError(f"group codes ({len(code)}) and time order ({len(time_order)}) differ")
    if len(code) and (int(code.min()) < 0 or int(code.max()) >= n_codes):
        raise ValueError(f"group codes must be in [0, {n_codes}), got [{code.min()}, {code.max()}]")
    key = np.asarray(code, dtype=np.int64)
    if time_order is not None:
        key = key[time_order]
    if n_codes > 1 << 32:
        order = key.argsort(kind="stable")
    else:
        order = None
        for shift in range(0, max(int(n_codes) - 1, 1).bit_length(), 16):
            digit = ((key if order is None else key[order]) >> shift).astype(np.uint16)  # mod 2**16
            step = digit.argsort(kind="stable")
            order = step if order is None else order[step]
    return np.asarray(order if time_order is None else time_order[order], dtype=np.int64)


def time_order_of(ts: np.ndarray) -> np.ndarray | None:
    """Stable time order of the rows; None when events come sorted by time (the identity)."""
    if len(ts) < 2 or bool(np.all(ts[1:] >= ts[:-1])):
        return None
    return np.argsort(ts, kind="stable").astype(np.int64)


def compute_features(events: pd.DataFrame, spec: Mapping[str, Any]) -> np.ndarray:
    """Feature matrix (float32, spec order) for every assessment row of ``events``, input order."""
    import pandas as pd

    _validate(events, None)

    user_code, _ = pd.factorize(events["user_id"])
    topic_code, topic_uniques = pd.factorize(events["topic_id"])
    for name, codes in (("user_id", user_code), ("topic_id", topic_code)):
        bad = np.flatnonzero(codes < 0)
        if bad.size:
            raise ValueError(f"events: column '{name}' is missing at rows {bad[:5].tolist()}")
    n_topics = max(len(topic_uniques), 1)
    ts = events["timestamp"].to_numpy(dtype=np.int64)
    arrays = {
        "score": events["score"].to_numpy(dtype=np.float64),
        "time_spent_s": _column(events, "time_spent_s", np.float64),
        "hints_used": _column(events, "hints_used", np.float64),
        "is_revisit": _column(events, "is_revisit", np.bool_),
    }
    is_query = events["activity"].isin(spec["assessment_activities"]).to_numpy()
    n_kernel = len(kernel_columns(spec["rolling_windows"]))
    t0 = time.perf_counter()
    n_users = max(int(user_code.max()) + 1 if len(user_code) else 0, 1)
    time_order = time_order_of(ts)
    pair_code = user_code.astype(np.int64) * n_topics + topic_code.astype(np.int64)
    # Both levels are assembled in the (learner, topic, time) order of the topic level, and the
    # float32 matrix is put back in input order with one row take at the end (cheaper than
    # permuting each float64 column).
    topic_cols, pair_rows = _grouped_run(
        pair_code, n_users * n_topics, time_order, ts, arrays, is_query, spec, n_kernel
    )
    del pair_code
    position = np.zeros(len(ts), dtype=np.int64)  # of each query row in that order
    position[pair_rows] = np.arange(len(pair_rows))
    learner_cols, _ = _grouped_run(
        user_code.astype(np.int64),
        n_users,
        time_order,
        ts,
        arrays,
        is_query,
        spec,
        N_LEARNER,
        position=position,
    )
    peer_by_code = np.array([peer_topic_mean(spec["peer"], str(t)) for t in topic_uniques])
    peer = peer_by_code[topic_code[pair_rows]] if len(peer_by_code) else np.empty(0)
    features = assemble(topic_cols, learner_cols, peer).take(position[is_query], axis=0)
    logger.info(
        "features: %d examples from %d events in %.2fs",
        len(features),
        len(events),
        time.perf_counter() - t0,
    )
    return features


def build_examples(
    events: pd.DataFrame,
    oracle: pd.DataFrame | None,
    *,
    cfg: FeatureConfig,
    peer: Mapping[str, Any],
) -> pd.DataFrame:
    """One row per assessment event: keys, label (1 = score < pass_mark), p_fail_true, features.

    ``peer`` is a table from `features.peer.compute_peer_table`. Optional event columns
    (time_spent_s, hints_used, is_revisit) take `core.kernel.OPTIONAL_DEFAULTS` when absent,
    so knowledge-tracing data (quizzes with 0/1 scores) works too.
    """
    import pandas as pd

    _validate(events, oracle)
    spec = spec_from_config(cfg, peer)
    events = events.reset_index(drop=True)
    features = compute_features(events, spec)
    is_query = events["activity"].isin(spec["assessment_activities"]).to_numpy()
    rows = events.loc[is_query, ["user_id", "topic_id", "timestamp", "score"]].reset_index(
        drop=True
    )
    score = rows["score"].to_numpy(dtype=np.float64)
    out = pd.DataFrame(
        {
            "user_id": rows["user_id"].astype(str),
            "topic_id": rows["topic_id"].astype(str),
            "timestamp": rows["timestamp"].to_numpy(dtype=np.int64),
            "score": score,
            "label": (score < cfg.pass_mark).astype(np.int8),
            "p_fail_true": (
                oracle["p_fail_true"].to_numpy(dtype=np.float64)[is_query]
                if oracle is not None and "p_fail_true" in oracle.columns
                else np.full(len(rows), np.nan)
            ),
        }
    )
    feat = pd.DataFrame(features, columns=spec["names"])
    return pd.concat([out, feat], axis=1)
