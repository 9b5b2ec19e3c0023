"""Event sources: the simulator, an events file (CSV/Parquet) and the knowledge-tracing TSV.

Every source returns ``(events, oracle)`` with events validated by :func:`validate_events`
and sorted by ``(timestamp, user_id)`` (stable, so file order breaks ties); the oracle is NaN
for real data, where the truth is unknown.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from core.schema import DUPLICATE_KEY, EVENT_COLUMNS, ORACLE_COLUMNS
from data.params import ConfigError, require
from data.simulator import SimulatorConfig, parse_start, simulate
from data.validate import EventValidationError, ProblemReport, validate_events
from serving.ids import TIMESTAMP_MAX, TIMESTAMP_MIN, timestamp_rule_text

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

KT_COLUMNS: tuple[str, ...] = ("user_id", "item_id", "timestamp", "correct", "skill_id")
# KT files with no clock (all timestamps 0) get one event a minute in file order from here.
KT_DEFAULT_START = "2020-01-01T00:00:00Z"
KT_STEP_S = 60
TIMESTAMP_RULE = timestamp_rule_text()


@dataclass(frozen=True)
class DataConfig:
    """``params.yaml`` section ``data`` plus ``features.pass_mark`` (injected by the stage)."""

    source: Literal["simulator", "events_file", "kt_tsv"]
    path: str | None
    # features.pass_mark, checked under that key where it is read (pipelines.data.load_config)
    pass_mark: float
    simulator: SimulatorConfig | None = None  # required when source is 'simulator'
    # not in params.yaml (a code constant): the clock for KT files without timestamps
    kt_start: str = KT_DEFAULT_START

    def __post_init__(self) -> None:
        if self.source == "simulator":
            require(
                self.simulator is not None,
                "data.simulator",
                "required (a mapping) when data.source is 'simulator'",
            )
            # A path next to the simulator would be silently ignored: refuse the ambiguity.
            require(
                not self.path,
                "data.path",
                f"must be null when data.source is 'simulator' (it would be ignored), "
                f"got {self.path!r}",
            )
        else:
            require(
                bool(self.path),
                "data.path",
                f"required (a file path) when data.source is '{self.source}'",
            )
        try:
            parse_start(self.kt_start)
        except ValueError as exc:
            raise ConfigError(f"data.kt_start: {exc}") from exc


def _sorted(events: pd.DataFrame) -> pd.DataFrame:
    """Stable sort by (timestamp, user_id): file order breaks ties."""
    order = np.lexsort((events["user_id"].to_numpy(), events["timestamp"].to_numpy()))
    return events.iloc[order].reset_index(drop=True)


def _nan_oracle(n: int) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame({c: np.full(n, np.nan) for c in ORACLE_COLUMNS})


def require_input_file(path: Path | str, what: str) -> Path:
    """The path of an existing regular file; one-line errors for missing or a directory."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a directory, expected a {what} file")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} file not found")
    return path


def read_text_table(path: Path, *, sep: str, columns: Sequence[str]) -> pd.DataFrame:
    """A CSV/TSV as text cells, header names stripped; file-level problems are one line each.

    Empty or blank files, binary or non-UTF-8 bytes, a repeated header name and a row with more
    fields than the header are reported with the file (and line) instead of a pandas traceback.
    """
    import csv

    import pandas as pd

    source = str(path)
    kind = "TSV" if sep == "\t" else "CSV"
    with path.open("rb") as fh:
        head = fh.read(65_536)
    if b"\x00" in head:
        raise EventValidationError(source, [f"binary file (NUL bytes), not {kind} text"])
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            lines = (line for line in fh if line.strip())
            header_line = next(lines, None)
    except UnicodeDecodeError as exc:
        raise EventValidationError(
            source, [f"not UTF-8 text (byte offset {exc.start}); save the file as UTF-8 {kind}"]
        ) from None
    if header_line is None:
        raise EventValidationError(
            source, [f"empty file (no header line); expected a header with {list(columns)}"]
        )
    header = [h.strip() for h in next(csv.reader([header_line], delimiter=sep))]
    dups = sorted({h for h in header if header.count(h) > 1})
    if dups:
        raise EventValidationError(
            source,
            [f"header names {dups} appear more than once; each column once: {list(columns)}"],
        )
    try:
        raw = pd.read_csv(
            path,
            sep=sep,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            encoding="utf-8",
            skip_blank_lines=True,
        )
    except UnicodeDecodeError as exc:
        raise EventValidationError(
            source, [f"not UTF-8 text (byte offset {exc.start}); save the file as UTF-8 {kind}"]
        ) from None
    except pd.errors.EmptyDataError:
        raise EventValidationError(
            source, [f"empty file (no header line); expected a header with {list(columns)}"]
        ) from None
    except pd.errors.ParserError as exc:
        match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if match is None:
            raise EventValidationError(source, [f"unreadable {kind}: {exc}"]) from None
        expected, line, saw = match.groups()
        raise EventValidationError(
            source,
            [
                f"line {line}: {saw} fields, but the header has {expected}; every line needs one "
                f"value per header column"
            ],
        ) from None
    raw.columns = [str(c).strip() for c in raw.columns]
    return raw


