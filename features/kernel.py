"""The one definition of every weakness feature, shared by the batch stage and serving.

`feature_kernel` is plain Python over numpy arrays. The batch build compiles this very function
with numba (`compiled_kernel`); serving runs it as is for one learner's few hundred events. Both
paths execute the same operations in the same order (no fastmath, `math.exp` in both), so the
features of the same history are bit-for-bit equal.

Rows are sorted by (group, timestamp). For each block of rows sharing a timestamp in a group the
kernel first emits features for every query row from the current state, then folds every
contributing row of the block into the state: a feature at time t only sees events strictly
before t.

numpy only at import: this module is reachable from serving.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

# Per-group statistics in kernel column order. The first N_LEARNER of them are also computed with
# the learner as the group (across all topics): the kernel writes only the leading out.shape[1].
BASE_FEATURES: tuple[str, ...] = (
    "n_attempts",
    "mean_score",
    "decayed_mean",
    "decayed_weight",
    "n_fails",
    "n_successes",
    "last_score",
    "hours_since_last",
    "mean_time_spent_s",
    "mean_hints",
    "n_revisits",
    "revisit_share",
)
N_LEARNER = 3
PEER_FEATURES: tuple[str, ...] = ("peer_topic_mean", "topic_mean_minus_peer")
# Optional event columns and the value used when a source lacks them: unknown time spent and
# hints stay missing (NaN, which the model treats as missing), an unknown re-visit counts as none.
OPTIONAL_DEFAULTS: dict[str, float | bool] = {
    "time_spent_s": math.nan,
    "hints_used": math.nan,
    "is_revisit": False,
}


def kernel_columns(rolling_windows: Sequence[int]) -> tuple[str, ...]:
    """Base names of the kernel's output columns for these windows."""
    return BASE_FEATURES + tuple(f"last{k}_mean" for k in rolling_windows)


def feature_names(rolling_windows: Sequence[int]) -> list[str]:
    """Stable, ordered names of all features (the model's input order)."""
    topic = [f"topic_{c}" for c in kernel_columns(rolling_windows)]
    learner = [f"learner_{c}" for c in BASE_FEATURES[:N_LEARNER]]
    return topic + learner + list(PEER_FEATURES)


def decay_rate(half_life_s: float) -> float:
    """Per-second decay rate; computed once here so both paths use the identical float."""
    return math.log(2.0) / half_life_s


def feature_kernel(
    starts: np.ndarray,
    ts: np.ndarray,
    score: np.ndarray,
    time_spent: np.ndarray,
    hints: np.ndarray,
    revisit: np.ndarray,
    contributes: np.ndarray,
    is_query: np.ndarray,
    windows: np.ndarray,
    rate: float,
    pass_mark: float,
    dest: np.ndarray,
    out: np.ndarray,
) -> int:
    """Fill ``out[dest[q], :]`` for the q-th query row (in row order); return the query count.

    Inputs are numpy arrays (numba) or, on the plain path, Python lists of the same values,
    which index several times faster in CPython and give identical float results.
    starts: int64 group offsets (len n_groups + 1); ts: int64 seconds, sorted within a group;
    score/time_spent/hints: float64; revisit/contributes/is_query: bool; windows: int64 window
    sizes; rate: decay per second (`decay_rate`); dest: int64 output row of each query (lets the
    batch path write rows straight back in input order); out: float64 (n_queries, n_cols) where
    n_cols <= len(kernel_columns(windows)) selects the leading columns.
    """
    n_windows = len(windows)
    n_base = 12
    n_cols = out.shape[1]
    max_k = 1
    for w in range(n_windows):
        if windows[w] > max_k:
            max_k = windows[w]
    ring = np.zeros(max_k, dtype=np.float64)
    row = np.empty(n_base + n_windows, dtype=np.float64)
    nan = math.nan
    q = 0
    for g in range(len(starts) - 1):
        a = starts[g]
        b = starts[g + 1]
        if a >= b:
            continue
        n = 0
        n_fail = 0
        n_rev = 0
        sum_score = 0.0
        sum_spent = 0.0
        sum_hints = 0.0
        dsum = 0.0
        dweight = 0.0
        last_score = nan
        t_last = ts[a]
        head = 0
        i = a
        while i < b:
            t = ts[i]
            j = i
            has_query = False
            while j < b and ts[j] == t:
                if is_query[j]:
                    has_query = True
                j += 1
            if has_query:
                if n == 0:
                    row[0] = 0.0
                    row[1] = nan
                    row[2] = nan
                    row[3] = 0.0
                    row[4] = 0.0
                    row[5] = 0.0
                    row[6] = nan
                    row[7] = nan
                    row[8] = nan
                    row[9] = nan
                    row[10] = 0.0
                    row[11] = nan
                    for w in range(n_windows):
                        row[n_base + w] = nan
                else:
                    dt = t - t_last
                    row[0] = n
                    row[1] = sum_score / n
                    row[2] = dsum / dweight
                    row[3] = dweight * math.exp(-rate * dt)
                    row[4] = n_fail
                    row[5] = n - n_fail
                    row[6] = last_score
                    row[7] = dt / 3600.0
                    row[8] = sum_spent / n
                    row[9] = sum_hints / n
                    row[10] = n_rev
                    row[11] = n_rev / n
                    # the windows are the costliest columns: skip them when not requested
                    for w in range(n_windows if n_cols > n_base else 0):
                        k = windows[w]
                        m = k if k < n else n
                        s = 0.0
                        for back in range(m):
                            idx = head - 1 - back
                            if idx < 0:
                                idx += max_k
                            s += ring[idx]
                        row[n_base + w] = s / m
                for r in range(i, j):
                    if is_query[r]:
                        for c in range(n_cols):
                            out[dest[q], c] = row[c]
                        q += 1
            for r in range(i, j):
                if contributes[r]:
                    x = score[r]
                    if n == 0:
                        dsum = x
                        dweight = 1.0
                    else:
                        d = math.exp(-rate * (t - t_last))
                        dsum = dsum * d + x
                        dweight = dweight * d + 1.0
                    n += 1
                    sum_score += x
                    if x < pass_mark:
                        n_fail += 1
                    sum_spent += time_spent[r]
                    sum_hints += hints[r]
                    if revisit[r]:
                        n_rev += 1
                    last_score = x
                    t_last = t
                    ring[head] = x
                    head += 1
                    if head == max_k:
                        head = 0
            i = j
    return q


