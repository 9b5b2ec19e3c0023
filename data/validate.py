"""Validation of learner-event tables from every source (simulator, CSV/Parquet, KT TSV).

One pass collects every problem (missing/extra columns, wrong types, NaN, out-of-range values,
unknown activities, empty ids, duplicate events) and raises a single ``EventValidationError``
whose message names the source file, the column, the first offending rows with their values and
what is allowed, so a bad file is fixed in one round trip.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from core.schema import ACTIVITIES, DUPLICATE_KEY, EVENT_COLUMNS
from serving import ids

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

MAX_SHOWN = 5  # offending rows quoted per problem
# Serving's time range (serving.ids): 2000-01-01 .. 2100-01-01 UTC. Past 2100 is most likely
# milliseconds; before 2000 a relative clock. Serving would refuse such events in a request.
MIN_TIMESTAMP = ids.TIMESTAMP_MIN
MAX_TIMESTAMP = ids.TIMESTAMP_MAX
_TRUE = {"true", "1", "t", "yes"}
_FALSE = {"false", "0", "f", "no"}
_MISSING_TEXT = {"", "nan", "NaN", "NAN", "null", "NULL", "None", "NA", "<NA>"}


class EventValidationError(ValueError):
    """An event table breaks the schema; ``problems`` lists each finding, one line each."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = list(problems)
        if len(self.problems) == 1:  # one line: what, where, allowed
            super().__init__(f"{source}: {self.problems[0]}")
            return
        body = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s) in the event table:\n{body}")


def pandas_dtypes() -> dict[str, str]:
    """Schema column -> pandas dtype of a normalised frame (strings use pandas' default `str`)."""
    return {c: ("str" if t == "string" else t) for c, t in EVENT_COLUMNS.items()}


class ProblemReport:
    """Accumulates problems with row numbers in the file's own numbering."""

    def __init__(self, row_offset: int, row_label: str) -> None:
        self.problems: list[str] = []
        self.columns: set[str] = set()  # columns with at least one problem
        self.row_offset = row_offset
        self.row_label = row_label

    def add(self, column: str, what: str, mask: np.ndarray, values: Any, allowed: str) -> None:
        """Record a problem for the rows where ``mask`` is true (no-op when none).

        ``values`` (a Series or array aligned with the rows) is only read at the quoted rows.
        """
        idx = np.flatnonzero(mask)
        if idx.size == 0:
            return
        self.columns.add(column)
        head = idx[:MAX_SHOWN]
        quoted = values.iloc[head].tolist() if hasattr(values, "iloc") else list(values[head])
        shown = ", ".join(
            f"{self.row_label} {int(i) + self.row_offset} ({_show(v)})"
            for i, v in zip(head, quoted, strict=True)
        )
        more = f" and {idx.size - MAX_SHOWN} more" if idx.size > MAX_SHOWN else ""
        self.problems.append(
            f"column '{column}': {idx.size} {what} at {shown}{more}; allowed: {allowed}"
        )


def _show(value: Any) -> str:
    if value is None or value is getattr(__import__("pandas"), "NA", None):
        return "missing"
    if isinstance(value, float | np.floating) and np.isnan(value):
        return "NaN"
    return repr(value.item() if isinstance(value, np.generic) else value)


