"""The features stage on Dask: the same examples as `features.build`, partitioned by learner.

Why it gives the local engine's numbers: the shared kernel computes each learner's values from
that learner's events only, in their input order (`core.kernel`), so running
`features.build.build_examples` on a partition holding whole learner histories, rows kept in
the global input order, gives the same float32 rows bit for bit. What needs the whole table is
done as distributed aggregations whose results equal the local ones:

- the split plan: the boundaries are order statistics of the assessment timestamps (found
  exactly in two counting passes, the value `np.quantile(..., method="higher")` returns) and the
  unseen learners are drawn by `features.split.choose_unseen_learners` from the distinct ids;
- the peer table: per-topic sums are exact (integer mantissas per partition, added as Python
  ints, rounded once), so they do not depend on how the events are partitioned; pandas' local
  per-topic sums (Kahan-compensated) equal them on all data measured (docs/scale.md). The
  global mean's sum is numpy's pairwise summation tree rebuilt over the partitions
  (`pairwise_total`), bit-equal to the local `Series.sum()`.

Inputs are "pieces" (a Parquet file, or one row group of a single file) with their global row
offsets read from the Parquet metadata, so every event keeps a global row number `_gid` and a
partition can restore the input order after the shuffle by learner. An input already
partitioned by learner (the simulator's shards; checked exactly in the plan pass) is not
shuffled at all (`by_learner`). Outputs stream partition by partition
into one Parquet file per split (one row group per partition), so the downstream stages read
the same file layout whichever engine wrote it.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from features.build import build_examples
from features.config import FeatureConfig
from features.split import SPLITS, SplitPlan, assign_splits, choose_unseen_learners

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

GID = "_gid"  # global input row number of an event
SPLIT = "_split"
P_FAIL = "p_fail_true"  # the oracle column, when there is one
# Exact sums: a float64 x is m * 2**e with |m| < 2**53 and e >= -1074 - 52; shifting every
# term by EXACT_SHIFT makes it an integer, and m is cut in two halves so int64 sums of up to
# 2**36 values per (topic, exponent) never overflow.
EXACT_SHIFT = 1127
_HALF_BITS = 26


@dataclass(frozen=True)
class Piece:
    """One input partition: a Parquet file (row_group None) or one row group of a file."""

    events: str
    oracle: str | None
    row_group: int | None
    offset: int  # global row number of the piece's first row
    n_rows: int


def parquet_files(path: Path | str) -> list[Path]:
    """A Parquet file, or the ``*.parquet`` files of a directory in name order."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix == ".parquet" and p.is_file())
        if not files:
            raise FileNotFoundError(f"{path}: directory holds no .parquet files")
        return files
    if not path.is_file():
        raise FileNotFoundError(f"{path}: events not found (run the data stage)")
    return [path]


def event_pieces(events: Path | str, oracle: Path | str | None = None) -> list[Piece]:
    """Pieces of an event table (a file: its row groups; a directory: its files) in order.

    The oracle, when present, must have the same layout (same file names, same row counts).
    """
    import pyarrow.parquet as pq

    files = parquet_files(events)
    oracle_files: list[Path | None] = [None] * len(files)
    if oracle is not None and Path(oracle).exists():
        if Path(events).is_dir():
            oracle_files = [Path(oracle) / f.name for f in files]
        else:
            oracle_files = [Path(oracle)]
    pieces: list[Piece] = []
    offset = 0
    for file, ofile in zip(files, oracle_files, strict=True):
        meta = pq.ParquetFile(file).metadata
        if ofile is not None:
            ometa = pq.ParquetFile(ofile).metadata
            if ometa.num_rows != meta.num_rows:
                raise ValueError(
                    f"{ofile}: {ometa.num_rows} rows but {file} has {meta.num_rows}; the oracle "
                    "must be aligned row by row"
                )
        groups: Iterable[int | None] = range(meta.num_row_groups) if len(files) == 1 else [None]
        for g in groups:
            n = meta.num_rows if g is None else meta.row_group(g).num_rows
            if n == 0:
                continue
            pieces.append(Piece(str(file), None if ofile is None else str(ofile), g, offset, n))
            offset += n
    return pieces


def _read(path: str, row_group: int | None, columns: Sequence[str] | None) -> pd.DataFrame:
    import pandas as pd
    import pyarrow.parquet as pq

    if row_group is None:
        return pd.read_parquet(path, columns=None if columns is None else list(columns))
    table = pq.ParquetFile(path).read_row_group(
        row_group, columns=None if columns is None else list(columns)
    )
    return table.to_pandas()


