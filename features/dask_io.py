"""Reading events into Dask and streaming examples out, for the Dask engine's stages.

Inputs are "pieces" (a Parquet file, or one row group of a single file) with their global row
offsets read from the Parquet metadata, so every event keeps a global row number `_gid` and a
partition can restore the input order after the shuffle by learner (`features.dask_build`).
Outputs stream partition by partition into one Parquet file per split (one row group per
partition), so the downstream stages read the same file layout whichever engine wrote it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from features.split import SPLITS

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

GID = "_gid"  # global input row number of an event
SPLIT = "_split"
P_FAIL = "p_fail_true"  # the oracle column, when there is one


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