def _missing(series: pd.Series) -> np.ndarray:
    """Cells that are null, NaN, or (for text) an empty/null spelling."""
    import pandas as pd

    miss = series.isna().to_numpy().copy()
    if not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)):
        text = series.astype("str").str.strip()
        miss |= text.isin(_MISSING_TEXT).to_numpy(dtype=bool, na_value=True)
    return miss


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _numeric(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Float64 values and a mask of non-missing cells that are not numbers."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(series):
        return series.to_numpy(dtype=np.float64, copy=True), np.ones(len(series), bool)
    if pd.api.types.is_numeric_dtype(series):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
        return values, np.zeros(len(series), bool)
    values = pd.to_numeric(series.astype("str").str.strip(), errors="coerce")
    values = values.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
    return values, np.isnan(values) & ~_missing(series)


def _timestamps(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Seconds since epoch (float64) from ints or ISO-8601 strings; mask of unparseable cells."""
    import pandas as pd

    values, bad = _numeric(series)
    if bad.any():
        text = series[bad].astype("str").str.strip()
        parsed = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
        ok = parsed.notna().to_numpy()
        epoch = pd.Timestamp(0, tz="UTC")
        seconds = ((parsed[ok] - epoch) // pd.Timedelta(seconds=1)).to_numpy(dtype=np.float64)
        idx = np.flatnonzero(bad)
        values[idx[ok]] = seconds
        bad[idx[ok]] = False
    return values, bad


def _check_numeric(
    report: ProblemReport,
    df: pd.DataFrame,
    column: str,
    *,
    integer: bool,
    low: float,
    high: float | None,
    parse: Callable[[pd.Series], tuple[np.ndarray, np.ndarray]] = _numeric,
    type_name: str = "number",
) -> np.ndarray:
    """Validate one numeric column; returns float64 values (NaN where invalid)."""
    series = df[column]
    raw = series
    values, bad_type = parse(series)
    rng = f"[{_fmt(low)}, {_fmt(high)}]" if high is not None else f">= {_fmt(low)}"
    kind = type_name if type_name != "number" else ("integer" if integer else "number")
    report.add(column, "value(s) of the wrong type", bad_type, raw, f"{kind} {rng}")
    missing = np.isnan(values) & ~bad_type
    report.add(column, "missing value(s) (NaN/empty)", missing, raw, f"{kind} {rng}")
    finite = np.isfinite(values)
    report.add(column, "infinite value(s)", ~finite & ~np.isnan(values), raw, f"{kind} {rng}")
    with np.errstate(invalid="ignore"):
        out = finite & ((values < low) | ((values > high) if high is not None else False))
    report.add(column, "value(s) out of range", out, raw, rng)
    if integer:
        frac = finite & ~out & (values != np.round(values))
        report.add(column, "non-integer value(s)", frac, raw, f"integer {rng}")
    return values


def _check_text(
    report: ProblemReport, df: pd.DataFrame, column: str, *, allow_empty: bool
) -> pd.Series | None:
    """Validate an id/label column; returns it as pandas `str` (None when unusable)."""
    import pandas as pd

    series = df[column]
    raw = series
    if pd.api.types.is_float_dtype(series) or pd.api.types.is_bool_dtype(series):
        report.add(
            column,
            f"value(s) of the wrong type ({series.dtype})",
            np.ones(len(series), bool),
            raw,
            "text (or integer ids)",
        )
        return None
    if not (pd.api.types.is_string_dtype(series) or pd.api.types.is_integer_dtype(series)):
        wrong = ~np.array([isinstance(v, str) or v is None for v in raw], dtype=bool)
        wrong &= ~series.isna().to_numpy()
        report.add(column, "value(s) of the wrong type", wrong, raw, "text")
    text = series.astype("str")
    if allow_empty:
        return text.where(series.notna(), "").str.strip().astype("str")
    stripped = text.str.strip()
    null = series.isna().to_numpy()
    report.add(column, "missing value(s) (NaN)", null, raw, "non-empty text")
    empty = (stripped == "").to_numpy(dtype=bool, na_value=False) & ~null
    report.add(column, "empty value(s)", empty, raw, "non-empty text")
    return stripped


def _check_ids(report: ProblemReport, text: pd.Series, raw: Any, kind: ids.IdKind) -> None:
    """Serving's id rules (length, control characters, reserved prefix) on each distinct id."""
    import pandas as pd

    codes, uniques = pd.factorize(text)
    problems = [ids.id_problem(str(u), kind) if u != "" else None for u in uniques]
    by_problem: dict[str, list[int]] = {}
    for i, problem in enumerate(problems):
        if problem:
            by_problem.setdefault(problem, []).append(i)
    for problem, which in by_problem.items():
        mask = np.isin(codes, which)
        report.add(kind, f"id(s) {problem}", mask, raw, ids.id_rule_text(kind))


def _check_bool(report: ProblemReport, df: pd.DataFrame, column: str) -> np.ndarray:
    """Booleans from bool dtype, 0/1 numbers or true/false text."""
    import pandas as pd

    series = df[column]
    raw = series
    allowed = "true/false (or 1/0)"
    if pd.api.types.is_bool_dtype(series) and not series.isna().any():
        return series.to_numpy(dtype=bool)
    missing = series.isna().to_numpy().copy()
    if pd.api.types.is_numeric_dtype(series):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~missing & ~np.isin(values, (0.0, 1.0))
        out = values == 1.0
    else:
        text = series.astype("str").str.strip().str.lower()
        is_true = text.isin(_TRUE).to_numpy(dtype=bool, na_value=False)
        is_false = text.isin(_FALSE).to_numpy(dtype=bool, na_value=False)
        missing |= text.isin({t.lower() for t in _MISSING_TEXT}).to_numpy(dtype=bool, na_value=True)
        bad = ~missing & ~is_true & ~is_false
        out = is_true
    report.add(column, "missing value(s) (NaN/empty)", missing, raw, allowed)
    report.add(column, "value(s) of the wrong type", bad, raw, allowed)
    return out


def validate_events(
    df: pd.DataFrame, *, source: str, row_offset: int = 0, row_label: str = "row"
) -> pd.DataFrame:
    """Check an event table against ``core/schema.py``; return it normalised or raise.

    The normalised frame has exactly the schema columns in schema order with the schema dtypes
    (ids as pandas `str`, ``timestamp`` int64 seconds UTC: ISO-8601 text is converted), and a
    fresh RangeIndex. Row numbers in messages are ``position + row_offset`` (CSV readers pass
    the file line of the first data row, 2, and ``row_label="line"``).
    Raises ``EventValidationError`` listing every problem found.
    """
    import pandas as pd

    report = ProblemReport(row_offset, row_label)
    columns = [str(c) for c in df.columns]
    expected = list(EVENT_COLUMNS)
    missing_cols = [c for c in expected if c not in columns]
    extra_cols = [c for c in columns if c not in EVENT_COLUMNS]
    dup_cols = sorted({c for c in columns if columns.count(c) > 1})
    if missing_cols:
        report.problems.append(f"missing column(s) {missing_cols}; required: {expected}")
    if extra_cols:
        report.problems.append(f"unexpected column(s) {extra_cols}; allowed: {expected}")
    if dup_cols:
        report.problems.append(f"column(s) {dup_cols} appear more than once")
        raise EventValidationError(source, report.problems)
    if len(df) == 0:
        report.problems.append("no rows; at least one event is required")
    df = df.reset_index(drop=True)
    present = set(columns)
    out: dict[str, Any] = {}

    for col in ("user_id", "topic_id", "item_id", "activity"):
        if col in present:
            out[col] = _check_text(report, df, col, allow_empty=col == "item_id")
    kinds: tuple[ids.IdKind, ...] = ("user_id", "topic_id")
    for kind in kinds:
        if out.get(kind) is not None:
            _check_ids(report, out[kind], df[kind], kind)
    if out.get("activity") is not None:
        act = out["activity"]
        unknown = ~act.isin(ACTIVITIES).to_numpy(dtype=bool, na_value=False)
        unknown &= (act != "").to_numpy(dtype=bool, na_value=False) & df[
            "activity"
        ].notna().to_numpy()
        report.add(
            "activity", "unknown activity value(s)", unknown, df["activity"], str(list(ACTIVITIES))
        )

    if "timestamp" in present:
        out["timestamp"] = _check_numeric(
            report,
            df,
            "timestamp",
            integer=True,
            low=MIN_TIMESTAMP,
            high=MAX_TIMESTAMP,
            parse=_timestamps,
            type_name="integer seconds since epoch (UTC, 2000..2100) or ISO-8601 text",
        )
    if "score" in present:
        out["score"] = _check_numeric(report, df, "score", integer=False, low=0.0, high=1.0)
    if "time_spent_s" in present:
        out["time_spent_s"] = _check_numeric(
            report, df, "time_spent_s", integer=False, low=0.0, high=None
        )
    if "hints_used" in present:
        out["hints_used"] = _check_numeric(report, df, "hints_used", integer=True, low=0, high=None)
    if "attempt" in present:
        out["attempt"] = _check_numeric(report, df, "attempt", integer=True, low=1, high=None)
    if "is_revisit" in present:
        out["is_revisit"] = _check_bool(report, df, "is_revisit")

    if set(DUPLICATE_KEY) <= present and not (set(DUPLICATE_KEY) & report.columns):
        # Duplicates only make sense once the key columns are clean and normalised.
        key = pd.DataFrame({c: out[c] for c in DUPLICATE_KEY})
        dup = key.duplicated(keep="first").to_numpy()
        if dup.any():
            shown = np.empty(len(df), dtype=object)
            for i in np.flatnonzero(dup)[:MAX_SHOWN]:
                shown[i] = tuple(str(df[c].iat[i]) for c in DUPLICATE_KEY)
            report.add(
                ",".join(DUPLICATE_KEY),
                "duplicate event(s) (same key as an earlier row)",
                dup,
                shown,
                f"each ({', '.join(DUPLICATE_KEY)}) at most once",
            )
    if report.problems:
        raise EventValidationError(source, report.problems)

    dtypes = pandas_dtypes()
    normalised = pd.DataFrame({c: pd.Series(out[c]).astype(dtypes[c]) for c in EVENT_COLUMNS})
    logger.info("%s: %d events valid", source, len(normalised))
    return normalised
