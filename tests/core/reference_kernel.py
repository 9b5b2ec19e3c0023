"""The per-event Python loop that defined the features before `core.kernel.run_kernel` was
vectorised, kept verbatim as the test oracle (tests/core/test_kernel_reference.py).

Plain Python over lists; slow, but its semantics are the easiest to read: rows sorted by (group,
timestamp); for each timestamp block of a group, first emit every query row from the current
state, then fold every contributing row of the block into it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def reference_kernel(
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

    Inputs are Python lists of the values (they index several times faster than arrays).
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


# run_kernel's array arguments in reference_kernel's order, each with the dtype it is read as
_COLUMNS = (
    ("starts", np.int64),
    ("ts", np.int64),
    ("score", np.float64),
    ("time_spent", np.float64),
    ("hints", np.float64),
    ("revisit", np.bool_),
    ("contributes", np.bool_),
    ("is_query", np.bool_),
)


def reference_run(
    *, windows: Sequence[int], rate: float, pass_mark: float, n_cols: int, **columns: np.ndarray
) -> np.ndarray:
    """`reference_kernel` with `core.kernel.run_kernel`'s keyword arguments (the array columns
    by name, as in ``_COLUMNS``); rows in kernel order."""
    names = [name for name, _ in _COLUMNS]
    if sorted(columns) != sorted(names):
        raise TypeError(f"reference_run: expected the columns {names}, got {sorted(columns)}")
    n_queries = int(np.count_nonzero(columns["is_query"]))
    out = np.empty((n_queries, n_cols), dtype=np.float64)
    inputs = [np.asarray(columns[name], dtype=dtype) for name, dtype in _COLUMNS]
    inputs.append(np.asarray(windows, dtype=np.int64))
    got = reference_kernel(
        *[a.tolist() for a in inputs],
        float(rate),
        float(pass_mark),
        list(range(n_queries)),
        out,
    )
    if got != n_queries:
        raise RuntimeError(f"reference kernel emitted {got} rows for {n_queries} queries")
    return out
