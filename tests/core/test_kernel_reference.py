"""The numpy kernel against the former per-event loop (the oracle), on many random histories."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest

from core.kernel import kernel_columns, run_kernel, running_sum, segment_cumsum
from tests.core.reference_kernel import reference_run

WINDOWS = [1, 3, 10]
HOUR, DAY, YEAR = 3600, 86_400, 365 * 86_400


def random_case(seed: int) -> dict[str, Any]:
    """Rows sorted by (group, timestamp) with ties, empty groups, query-only rows, NaNs."""
    rng = np.random.default_rng(seed)
    n_groups = int(rng.integers(1, 9))
    sizes = rng.integers(0, 80, n_groups) * (rng.random(n_groups) < 0.85)  # some groups empty
    n = int(sizes.sum())
    span = int(rng.choice([100, DAY, 60 * DAY, 3 * YEAR, 40 * YEAR]))
    grid = int(rng.choice([1, 7, HOUR, DAY]))  # coarse grids make many timestamp ties
    code = np.repeat(np.arange(n_groups), sizes)
    ts = (rng.integers(0, span, n) // grid) * grid
    order = np.lexsort((ts, code))
    kind = rng.random(n)
    contributes = kind < 0.75
    is_query = (kind > 0.9) | (rng.random(n) < 0.4)  # > 0.9: query-only rows
    half_life = float(rng.choice([60.0, HOUR, DAY, 7 * DAY, 30 * DAY]))
    n_cols = int(rng.choice([1, 3, 9, 12, 13, len(kernel_columns(WINDOWS))]))
    return {
        "starts": np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
        "ts": ts[order],
        "score": rng.integers(0, 21, n)[order] / 20.0,
        "time_spent": np.where(rng.random(n) < 0.1, math.nan, rng.random(n) * 300.0),
        "hints": np.where(rng.random(n) < 0.1, math.nan, rng.integers(0, 4, n).astype(float)),
        "revisit": rng.random(n) < 0.3,
        "contributes": contributes,
        "is_query": is_query,
        "windows": WINDOWS,
        "rate": math.log(2.0) / half_life,
        "pass_mark": 0.6,
        "n_cols": n_cols,
    }


def random_columns(
    rng: np.random.Generator, n: int, *, max_spent: float, max_hints: int, share: float
) -> dict[str, np.ndarray]:
    """Event columns of ``n`` rows without NaNs, every row contributing; ``share`` of the rows
    are revisits and about as many queries. Drawn in one fixed order (reproducible by seed)."""
    return {
        "score": rng.random(n),
        "time_spent": rng.random(n) * max_spent,
        "hints": rng.integers(0, max_hints, n).astype(float),
        "revisit": rng.random(n) < share,
        "contributes": np.ones(n, dtype=bool),
        "is_query": rng.random(n) < share,
    }


def assert_matches_oracle(got: np.ndarray, want: np.ndarray) -> None:
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("seed", range(200))
def test_random_histories_match_the_loop(seed: int) -> None:
    case = random_case(seed)
    assert_matches_oracle(run_kernel(**case), reference_run(**case))


@pytest.mark.parametrize("seed", range(5))
def test_dest_permutes_the_rows(seed: int) -> None:
    case = random_case(seed)
    n_queries = int(case["is_query"].sum())
    dest = np.random.default_rng(seed).permutation(n_queries)
    got = run_kernel(**case, dest=dest)
    np.testing.assert_array_equal(got[dest], run_kernel(**case))


@pytest.mark.parametrize(
    ("half_life", "span"),
    [(60.0, 10 * YEAR), (HOUR, 10 * YEAR), (DAY, 10 * YEAR), (7 * DAY, 200 * YEAR)],
)
def test_long_histories_stay_finite_and_match(half_life: float, span: int) -> None:
    """Thousands of events over years: many decay chunks (DECAY_SPAN), no overflow or 0/0."""
    rng = np.random.default_rng(11)
    sizes = np.array([6000, 2, 1500])
    n = int(sizes.sum())
    code = np.repeat(np.arange(3), sizes)
    ts = rng.integers(0, span, n)
    order = np.lexsort((ts, code))
    case = {
        "starts": np.concatenate([[0], np.cumsum(sizes)]),
        "ts": ts[order],
        **random_columns(rng, n, max_spent=100.0, max_hints=4, share=0.3),
        "windows": WINDOWS,
        "rate": math.log(2.0) / half_life,
        "pass_mark": 0.6,
        "n_cols": len(kernel_columns(WINDOWS)),
    }
    got = run_kernel(**case)
    seen = got[:, 0] > 0
    assert np.isfinite(got[seen, 2]).all()  # decayed_mean: never 0/0 once an event is seen
    assert_matches_oracle(got, reference_run(**case))


def test_a_group_does_not_depend_on_the_other_groups() -> None:
    """Bit-for-bit: the property that makes serving (one learner) equal the batch (all)."""
    rng = np.random.default_rng(3)
    sizes = [1, 40, 7, 300, 2, 2, 90]  # several length classes and block shapes
    n = sum(sizes)
    ts = np.concatenate([np.sort(rng.integers(0, 90 * DAY, k)) for k in sizes])
    columns = random_columns(rng, n, max_spent=50.0, max_hints=3, share=0.5)
    common = {"windows": WINDOWS, "rate": 1e-6, "pass_mark": 0.6, "n_cols": 15}
    starts = np.concatenate([[0], np.cumsum(sizes)])
    together = run_kernel(starts=starts, ts=ts, **columns, **common)
    alone = []
    for a, b in itertools.pairwise(starts):
        part = {k: v[a:b] for k, v in columns.items()}
        alone.append(run_kernel(starts=np.array([0, b - a]), ts=ts[a:b], **part, **common))
    np.testing.assert_array_equal(together, np.concatenate(alone))


@pytest.mark.parametrize("seed", range(4))
def test_segment_cumsum_is_the_sequential_sum_of_each_segment(seed: int) -> None:
    rng = np.random.default_rng(seed)
    lengths = np.concatenate([rng.integers(1, 4, 600), rng.integers(1, 3000, 8), [5000]])
    rng.shuffle(lengths)
    n = int(lengths.sum())
    parts = rng.random((3, n)) * 10.0 ** rng.integers(-8, 8, (3, n))
    heads = np.cumsum(lengths) - lengths
    at = np.sort(rng.choice(n, 500, replace=False))
    want = np.concatenate(
        [np.cumsum(parts[:, h : h + k], axis=1) for h, k in zip(heads, lengths, strict=True)], 1
    )
    np.testing.assert_array_equal(segment_cumsum(parts, heads, lengths, at), want[:, at])


@pytest.mark.parametrize("shape", [(3, 40, 2000), (2, 5000, 1)])
def test_running_sum_loop_equals_cumsum_bits(shape: tuple[int, ...]) -> None:
    values = np.random.default_rng(0).random(shape) * 1e3
    want = np.cumsum(values, axis=1)
    running_sum(values, axis=1)
    np.testing.assert_array_equal(values, want)
