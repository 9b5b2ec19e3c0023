"""Event sources: the simulator, an events file (CSV/Parquet) and the knowledge-tracing TSV.

Every source returns ``(events, oracle)`` with events validated by :func:`validate_events`
and sorted by ``(timestamp, user_id)`` (stable, so file order breaks ties); the oracle is NaN
for real data, where the truth is unknown.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from data.schema import ORACLE_COLUMNS
from data.simulator import SimulatorConfig, parse_start, simulate
from data.validate import EventValidationError, ProblemReport, validate_events
from pipelines.common import ConfigError, require

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

KT_COLUMNS: tuple[str, ...] = ("user_id", "item_id", "timestamp", "correct", "skill_id")
# KT files with no clock (all timestamps 0) get one event a minute in file order from here.
KT_DEFAULT_START = "2020-01-01T00:00:00Z"
KT_STEP_S = 60


@dataclass(frozen=True)
class DataConfig:
    """``params.yaml`` section ``data`` plus ``features.pass_mark`` (injected by the stage)."""

    source: Literal["simulator", "events_file", "kt_tsv"]
    path: str | None
    pass_mark: float
    simulator: SimulatorConfig | None = None  # required when source is 'simulator'
    kt_start: str = KT_DEFAULT_START  # clock for KT files without timestamps

    def __post_init__(self) -> None:
        require(
            0.0 < self.pass_mark <= 1.0, "features.pass_mark", f"{self.pass_mark} not in (0, 1]"
        )
        if self.source == "simulator":
            require(
                self.simulator is not None,
                "data.simulator",
                "required (a mapping) when data.source is 'simulator'",
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


def read_events_file(path: Path | str) -> pd.DataFrame:
    """Read a CSV or Parquet event table in the schema, validated and normalised.

    CSV cells are read as text so that bad cells are reported verbatim with their file line;
    timestamps may be int seconds or ISO-8601 (UTC or with an offset).
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: events file not found")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        raw = pd.read_parquet(path)
        return validate_events(raw, source=str(path), row_offset=1, row_label="row")
    if suffix == ".csv":
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
        return validate_events(raw, source=str(path), row_offset=2, row_label="line")
    raise EventValidationError(
        str(path), [f"unsupported file type '{suffix}'; allowed: .csv, .parquet"]
    )


def read_kt_tsv(path: Path | str, *, start: str = KT_DEFAULT_START) -> pd.DataFrame:
    """Knowledge-tracing TSV (``user_id item_id timestamp correct skill_id``) -> event schema.

    skill -> topic (a multi-skill string such as ``1_2`` is one topic), correct -> score,
    activity = quiz, no time/hints, attempt = earlier answers by the learner to the item + 1,
    is_revisit = attempt > 1. All-zero timestamps mean row order is time: the clock becomes
    ``start + 60 s x row``. Real timestamps are kept, with ties inside a learner broken by row
    order (+1 s steps) so a learner's timestamps strictly increase.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: KT file not found")
    raw = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, na_filter=False)
    source = str(path)
    report = ProblemReport(row_offset=2, row_label="line")
    columns = [str(c).strip() for c in raw.columns]
    raw.columns = columns
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
        events = read_events_file(cfg.path)
    else:
        events = read_kt_tsv(cfg.path, start=cfg.kt_start)
    events = _sorted(events)
    return events, _nan_oracle(len(events))