def read_piece(piece: Piece, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The piece's events + ``p_fail_true`` (NaN without an oracle) + ``_gid``.

    ``columns`` (all when None) may name those two as well: it is also the column projection
    dask pushes into the read (`dd.from_map` passes the columns a pass needs), so a pass over
    a few columns reads only those, and the oracle only when ``p_fail_true`` is asked for."""
    import pandas as pd

    extra = (P_FAIL, GID)
    wanted = None if columns is None else [c for c in columns if c not in extra]
    if wanted == []:
        frame = pd.DataFrame(index=pd.RangeIndex(piece.n_rows))
    else:
        frame = _read(piece.events, piece.row_group, wanted)
    if columns is None or P_FAIL in columns:
        if piece.oracle is not None:
            frame[P_FAIL] = _read(piece.oracle, piece.row_group, [P_FAIL])[P_FAIL].to_numpy()
        else:
            frame[P_FAIL] = np.nan
    if columns is None or GID in columns:
        frame[GID] = np.arange(piece.offset, piece.offset + piece.n_rows, dtype=np.int64)
    return frame if columns is None else frame[list(columns)]


def _empty_piece(piece: Piece, columns: Sequence[str] | None) -> pd.DataFrame:
    import pyarrow.parquet as pq

    schema = pq.ParquetFile(piece.events).schema_arrow
    table = schema.empty_table()
    if columns is not None:
        table = table.select(list(columns))
    frame = table.to_pandas()
    frame["p_fail_true"] = np.array([], dtype=np.float64)
    frame[GID] = np.array([], dtype=np.int64)
    return frame


def events_frame(pieces: Sequence[Piece], columns: Sequence[str] | None = None) -> Any:
    """A dask DataFrame with one partition per piece (``read_piece`` runs on the workers)."""
    import dask.dataframe as dd

    base = None if columns is None else (*columns, P_FAIL, GID)
    read = functools.partial(read_piece, columns=base)
    # a zero-row read (the schema), not the first piece: pieces can hold millions of rows
    empty = Piece(pieces[0].events, pieces[0].oracle, pieces[0].row_group, 0, 0)
    meta = _empty_piece(empty, columns)
    return dd.from_map(read, list(pieces), meta=meta, enforce_metadata=False)


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


# ----------------------------------------------------------------------------- peer table


def exact_partial_sums(keys: np.ndarray, values: np.ndarray) -> dict[str, tuple[int, int]]:
    """Per key: (sum of ``values`` times 2**EXACT_SHIFT as an exact int, count)."""
    import pandas as pd

    if len(values) == 0:
        return {}
    mant, exp = np.frexp(np.asarray(values, dtype=np.float64))
    m = (mant * float(1 << 53)).astype(np.int64)  # exact: |mant| < 1 has 53 bits
    hi = m >> _HALF_BITS
    lo = m - (hi << _HALF_BITS)
    # group on integer codes (a groupby on the string keys costs ~3x as much)
    codes, names = pd.factorize(np.asarray(keys))
    frame = pd.DataFrame({"k": codes, "e": exp.astype(np.int64) - 53, "hi": hi, "lo": lo})
    sums = frame.groupby(["k", "e"], sort=True)[["hi", "lo"]].sum()
    counts = np.bincount(codes, minlength=len(names))
    out: dict[str, list[int]] = {str(names[k]): [0, int(c)] for k, c in enumerate(counts)}
    for (k, e), h, low in zip(sums.index, sums["hi"], sums["lo"], strict=True):
        out[str(names[k])][0] += ((int(h) << _HALF_BITS) + int(low)) << (int(e) + EXACT_SHIFT)
    return {k: (v[0], v[1]) for k, v in out.items()}


def in_set(users: Any, members: frozenset[str]) -> np.ndarray:
    """``users.isin(members)`` in time linear in the partition, not in ``members``.

    ``Series.isin(list(members))`` hashes all of ``members`` for every partition, and the
    unseen learners are a fixed share of all learners, so that grew with partitions x
    learners (at 100M: 84 partitions x 41,667 unseen, ~0.2 s per call); here only the
    partition's distinct ids are looked up in the set."""
    import pandas as pd

    if not members:
        return np.zeros(len(users), dtype=bool)
    codes, uniques = pd.factorize(users)
    hit = np.fromiter((u in members for u in uniques), dtype=bool, count=len(uniques))
    return hit[codes]


def _training_scores(part: pd.DataFrame, before: int, unseen: frozenset[str]) -> pd.DataFrame:
    mask = part["timestamp"].to_numpy() < before
    if unseen:
        mask &= ~in_set(part["user_id"], unseen)
    return part.loc[mask, ["topic_id", "score"]]


def _peer_partials(part: pd.DataFrame, before: int, unseen: frozenset[str]) -> Any:
    sel = _training_scores(part, before, unseen)
    return exact_partial_sums(sel["topic_id"].to_numpy(dtype=object), sel["score"].to_numpy())


# numpy's pairwise summation (what `Series.sum()` runs on a float64 column): blocks of at most
# PAIRWISE_BLOCK values are summed with 8 accumulators, longer ranges split in two halves
# rounded down to a multiple of 8. Reproduced over the partitions: every node of that tree
# lying inside one partition is summed there with np.add.reduce (which runs the same tree on
# the slice), the few block leaves straddling a partition boundary travel as raw values.
PAIRWISE_BLOCK = 128


def _pairwise_plan(lo: int, n: int, starts: Sequence[int]) -> Any:
    """The tree of ``np.add.reduce`` over global range [lo, lo + n) cut at partition
    ``starts``: ("part", p, offset, n) | ("leaf", lo, n) | ("node", left, right)."""
    import bisect

    p = bisect.bisect_right(starts, lo) - 1
    if p + 1 >= len(starts) or lo + n <= starts[p + 1]:
        return ("part", p, lo - starts[p], n)
    if n <= PAIRWISE_BLOCK:
        return ("leaf", lo, n)
    n2 = n // 2
    n2 -= n2 % 8
    return ("node", _pairwise_plan(lo, n2, starts), _pairwise_plan(lo + n2, n - n2, starts))


def _plan_requests(node: Any, starts: Sequence[int], out: dict[int, list[Any]]) -> None:
    """Per partition: the (kind, offset, length) slices it must sum or send."""
    kind = node[0]
    if kind == "part":
        out.setdefault(node[1], []).append(("sum", node[2], node[3]))
    elif kind == "leaf":
        lo, n = node[1], node[2]
        for p in range(len(starts) - 1):
            a, b = max(lo, starts[p]), min(lo + n, starts[p + 1])
            if a < b:
                out.setdefault(p, []).append(("raw", a - starts[p], b - a))
    else:
        _plan_requests(node[1], starts, out)
        _plan_requests(node[2], starts, out)


def _answer(part: pd.DataFrame, before: int, unseen: frozenset[str], asks: list[Any]) -> Any:
    values = _training_scores(part, before, unseen)["score"].to_numpy(dtype=np.float64)
    return [
        float(np.add.reduce(values[o : o + n])) if k == "sum" else values[o : o + n].copy()
        for k, o, n in asks
    ]


def _evaluate(node: Any, starts: Sequence[int], got: dict[int, list[Any]]) -> float:
    kind = node[0]
    if kind == "part":
        return float(got[node[1]].pop(0))
    if kind == "leaf":
        lo, n = node[1], node[2]
        pieces = [
            got[p].pop(0)
            for p in range(len(starts) - 1)
            if max(lo, starts[p]) < min(lo + n, starts[p + 1])
        ]
        return float(np.add.reduce(np.concatenate(pieces)))
    left = _evaluate(node[1], starts, got)
    return left + _evaluate(node[2], starts, got)


def pairwise_total(
    parts: Sequence[Any], counts: Sequence[int], before: int, unseen: frozenset[str]
) -> float:
    """``Series.sum()`` of the training scores in global order, bit for bit, from partitions
    holding ``counts`` of them each (only slice sums and boundary leaves travel)."""
    import dask

    starts = [0, *np.cumsum(counts).tolist()]
    if starts[-1] == 0:
        return 0.0
    tree = _pairwise_plan(0, starts[-1], starts)
    asks: dict[int, list[Any]] = {}
    _plan_requests(tree, starts, asks)
    idx = sorted(asks)
    answers = dask.compute(*[dask.delayed(_answer)(parts[p], before, unseen, asks[p]) for p in idx])
    got = {p: list(a) for p, a in zip(idx, answers, strict=True)}
    # requests were planned in tree order per partition, so they are consumed in that order
    return 0.0 + _evaluate(tree, starts, got)


def compute_peer_table_dask(
    events: Any, *, prior_weight: float, before: int, exclude_users: frozenset[str]
) -> dict[str, Any]:
    """`features.peer.compute_peer_table` as a distributed aggregation (same layout).

    Each partition reduces its training-period events of allowed learners to exact per-topic
    sums; only those small dicts travel to the client. The global mean's numerator is numpy's
    pairwise sum in the global row order (`pairwise_total`), as the local table computes it.
    """
    import dask

    parts = events[["user_id", "topic_id", "timestamp", "score"]].to_delayed()
    partials = dask.compute(
        *[dask.delayed(_peer_partials)(p, before, exclude_users) for p in parts]
    )
    totals: dict[str, list[int]] = {}
    counts = []
    for partial in partials:
        counts.append(sum(c for _, c in partial.values()))
        for topic, (s, c) in partial.items():
            acc = totals.setdefault(topic, [0, 0])
            acc[0] += s
            acc[1] += c
    n = sum(counts)
    if n == 0:
        raise ValueError(
            "peer statistics: no training-period events left "
            f"(before={before}, include/exclude filters applied)"
        )
    scale = 1 << EXACT_SHIFT
    topics = {t: [totals[t][0] / scale, float(totals[t][1])] for t in sorted(totals)}
    prior_mean = float(pairwise_total(parts, counts, before, exclude_users) / n)
    logger.info(
        "peer table (dask): %d topics from %d events, global mean %.4f", len(topics), n, prior_mean
    )
    return {"prior_mean": prior_mean, "prior_weight": float(prior_weight), "topics": topics}


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


def _has_shuffle(frame: Any) -> bool:
    from dask.dataframe.dask_expr._shuffle import ShuffleBase

    return next(iter(frame.expr.find_operations(ShuffleBase)), None) is not None


def iter_partitions(client: Any, frame: Any, window: int) -> Iterator[pd.DataFrame]:
    """Partitions in order, at most ``window`` computed ahead (bounded client memory).

    A frame behind a shuffle is submitted as one graph instead: each separate submission of a
    few output partitions would run the whole shuffle again once the previous one finished
    (measured: 9 partitions in windows of 2 ran it 4 times, so the stage grew with
    partitions x events). The workers then hold the finished partitions until the client
    takes them (spilling to disk past their memory target); learner-partitioned inputs need
    no shuffle (`by_learner`) and keep the window."""
    delayed = frame.to_delayed()
    if _has_shuffle(frame):
        everything = client.compute(delayed)
        for i in range(len(everything)):
            yield everything[i].result()
            everything[i] = None
        return
    futures: list[Any] = []
    nxt = 0
    for i in range(len(delayed)):
        while nxt < len(delayed) and nxt < i + window:
            futures.append(client.compute(delayed[nxt]))
            nxt += 1
        yield futures[i].result()
        futures[i] = None  # release the worker's copy


def write_splits(
    parts: Iterable[pd.DataFrame],
    out_dir: Path,
    unseen: frozenset[str],
    on_part: Callable[[pd.DataFrame], None] | None = None,
) -> dict[str, Any]:
    """Stream example partitions into ``out_dir/{train,val,test}.parquet`` (a row group per
    partition); returns the stage's split metrics, computed as `pipelines.features` does."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    writers: dict[str, Any] = {}
    rows = dict.fromkeys(SPLITS, 0)
    fails = dict.fromkeys(SPLITS, 0)
    test_unseen: set[str] = set()
    schema = None
    for part in parts:
        if on_part is not None:
            on_part(part)
        names = part[SPLIT].to_numpy()
        body = part.drop(columns=[SPLIT, GID])
        for split in SPLITS:
            sel = body.loc[names == split].reset_index(drop=True)
            table = pa.Table.from_pandas(sel, preserve_index=False)
            if schema is None:
                schema = table.schema
            if split not in writers:
                writers[split] = pq.ParquetWriter(out_dir / f"{split}.parquet", schema)
            if len(sel):
                writers[split].write_table(table.cast(schema))
            rows[split] += len(sel)
            fails[split] += int(sel["label"].sum())
            if split == "test":
                test_unseen.update(set(sel["user_id"].unique()) & set(unseen))
    for w in writers.values():
        w.close()
    metrics: dict[str, Any] = {}
    for split in SPLITS:
        metrics[f"{split}_rows"] = rows[split]
        metrics[f"{split}_positive_rate"] = fails[split] / rows[split] if rows[split] else 0.0
    metrics["test_unseen_learners"] = len(test_unseen)
    return metrics