def read_events_file(path: Path | str) -> pd.DataFrame:
    """Read a CSV or Parquet event table (or a directory of Parquet parts), validated.

    CSV cells are read as text so that bad cells are reported verbatim with their file line;
    timestamps may be int seconds or ISO-8601 (UTC or with an offset). Header names are
    stripped of spaces (as the KT reader does).
    """
    import pandas as pd

    if Path(path).is_dir():
        return read_events_dir(path)
    path = require_input_file(path, "events")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        try:
            raw = pd.read_parquet(path)
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise EventValidationError(
                str(path), [f"not a readable Parquet file ({type(exc).__name__}: {exc})"]
            ) from None
        return validate_events(raw, source=str(path), row_offset=1, row_label="row")
    if suffix == ".csv":
        raw = read_text_table(path, sep=",", columns=list(EVENT_COLUMNS))
        return validate_events(raw, source=str(path), row_offset=2, row_label="line")
    raise EventValidationError(
        str(path), [f"unsupported file type '{suffix}'; allowed: .csv, .parquet"]
    )


def parquet_parts(path: Path | str) -> list[Path]:
    """The ``*.parquet`` files of a directory (a partitioned event table), in name order."""
    path = Path(path)
    if path.suffix.lower() in (".csv", ".tsv", ".txt"):  # named like a file: the user meant one
        raise IsADirectoryError(f"{path}: is a directory, expected a events file")
    parts = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".parquet")
    if not parts:
        raise EventValidationError(
            str(path),
            ["directory holds no .parquet files; expected part files such as part-00000.parquet"],
        )
    return parts


def read_events_dir(path: Path | str) -> pd.DataFrame:
    """A directory of Parquet parts as one event table, in part-name then row order.

    Each part is validated on its own, so a bad row is named by its file and its row in that
    file (``.../part-00731.parquet: column 'score': ... at row 12 ...``).
    """
    import pandas as pd

    parts = parquet_parts(path)
    frames = [read_events_file(part) for part in parts]
    if len(frames) == 1:
        return frames[0]
    events = pd.concat(frames, ignore_index=True)
    # each part refused its own duplicates; an event repeated in a later part is named here
    dup = events.duplicated(list(DUPLICATE_KEY), keep="first").to_numpy()
    if dup.any():
        first = int(np.flatnonzero(dup)[0])
        ends = np.cumsum([len(f) for f in frames])
        part = int(np.searchsorted(ends, first, side="right"))
        row = first - (int(ends[part - 1]) if part else 0)
        key = tuple(str(events[c].iat[first]) for c in DUPLICATE_KEY)
        raise EventValidationError(
            str(parts[part]),
            [
                f"row {row + 1}: duplicate event {key} (same ({', '.join(DUPLICATE_KEY)}) as a "
                f"row of an earlier part); each event at most once across the directory "
                f"({int(dup.sum())} duplicate(s))"
            ],
        )
    return events


