"""Serving-time features: one learner's recent history -> one feature row per requested topic.

Runs the plain-Python `features.kernel.feature_kernel` (the function the batch stage compiles),
with the constants and peer table read from the feature spec, so a request's features equal the
batch features of the same history exactly.

numpy only: reachable from serving.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from features.kernel import (
    N_LEARNER,
    OPTIONAL_DEFAULTS,
    assemble,
    decay_rate,
    feature_kernel,
    group_starts,
    kernel_columns,
    peer_topic_mean,
    run_kernel,
)

MAX_HISTORY = 100_000
MAX_TOPICS = 1_000


def _array(history: Mapping[str, Sequence[Any]], name: str, n: int, dtype: Any) -> np.ndarray:
    if name not in history or history[name] is None:
        return np.full(n, OPTIONAL_DEFAULTS[name], dtype=dtype)
    values = history[name]
    if len(values) != n:
        raise ValueError(f"history.{name}: length {len(values)} != length of history.timestamp {n}")
    try:
        return np.asarray(values, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"history.{name}: cannot read as {np.dtype(dtype).name} ({exc})") from exc


def _validated(
    history: Mapping[str, Sequence[Any]], topics: Sequence[str], now: int
) -> tuple[np.ndarray, ...]:
    """Arrays of the history, checked field by field; errors name the field and allowed range."""
    if isinstance(now, bool) or not isinstance(now, int | np.integer) or now < 0:
        raise ValueError(f"now: must be an integer number of seconds >= 0, got {now!r}")
    if not isinstance(topics, Sequence) or isinstance(topics, str) or not topics:
        raise ValueError("topics: must be a non-empty list of topic ids")
    if len(topics) > MAX_TOPICS:
        raise ValueError(f"topics: at most {MAX_TOPICS}, got {len(topics)}")
    for i, t in enumerate(topics):
        if not isinstance(t, str) or not t:
            raise ValueError(f"topics[{i}]: must be a non-empty string, got {t!r}")
    for name in ("topic_id", "timestamp", "score"):
        if name not in history:
            raise ValueError(f"history.{name}: required")
    n = len(history["timestamp"])
    if n > MAX_HISTORY:
        raise ValueError(f"history: at most {MAX_HISTORY} events, got {n}")
    if len(history["topic_id"]) != n:
        raise ValueError(f"history.topic_id: length {len(history['topic_id'])} != {n}")
    topic_ids = [str(t) for t in history["topic_id"]]
    ts_raw = np.asarray(history["timestamp"])
    if n and not np.issubdtype(ts_raw.dtype, np.integer):
        raise ValueError(f"history.timestamp: must be integer seconds, got dtype {ts_raw.dtype}")
    ts = ts_raw.astype(np.int64)
    bad = np.flatnonzero((ts < 0) | (ts > now))
    if bad.size:
        raise ValueError(
            f"history.timestamp[{int(bad[0])}]: must be in [0, now={now}], got {int(ts[bad[0]])}"
        )
    score = _array(history, "score", n, np.float64)
    bad = np.flatnonzero(~((score >= 0.0) & (score <= 1.0)))
    if bad.size:
        raise ValueError(f"history.score[{int(bad[0])}]: must be in [0, 1], got {score[bad[0]]}")
    spent = _array(history, "time_spent_s", n, np.float64)
    hints = _array(history, "hints_used", n, np.float64)
    for name, arr in (("time_spent_s", spent), ("hints_used", hints)):
        bad = np.flatnonzero(arr < 0)
        if bad.size:
            raise ValueError(f"history.{name}[{int(bad[0])}]: must be >= 0, got {arr[bad[0]]}")
    revisit = _array(history, "is_revisit", n, np.bool_)
    return np.asarray(topic_ids, dtype=object), ts, score, spent, hints, revisit


def _kernel_rows(
    spec: Mapping[str, Any],
    code: np.ndarray,
    n_groups: int,
    cols: tuple[np.ndarray, ...],
    now: int,
    n_cols: int,
) -> np.ndarray:
    """Kernel rows for a query at ``now`` in each group 0..n_groups-1 (one plain-Python call).

    Events are ordered by (group, timestamp) with a stable sort, as in the batch build; the query
    rows (contributing nothing) join each group's block at ``now``.
    """
    ts, score, spent, hints, revisit = cols
    n = len(code)
    code_q = np.concatenate([code, np.arange(n_groups, dtype=np.int64)])
    ts_q = np.concatenate([ts, np.full(n_groups, now, dtype=np.int64)])
    order = np.lexsort((ts_q, code_q))
    code_sorted = code_q[order]
    change = np.ones(len(order), dtype=bool)
    change[1:] = code_sorted[1:] != code_sorted[:-1]
    is_query = order >= n
    pad = np.zeros(n_groups)
    return run_kernel(
        feature_kernel,
        starts=group_starts(change),
        ts=ts_q[order],
        score=np.concatenate([score, pad])[order],
        time_spent=np.concatenate([spent, pad])[order],
        hints=np.concatenate([hints, pad])[order],
        revisit=np.concatenate([revisit, np.zeros(n_groups, dtype=bool)])[order],
        contributes=~is_query,
        is_query=is_query,
        windows=spec["rolling_windows"],
        rate=decay_rate(spec["half_life_s"]),
        pass_mark=spec["pass_mark"],
        n_cols=n_cols,
        plain=True,
    )


def request_features(
    spec: Mapping[str, Any],
    history: Mapping[str, Sequence[Any]],
    topics: Sequence[str],
    now: int,
) -> np.ndarray:
    """Features (float32, shape (len(topics), n_features)) for an assessment at ``now`` per topic.

    ``history`` holds one learner's events as columns of the event schema: topic_id, timestamp
    (int seconds <= now) and score ([0, 1]) are required; time_spent_s, hints_used, is_revisit are
    optional (defaults in `features.kernel.OPTIONAL_DEFAULTS`); other columns are ignored. Every
    event counts, whatever its activity, as in the batch build. Events at ``now`` are not used
    (features see only events strictly before the assessment). ``spec`` must be validated
    (`features.spec.read_spec`).
    """
    topic_ids, ts, score, spent, hints, revisit = _validated(history, topics, now)
    wanted = list(dict.fromkeys(topics))  # distinct requested topics, request order
    index = {t: i for i, t in enumerate(wanted)}
    code = np.array([index.get(t, -1) for t in topic_ids], dtype=np.int64)
    keep = code >= 0
    cols = (ts, score, spent, hints, revisit)
    topic_rows = _kernel_rows(
        spec,
        code[keep],
        len(wanted),
        tuple(c[keep] for c in cols),
        now,
        len(kernel_columns(spec["rolling_windows"])),
    )
    learner_row = _kernel_rows(spec, np.zeros(len(ts), dtype=np.int64), 1, cols, now, N_LEARNER)
    rows = np.array([index[t] for t in topics], dtype=np.int64)
    peer = np.array([peer_topic_mean(spec["peer"], t) for t in topics], dtype=np.float64)
    return assemble(topic_rows[rows], np.repeat(learner_row, len(topics), axis=0), peer)