_COMPILED: Callable[..., int] | None = None


def compiled_kernel() -> Callable[..., int]:
    """`feature_kernel` compiled with numba for the batch path; the plain function without numba.

    numba is imported lazily so serving never needs it.
    """
    global _COMPILED
    if _COMPILED is None:
        try:
            import numba
        except ImportError:  # pragma: no cover - numba is pinned in the training install
            logger.warning("numba not installed: batch features run in plain Python (slow)")
            _COMPILED = feature_kernel
        else:
            _COMPILED = numba.njit(cache=True, nogil=True)(feature_kernel)
    return _COMPILED


def group_starts(keys_sorted_change: np.ndarray) -> np.ndarray:
    """Group offsets from a bool array marking rows where a new group begins (row 0 included)."""
    first = np.flatnonzero(keys_sorted_change).astype(np.int64)
    return np.append(first, np.int64(keys_sorted_change.shape[0]))


def run_kernel(
    kernel: Callable[..., int],
    *,
    starts: np.ndarray,
    ts: np.ndarray,
    score: np.ndarray,
    time_spent: np.ndarray,
    hints: np.ndarray,
    revisit: np.ndarray,
    contributes: np.ndarray,
    is_query: np.ndarray,
    windows: Sequence[int],
    rate: float,
    pass_mark: float,
    n_cols: int,
    dest: np.ndarray | None = None,
    plain: bool = False,
) -> np.ndarray:
    """Coerce dtypes the same way for both paths, allocate the output and run ``kernel``.

    ``dest`` (default: kernel order) must be a permutation of range(n_queries). ``plain`` passes
    the inputs as Python lists (after the same dtype coercion), for the uncompiled kernel.
    """
    n_queries = int(np.count_nonzero(is_query))
    if dest is None:
        dest = np.arange(n_queries, dtype=np.int64)
    if dest.shape != (n_queries,):
        raise ValueError(f"dest: expected {n_queries} output rows, got shape {dest.shape}")
    out = np.empty((n_queries, n_cols), dtype=np.float64)  # the kernel fills every row
    inputs: list[Any] = [
        np.ascontiguousarray(starts, dtype=np.int64),
        np.ascontiguousarray(ts, dtype=np.int64),
        np.ascontiguousarray(score, dtype=np.float64),
        np.ascontiguousarray(time_spent, dtype=np.float64),
        np.ascontiguousarray(hints, dtype=np.float64),
        np.ascontiguousarray(revisit, dtype=np.bool_),
        np.ascontiguousarray(contributes, dtype=np.bool_),
        np.ascontiguousarray(is_query, dtype=np.bool_),
        np.asarray(windows, dtype=np.int64),
    ]
    dest_arr = np.ascontiguousarray(dest, dtype=np.int64)
    if plain:
        inputs = [a.tolist() for a in inputs]
    got = kernel(
        *inputs,
        float(rate),
        float(pass_mark),
        dest_arr.tolist() if plain else dest_arr,
        out,
    )
    if got != n_queries:
        raise RuntimeError(f"feature kernel emitted {got} rows for {n_queries} queries")
    return out


def peer_topic_mean(peer: Mapping[str, Any], topic_id: str) -> float:
    """Smoothed peer mean score of a topic: (sum + w * prior) / (count + w); prior if unseen."""
    prior = float(peer["prior_mean"])
    weight = float(peer["prior_weight"])
    entry = peer["topics"].get(topic_id)
    if entry is None:
        return prior
    total, count = float(entry[0]), float(entry[1])
    if count + weight <= 0.0:
        return prior
    return (total + weight * prior) / (count + weight)


def assemble(topic_cols: np.ndarray, learner_cols: np.ndarray, peer: np.ndarray) -> np.ndarray:
    """Final float32 feature matrix in `feature_names` order (same arithmetic in both paths).

    Filled block by block (each float64 value cast once) to avoid a float64 copy of the whole.
    """
    n_topic, n_learner = topic_cols.shape[1], learner_cols.shape[1]
    full = np.empty((topic_cols.shape[0], n_topic + n_learner + 2), dtype=np.float32)
    full[:, :n_topic] = topic_cols
    full[:, n_topic : n_topic + n_learner] = learner_cols
    full[:, n_topic + n_learner] = peer
    full[:, n_topic + n_learner + 1] = topic_cols[:, 1] - peer
    return full
