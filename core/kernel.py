"""The one definition of every weakness feature, shared by the batch stage and serving.

`kernel_rows` computes the per-group statistics with whole-array numpy operations: no per-event
Python loop, no numba. The batch build calls it (through `run_kernel`) once per group level for
all learners at once; serving calls it once per request for one learner's topics and the learner.
Every value of a group is computed from that group's own events only, in an order that does not
depend on the other groups of the call nor on the group's later events (running sums go down
each group separately, see `segment_cumsum`), so the features of the same history are
bit-for-bit equal in both paths. Cost (docs/benchmarks.md "Serving" and "Features", measured by
bench/serving.py and bench/features.py): ~0.14 ms for one request's 1,000 events in 21 groups,
~0.14 s for the batch build's two calls on 1M time-sorted events.

Semantics (the reference is the former per-event loop, kept as the oracle in
tests/core/reference_kernel.py): rows are sorted by (group, timestamp). A query row at time t
sees the contributing rows of its group with timestamp strictly before t: all query rows of a
timestamp block are answered from the state before that block's contributions are folded in.

Decayed sums: with weights w_i = exp(rate * (t_i - t_ref)), the decayed sums at the latest event
t_j are exp(-rate * (t_j - t_ref)) times the running sums of w_i * x_i and of w_i. To keep the
weights finite, each group is cut into chunks of DECAY_SPAN / rate seconds (fixed windows counted
from the group's first event: 13.8 years at the default 7-day half-life, so one chunk in
practice); t_ref is the chunk's first event, and a chunk inherits the decayed state of the
chunks before it (a Python loop over the chunk rank, run only when some group spans several
chunks). Agreement with the loop: within ~1e-13 relative (tested at rtol 1e-9, atol 1e-12).

numpy only at import: this module is reachable from serving.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NotRequired, TypedDict, Unpack

import numpy as np

logger = logging.getLogger(__name__)

# Per-group statistics in kernel column order. The first N_LEARNER of them are also computed with
# the learner as the group (across all topics): the kernel returns the leading n_cols columns.
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
N_BASE = len(BASE_FEATURES)
N_LEARNER = 3
PEER_FEATURES: tuple[str, ...] = ("peer_topic_mean", "topic_mean_minus_peer")
# Optional event columns and the value used when a source lacks them: unknown time spent and
# hints stay missing (NaN, which the model treats as missing), an unknown re-visit counts as none.
OPTIONAL_DEFAULTS: dict[str, float | bool] = {
    "time_spent_s": math.nan,
    "hints_used": math.nan,
    "is_revisit": False,
}


# Row of a query that has seen no event of its group yet: counts and weights 0, the rest missing.
_EMPTY_ROW: tuple[float, ...] = tuple(
    0.0 if name.startswith("n_") or name == "decayed_weight" else math.nan for name in BASE_FEATURES
)
# Largest rate * (t - t_ref) inside one decay chunk: exp(500) ~ 1.4e217 leaves room to sum any
# realistic number of weights below float64's maximum (1.8e308).
DECAY_SPAN = 500.0
# `segment_cumsum` adds block rows in a Python loop (vectorised across the row) instead of one
# np.cumsum call once a row holds this many values (cumsum costs ~3 ns a value, a loop step ~2 us).
ROW_LOOP_MIN = 512
# Size caps (values) of the working buffers of `segment_cumsum` and of the last-k window sums:
# below glibc's 32 MB mmap limit, so the memory is reused between calls instead of being mapped
# (and page-faulted) afresh each time.
BUFFER_VALUES = (31 << 20) // 8
QUERY_CHUNK = 1 << 16


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


def group_starts(keys_sorted_change: np.ndarray) -> np.ndarray:
    """Group offsets from a bool array marking rows where a new group begins (row 0 included)."""
    first = np.flatnonzero(keys_sorted_change).astype(np.int64)
    return np.append(first, np.int64(keys_sorted_change.shape[0]))


def segment_cumsum(
    parts: Sequence[np.ndarray], heads: np.ndarray, lengths: np.ndarray, at: np.ndarray
) -> np.ndarray:
    """Running sums of each of ``parts`` (float64, n values) down consecutive segments, read at
    rows ``at``: (len(parts), len(at)).

    Segment i is rows ``heads[i] : heads[i] + lengths[i]`` (lengths > 0, together all n). Every
    segment is summed one value after the other from its first, exactly as a loop over it would,
    so its sums depend on its own values only: never on the other segments of the call nor on
    its own later values. Segments of similar length (within a factor 2**0.25) share a
    zero-padded block, one segment per block column (the padding adds at most ~19%), and each
    block is summed down its columns (`running_sum`). Parts share one buffer of at most
    BUFFER_VALUES values, so large inputs go a few parts at a time.
    """
    n_parts, n = len(parts), parts[0].shape[0]
    n_seg = lengths.shape[0]
    out = np.empty((n_parts, at.shape[0]))
    if n == 0:
        return out
    longest = int(lengths.max())
    if longest * n_seg <= n + n // 4 + 4096:  # one block wastes little
        order, bounds = np.arange(n_seg), [n_seg]
    else:
        size_class = (4.0 * np.log2(lengths)).astype(np.int64)
        order = size_class.argsort(kind="stable")
        sorted_class = size_class[order]
        bounds = [*((sorted_class[1:] != sorted_class[:-1]).nonzero()[0] + 1).tolist(), n_seg]
    per_pass = max(1, min(n_parts, BUFFER_VALUES // (n + n // 4 + 4096 * 2)))
    # A wide block (many segments) is stored (length, segments), so a step down its columns is
    # one contiguous vector add; a narrow one (segments, length), summed by np.cumsum.
    blocks: list[tuple[int, int, int, bool]] = []  # offset, length, segments, wide
    base = np.empty(n_seg, dtype=np.int64)  # flat cell of each segment's first value
    stride = np.empty(n_seg, dtype=np.int64)  # cells between its consecutive values
    offset, lo = 0, 0
    for hi in bounds:
        members = order[lo:hi]
        length, count = int(lengths[members].max()), hi - lo
        wide = count * per_pass >= ROW_LOOP_MIN
        step = 1 if wide else length
        base[members] = np.arange(offset, offset + count * step, step)
        stride[members] = count if wide else 1
        blocks.append((offset, length, count, wide))
        offset, lo = offset + length * count, hi
    # flat cell of row i: its segment's base + (i - segment head) * the segment's stride
    cell = (base - heads * stride).repeat(lengths)
    along = np.arange(n)
    along *= stride.repeat(lengths)
    cell += along
    del along
    at_cell = cell[at]
    buffer = np.zeros((per_pass, offset))
    for first in range(0, n_parts, per_pass):
        group = parts[first : first + per_pass]
        rows = buffer[: len(group)]  # cells left from an earlier pass are padding: never read
        for row, part in zip(rows, group, strict=True):
            row[cell] = part
        for offset, length, count, wide in blocks:
            block = rows[:, offset : offset + length * count]
            if wide:
                running_sum(block.reshape(len(group), length, count), axis=1)
            else:
                running_sum(block.reshape(len(group), count, length), axis=2)
        for row, got in zip(rows, out[first : first + len(group)], strict=True):
            row.take(at_cell, out=got)
    return out


def running_sum(values: np.ndarray, axis: int) -> None:
    """In-place running sum along ``axis``: the additions of `np.cumsum`, in the same order.

    One vector add per step along ``axis`` (each over everything else), which beats one
    `np.cumsum` call (~3 ns a value, not vectorised) once a step holds ``ROW_LOOP_MIN`` values.
    """
    length = values.shape[axis]
    if values.size < ROW_LOOP_MIN * length:
        values.cumsum(axis=axis, out=values)
        return
    steps = np.moveaxis(values, axis, 0)
    for r in range(1, length):
        np.add(steps[r - 1], steps[r], out=steps[r])


def _decay_chunks(
    ts: np.ndarray, heads: np.ndarray, lengths: np.ndarray, rate: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """(lengths, heads) of the decay chunks when some group spans more than one, else None.

    Groups are ``heads[i] : heads[i] + lengths[i]``. A chunk is the run of a group's events
    inside one window of ``DECAY_SPAN / rate`` seconds, windows counted from the group's first
    event, so that within a chunk ``rate * (t - t_first_of_chunk) < DECAY_SPAN``: the weights
    exp(rate * (t - t_first_of_chunk)) stay finite.
    """
    if rate <= 0.0 or ts.shape[0] == 0:
        return None
    step = max(math.floor(DECAY_SPAN / rate), 1)
    if int(ts.max()) - int(ts.min()) < step:  # no group can span two windows
        return None
    if int((ts[heads + lengths - 1] - ts[heads]).max()) < step:
        return None
    window = (ts - ts[heads].repeat(lengths)) // step
    first = np.zeros(ts.shape[0], dtype=np.bool_)
    first[heads] = True
    first[1:] |= window[1:] != window[:-1]
    chunk_heads = first.nonzero()[0]
    return np.diff(np.append(chunk_heads, ts.shape[0])), chunk_heads


def _chunk_carry(
    end: np.ndarray, t_end: np.ndarray, t_head: np.ndarray, opens_group: np.ndarray, rate: float
) -> tuple[np.ndarray, np.ndarray]:
    """State each chunk inherits from the earlier chunks of its group, and the time it is at.

    ``end``: (F, n_chunks) chunk-local sums at each chunk's last contribution (rows: score,
    decayed score, decayed weight, then the other plain sums); ``t_end`` / ``t_head``: times of
    its last / first contribution; ``opens_group``: the chunk is its group's first. A Python loop
    over the chunk rank: a group that needs k chunks costs k - 1 steps, vectorised over groups.
    """
    index = np.arange(t_end.shape[0])
    rank = index - np.maximum.accumulate(np.where(opens_group, index, 0))
    inherited = np.zeros_like(end)
    t_from = t_head.copy()  # a group's first chunk inherits nothing, at no age
    state = end.copy()
    for r in range(1, int(rank.max()) + 1):
        cur = np.flatnonzero(rank == r)
        prev = cur - 1
        inherited[:, cur] = state[:, prev]
        t_from[cur] = t_end[prev]
        decay = np.exp(-rate * (t_end[cur] - t_end[prev]))
        state[:, cur] = state[:, prev] + end[:, cur]
        state[1:3, cur] = state[1:3, prev] * decay + end[1:3, cur]
    return inherited, t_from


class KernelSettings(TypedDict):
    """What `run_kernel` and `kernel_rows` compute for their queries (one definition, as the
    first passes it on to the second unchanged).

    ``windows``: the rolling window sizes (>= 1); ``rate``: decay per second (`decay_rate`);
    ``pass_mark``: a score below it is a fail; ``n_cols`` <= len(kernel_columns(windows)) selects
    the leading columns; query q lands on output row ``dest[q]`` (default q).
    """

    windows: Sequence[int]
    rate: float
    pass_mark: float
    n_cols: int
    dest: NotRequired[np.ndarray | None]


def run_kernel(
    *,
    starts: np.ndarray,
    ts: np.ndarray,
    score: np.ndarray,
    time_spent: np.ndarray,
    hints: np.ndarray,
    revisit: np.ndarray,
    contributes: np.ndarray,
    is_query: np.ndarray,
    **settings: Unpack[KernelSettings],
) -> np.ndarray:
    """Kernel rows (float64, (n_queries, n_cols), `kernel_columns` order) of the query rows.

    Rows are sorted by (group, timestamp); ``starts``: int64 group offsets (len n_groups + 1);
    ``ts``: int64 seconds; score/time_spent/hints: float64; revisit/contributes/is_query: bool.
    Query q is the q-th query row in row order (a ``dest`` must be a permutation of the query
    rows). A query sees the contributing rows of its group with a timestamp strictly before its
    own. The result is column-major (each column contiguous).
    """
    dest = settings.get("dest")
    ts = np.asarray(ts, dtype=np.int64)
    n = ts.shape[0]
    starts = np.asarray(starts, dtype=np.int64)
    if starts.ndim != 1 or starts.shape[0] < 1 or starts[0] != 0 or starts[-1] != n:
        raise ValueError(f"starts: must run from 0 to the {n} rows, got {starts[:3]}...")
    q_rows = np.flatnonzero(np.asarray(is_query, dtype=np.bool_))
    if dest is not None and np.shape(dest) != q_rows.shape:
        raise ValueError(f"dest: expected {q_rows.shape[0]} output rows, got {np.shape(dest)}")
    contributes = np.asarray(contributes, dtype=np.bool_)
    every = bool(contributes.all())
    c_rows = slice(None) if every else np.flatnonzero(contributes)
    # contributions (in row order) before each row; a query sees those before its timestamp
    # block (the rows of its group sharing its timestamp) down to its group's first
    seen = np.arange(n + 1) if every else np.append(0, np.cumsum(contributes))
    block = np.ones(n, dtype=np.bool_)
    np.not_equal(ts[1:], ts[:-1], out=block[1:])
    block[starts[:-1][starts[:-1] < n]] = True
    block_head = np.arange(n)
    block_head[~block] = 0
    np.maximum.accumulate(block_head, out=block_head)
    group_offsets = seen[starts]
    return kernel_rows(
        ts=ts[c_rows],
        score=np.asarray(score, dtype=np.float64)[c_rows],
        time_spent=np.asarray(time_spent, dtype=np.float64)[c_rows],
        hints=np.asarray(hints, dtype=np.float64)[c_rows],
        revisit=np.asarray(revisit, dtype=np.bool_)[c_rows],
        group_offsets=group_offsets,
        seen_begin=group_offsets[:-1].repeat(starts[1:] - starts[:-1])[q_rows],
        seen_end=seen[block_head[q_rows]],
        t_query=ts[q_rows],
        **settings,
    )


def kernel_rows(
    *,
    ts: np.ndarray,
    score: np.ndarray,
    time_spent: np.ndarray,
    hints: np.ndarray,
    revisit: np.ndarray,
    group_offsets: np.ndarray,
    seen_begin: np.ndarray,
    seen_end: np.ndarray,
    t_query: np.ndarray,
    **settings: Unpack[KernelSettings],
) -> np.ndarray:
    """Kernel rows (float64, (n_queries, n_cols)) of queries over the events they have seen.

    The events are the contributing rows alone, sorted by (group, timestamp): group g is rows
    ``group_offsets[g]:group_offsets[g + 1]``. Query q (at ``t_query[q]``) has seen the events
    ``seen_begin[q]:seen_end[q]``: those of its group strictly before ``t_query[q]`` (an empty
    range when none); queries come in event order. Column types as in `run_kernel`.
    """
    if unknown := settings.keys() - KernelSettings.__annotations__.keys():
        raise TypeError(f"kernel settings: unknown {sorted(unknown)}")
    n_cols, pass_mark, dest = settings["n_cols"], settings["pass_mark"], settings.get("dest")
    sizes = [int(k) for k in settings["windows"]]
    if not 0 < n_cols <= N_BASE + len(sizes) or min(sizes, default=1) < 1:
        raise ValueError(
            f"n_cols: must be in [1, {N_BASE + len(sizes)}], got {n_cols}; windows >= 1: {sizes}"
        )
    rate, n_c, n_q = float(settings["rate"]), ts.shape[0], t_query.shape[0]
    if n_c == 0 or n_q == 0:
        return np.tile(_empty_row(n_cols, len(sizes)), (n_q, 1))
    lengths = group_offsets[1:] - group_offsets[:-1]
    filled = lengths > 0
    lengths, group_heads = lengths[filled], group_offsets[:-1][filled]
    chunks = _decay_chunks(ts, group_heads, lengths, rate)
    seg, heads = (lengths, group_heads) if chunks is None else chunks
    age = ts - ts[heads].repeat(seg)
    age = age * rate
    weight = np.exp(age)
    parts = [score, score * weight, weight]
    del weight
    parts += [time_spent, hints][: max(0, min(2, n_cols - 8))]
    last = seen_end - 1  # the latest event seen (any valid row when none)
    np.maximum(last, 0, out=last)
    tails = heads + seg - 1
    sums = segment_cumsum(
        parts, heads, seg, last if chunks is None else np.concatenate([last, tails])
    )
    del parts
    back = np.exp(-age[last])
    dsum = sums[1, :n_q] * back
    dweight = sums[2, :n_q] * back
    plain = sums[[0, *range(3, sums.shape[0])], :n_q]
    if chunks is not None:
        end = sums[:, n_q:]
        end[1:3] *= np.exp(-age[tails])
        opens_group = np.zeros(n_c, dtype=np.bool_)
        opens_group[group_heads] = True
        inherited, t_from = _chunk_carry(end, ts[tails], ts[heads], opens_group[heads], rate)
        chunk = heads.searchsorted(last, side="right") - 1
        plain += inherited[[0, *range(3, sums.shape[0])]][:, chunk]
        fade = np.exp(-rate * (ts[last] - t_from[chunk]))
        dsum += inherited[1, chunk] * fade
        dweight += inherited[2, chunk] * fade
    del sums, age
    # Columns are computed in event order (memory-friendly gathers), one at a time, and each is
    # put in output order as it is written: the result is column-major, out.T.
    count = seen_end - seen_begin
    out = np.empty((n_cols, n_q))
    if dest is None:
        source = None
    else:
        source = np.empty_like(last)
        source[np.asarray(dest, dtype=np.int64)] = np.arange(n_q)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # empty rows: see below
        columns = _columns(
            count=count,
            sums=(dsum, dweight, *plain),
            last=last,
            seen=(seen_begin, seen_end),
            events=(ts, score, revisit),
            t_query=t_query,
            sizes=sizes,
            rate=rate,
            pass_mark=pass_mark,
            n_cols=n_cols,
        )
        for row, column in zip(out, columns, strict=False):
            if source is None:
                row[:] = column
            else:
                np.take(column.astype(np.float64, copy=False), source, out=row)
    empty = (count == 0) if source is None else (count == 0)[source]
    if empty.any():
        out[:, empty] = _empty_row(n_cols, len(sizes))[:, None]
    return out.T


def _columns(
    *,
    count: np.ndarray,
    sums: tuple[np.ndarray, ...],
    last: np.ndarray,
    seen: tuple[np.ndarray, np.ndarray],
    events: tuple[np.ndarray, np.ndarray, np.ndarray],
    t_query: np.ndarray,
    sizes: list[int],
    rate: float,
    pass_mark: float,
    n_cols: int,
) -> Iterator[np.ndarray]:
    """The kernel columns of `kernel_rows` in order, computed one by one (queries in event order).

    ``sums``: decayed score sum, decayed weight, score sum, then time spent and hints sums.
    """
    dsum, dweight, sum_score, *plain = sums
    seen_begin, seen_end = seen
    ts, score, revisit = events
    yield count
    yield sum_score / count
    yield dsum / dweight
    if n_cols <= 3:
        return
    dt = t_query - ts[last]
    yield dweight * np.exp(-rate * dt)
    fails = np.zeros(score.shape[0] + 1, dtype=np.int64)
    (score < pass_mark).cumsum(out=fails[1:])
    n_fail = fails[seen_end] - fails[seen_begin]
    del fails
    yield n_fail
    yield count - n_fail
    yield score[last]
    yield dt / 3600.0
    for s in plain:
        yield s / count
    if n_cols <= 10:
        return
    revisits = np.zeros(score.shape[0] + 1, dtype=np.int64)
    revisit.cumsum(out=revisits[1:])
    n_rev = revisits[seen_end] - revisits[seen_begin]
    del revisits
    yield n_rev
    yield n_rev / count
    if n_cols > N_BASE:
        for k, total in zip(sizes, _last_k_sums(score, last, count, sizes), strict=True):
            yield total / np.minimum(count, k)


def _last_k_sums(
    score: np.ndarray, last: np.ndarray, count: np.ndarray, sizes: list[int]
) -> np.ndarray:
    """Sum of the last min(k, count) scores up to event ``last``, per window k: (len(sizes), n).

    Latest first, one addition at a time (as a loop over them would); scores before the group's
    first event are zeroed, so step k - 1 holds the last-k sum. QUERY_CHUNK queries at a time.
    """
    n_q = last.shape[0]
    out = np.empty((len(sizes), n_q))
    back = np.arange(max(sizes))[:, None]
    for lo in range(0, n_q, QUERY_CHUNK):
        hi = min(lo + QUERY_CHUNK, n_q)
        recent = score.take(last[lo:hi] - back, mode="clip")
        recent *= back < count[lo:hi]
        running_sum(recent, axis=0)
        out[:, lo:hi] = recent[[k - 1 for k in sizes]]
    return out


def _empty_row(n_cols: int, n_windows: int) -> np.ndarray:
    """The row of a query that has seen no event of its group yet."""
    return np.array(_EMPTY_ROW + (math.nan,) * n_windows)[:n_cols]


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