def read_kt_tsv(path: Path | str, *, start: str = KT_DEFAULT_START) -> pd.DataFrame:
    """Knowledge-tracing TSV (``user_id item_id timestamp correct skill_id``) -> event schema.

    skill -> topic (a multi-skill string such as ``1_2`` is one topic), correct -> score,
    activity = quiz, no time/hints, attempt = earlier answers by the learner to the item + 1,
    is_revisit = attempt > 1. All-zero timestamps mean row order is time: the clock becomes
    ``start + 60 s x row``. Real timestamps are kept, with ties inside a learner broken by row
    order (+1 s steps) so a learner's timestamps strictly increase.
    """
    import pandas as pd

    path = require_input_file(path, "KT")
    raw = read_text_table(path, sep="\t", columns=KT_COLUMNS)
    source = str(path)
    report = ProblemReport(row_offset=2, row_label="line")
    columns = list(raw.columns)
    missing = [c for c in KT_COLUMNS if c not in columns]
    extra = [c for c in columns if c not in KT_COLUMNS]
    if missing:
        report.problems.append(f"missing column(s) {missing}; required: {list(KT_COLUMNS)}")
    if extra:
        report.problems.append(f"unexpected column(s) {extra}; allowed: {list(KT_COLUMNS)}")
    if missing or extra:
        raise EventValidationError(source, report.problems)
    if len(raw) == 0:
        raise EventValidationError(source, ["no rows; at least one answer is required"])

    text = {c: raw[c].str.strip() for c in KT_COLUMNS}
    for col in ("user_id", "item_id", "skill_id"):
        report.add(col, "empty value(s)", (text[col] == "").to_numpy(), raw[col], "non-empty text")
    correct = pd.to_numeric(text["correct"], errors="coerce").to_numpy(np.float64)
    report.add(
        "correct", "invalid value(s)", ~np.isin(correct, (0.0, 1.0)), raw["correct"], "0 or 1"
    )
    ts = pd.to_numeric(text["timestamp"], errors="coerce").to_numpy(np.float64)
    bad_ts = ~np.isfinite(ts) | (ts < 0) | (ts != np.round(ts))
    report.add("timestamp", "invalid value(s)", bad_ts, raw["timestamp"], "integer seconds >= 0")
    if not bad_ts.any() and ts.any():
        # Range checked here, on the values as written: after tie-breaking they may differ.
        with np.errstate(invalid="ignore"):
            out = (ts < TIMESTAMP_MIN) | (ts > TIMESTAMP_MAX)
        report.add("timestamp", "value(s) out of range", out, raw["timestamp"], TIMESTAMP_RULE)
    if report.problems:
        raise EventValidationError(source, report.problems)

    n = len(raw)
    user = text["user_id"].to_numpy(dtype=object)
    row = np.arange(n, dtype=np.int64)
    if not ts.any():
        seconds = parse_start(start) + KT_STEP_S * row
    else:
        seconds = _untie(user, ts.astype(np.int64), row)
    frame = pd.DataFrame(
        {
            "user_id": text["user_id"],
            "topic_id": text["skill_id"],
            "item_id": text["item_id"],
            "timestamp": seconds,
            "activity": "quiz",
            "score": correct,
            "time_spent_s": 0.0,
            "hints_used": 0,
            "attempt": 0,
            "is_revisit": False,
        }
    )
    # attempt counts earlier answers in time order (timestamps now strictly increase per
    # learner, so (user, timestamp) order is the learner's own order).
    by_time = np.lexsort((seconds, frame["user_id"].to_numpy()))
    in_order = frame.iloc[by_time]
    attempt = in_order.groupby(["user_id", "item_id"], sort=False).cumcount().to_numpy() + 1
    frame.loc[frame.index[by_time], "attempt"] = attempt
    frame["is_revisit"] = frame["attempt"] > 1
    # Rows are still in file order, so validation messages quote file lines.
    return validate_events(frame, source=source, row_offset=2, row_label="line")


def _untie(user: np.ndarray, ts: np.ndarray, row: np.ndarray) -> np.ndarray:
    """Shift timestamps up minimally so each learner's strictly increase, ties in row order."""
    import pandas as pd

    codes = pd.factorize(user)[0]
    order = np.lexsort((row, ts, codes))
    c, t = codes[order], ts[order]
    start = np.r_[True, c[1:] != c[:-1]]
    group_start = np.maximum.accumulate(np.where(start, np.arange(len(c)), 0))
    rank = np.arange(len(c)) - group_start
    # Within a group, adjusted = running max of (t - rank) + rank: strictly increasing, and
    # equal to t wherever t already leaves room.
    shifted = pd.Series(t - rank).groupby(c).cummax().to_numpy() + rank
    out = np.empty_like(ts)
    out[order] = shifted
    return out


def untie_learner_times(events: pd.DataFrame, *, source: str) -> pd.DataFrame:
    """Same-learner, same-second events: later file rows move up 1 s (as the KT reader does).

    docs/data_schema.md promises that a learner's timestamps strictly increase; exports with
    one-second clocks tie, so ties are broken deterministically by file row order (logged),
    after validation has quoted the file's own values and refused exact duplicates.
    """
    ts = events["timestamp"].to_numpy(dtype=np.int64)
    user = events["user_id"].to_numpy(dtype=object)
    seconds = _untie(user, ts, np.arange(len(events), dtype=np.int64))
    moved = np.flatnonzero(seconds != ts)
    if moved.size:
        logger.warning(
            "%s: %d event(s) share a second with an earlier event of the same learner; moved "
            "later by file row order (first: row %d)",
            source,
            moved.size,
            int(moved[0]),
        )
        events = events.assign(timestamp=seconds)
    return events


def load_events(cfg: DataConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Load events from the configured source; returns ``(events, oracle)`` aligned by row."""
    if cfg.source == "simulator":
        if cfg.simulator is None:  # guarded in DataConfig; kept for the type checker
            raise ConfigError("data.simulator: required when data.source is 'simulator'")
        events, oracle = simulate(cfg.simulator, pass_mark=cfg.pass_mark)
        events = validate_events(events, source="simulator")
        return events, oracle
    if cfg.path is None:  # guarded in DataConfig; kept for the type checker
        raise ConfigError("data.path: required when data.source is not 'simulator'")
    if cfg.source == "events_file":
        events = untie_learner_times(read_events_file(cfg.path), source=cfg.path)
    else:
        events = read_kt_tsv(cfg.path, start=cfg.kt_start)
    events = _sorted(events)
    return events, _nan_oracle(len(events))
