"""Validation: every kind of bad cell is reported with file, column, row, value and range."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from core.schema import EVENT_COLUMNS
from data.sources import read_events_file
from data.validate import EventValidationError, pandas_dtypes, validate_events

HEADER = ",".join(EVENT_COLUMNS)
# Lines 2-4 of the file (line 1 is the header).
ROWS = [
    ["u1", "t1", "i1", "1767571200", "quiz", "0.8", "30.5", "0", "1", "false"],
    ["u1", "t1", "i2", "1767571260", "minigame", "0.25", "12", "2", "1", "true"],
    ["u2", "t2", "", "2026-01-05T00:10:00Z", "quiz", "1", "0", "1", "2", "0"],
]


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    path.write_text("\n".join([HEADER, *(",".join(r) for r in rows)]) + "\n")
    return path


def with_cell(row: int, column: str, value: str) -> list[list[str]]:
    rows = [list(r) for r in ROWS]
    rows[row][list(EVENT_COLUMNS).index(column)] = value
    return rows


def test_valid_csv_is_normalised(tmp_path: Path) -> None:
    events = read_events_file(write_csv(tmp_path / "ok.csv", ROWS))
    assert {c: str(t) for c, t in events.dtypes.items()} == pandas_dtypes()
    # ISO-8601 text becomes int seconds since epoch (UTC).
    assert events["timestamp"].tolist() == [1767571200, 1767571260, 1767571800]
    assert events["is_revisit"].tolist() == [False, True, False]
    assert events["item_id"].tolist() == ["i1", "i2", ""]
    assert events["hints_used"].tolist() == [0, 2, 1]


# (row index in ROWS, column, bad value, text the "allowed" part must contain)
BAD_CELLS = [
    (0, "score", "1.5", "[0, 1]"),
    (1, "score", "-0.1", "[0, 1]"),
    (2, "score", "abc", "[0, 1]"),
    (0, "score", "", "[0, 1]"),
    (1, "score", "nan", "[0, 1]"),
    (0, "time_spent_s", "-3", ">= 0"),
    (1, "hints_used", "-1", ">= 0"),
    (2, "hints_used", "1.5", "integer"),
    (0, "attempt", "0", ">= 1"),
    (1, "attempt", "two", ">= 1"),
    (2, "activity", "video", "'quiz', 'minigame', 'exercise'"),
    (0, "user_id", "", "non-empty"),
    (1, "topic_id", " ", "non-empty"),
    (2, "timestamp", "yesterday", "ISO-8601"),
    (0, "timestamp", "-5", "[946684800, "),
    (0, "timestamp", "900", "[946684800, "),  # relative clock: serving refuses it too
    (1, "timestamp", "1767571200000", "[946684800, 4102444800]"),
    (2, "is_revisit", "maybe", "true/false"),
    (0, "is_revisit", "", "true/false"),
]


@pytest.mark.parametrize(("row", "column", "value", "allowed"), BAD_CELLS)
def test_bad_cell_is_named(tmp_path: Path, row: int, column: str, value: str, allowed: str) -> None:
    path = write_csv(tmp_path / "bad.csv", with_cell(row, column, value))
    with pytest.raises(EventValidationError) as info:
        read_events_file(path)
    message = str(info.value)
    assert str(path) in message
    assert len(info.value.problems) == 1, message
    problem = info.value.problems[0]
    assert f"column '{column}'" in problem
    assert f"line {row + 2} " in problem  # file line: header is line 1
    assert repr(value) in problem
    assert "allowed:" in problem and allowed in problem.split("allowed:")[1]


def test_all_problems_are_collected(tmp_path: Path) -> None:
    rows = with_cell(0, "score", "2")
    rows[2][list(EVENT_COLUMNS).index("attempt")] = "0"
    rows[1][list(EVENT_COLUMNS).index("activity")] = "game"
    with pytest.raises(EventValidationError) as info:
        read_events_file(write_csv(tmp_path / "bad.csv", rows))
    problems = info.value.problems
    assert len(problems) == 3
    joined = "\n".join(problems)
    for needle in ("'score'", "line 2 ", "'attempt'", "line 4 ", "'activity'", "line 3 "):
        assert needle in joined


def test_duplicate_events(tmp_path: Path) -> None:
    rows = [*ROWS, list(ROWS[1])]  # line 5 repeats line 3
    with pytest.raises(EventValidationError, match=r"duplicate.*line 5 .*'u1', 't1', 'i2'"):
        read_events_file(write_csv(tmp_path / "dup.csv", rows))


def test_missing_and_extra_columns(tmp_path: Path) -> None:
    frame = pd.DataFrame([r[:-1] for r in ROWS], columns=list(EVENT_COLUMNS)[:-1])
    frame["colour"] = "red"
    path = tmp_path / "cols.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(EventValidationError) as info:
        read_events_file(path)
    message = str(info.value)
    assert "missing column(s) ['is_revisit']" in message
    assert "unexpected column(s) ['colour']" in message
    assert str(path) in message


def test_parquet_types_and_row_numbers(tmp_path: Path) -> None:
    good = read_events_file(write_csv(tmp_path / "ok.csv", ROWS))
    bad = good.copy()
    bad["score"] = [0.5, float("nan"), 0.2]
    bad["hints_used"] = bad["hints_used"].astype("float64")
    bad.loc[2, "hints_used"] = 0.5
    path = tmp_path / "bad.parquet"
    bad.to_parquet(path, index=False)
    with pytest.raises(EventValidationError) as info:
        read_events_file(path)
    joined = "\n".join(info.value.problems)
    assert "'score': 1 missing value(s) (NaN/empty) at row 2 (NaN)" in joined
    assert "'hints_used': 1 non-integer value(s) at row 3 (0.5)" in joined


def test_float_ids_are_wrong_type() -> None:
    frame = pd.DataFrame(
        {
            "user_id": [1.5],
            "topic_id": ["t"],
            "item_id": [""],
            "timestamp": [1_767_571_200],
            "activity": ["quiz"],
            "score": [0.5],
            "time_spent_s": [1.0],
            "hints_used": [0],
            "attempt": [1],
            "is_revisit": [False],
        }
    )
    with pytest.raises(EventValidationError, match=r"'user_id'.*wrong type"):
        validate_events(frame, source="mem")
    # Integer ids are fine and become text.
    frame["user_id"] = [7]
    assert validate_events(frame, source="mem")["user_id"].tolist() == ["7"]


def test_empty_table_is_rejected() -> None:
    frame = pd.DataFrame({c: [] for c in EVENT_COLUMNS})
    with pytest.raises(EventValidationError, match="no rows"):
        validate_events(frame, source="empty")


def test_unsupported_suffix(tmp_path: Path) -> None:
    path = tmp_path / "events.json"
    path.write_text("{}")
    with pytest.raises(EventValidationError, match=r"(?s)events.json.*\.csv, \.parquet"):
        read_events_file(path)


def test_duplicates_are_reported_with_other_problems(tmp_path: Path) -> None:
    rows = [*with_cell(0, "score", "7"), list(ROWS[0])]  # line 5 repeats line 2's key
    with pytest.raises(EventValidationError) as info:
        read_events_file(write_csv(tmp_path / "both.csv", rows))
    joined = "\n".join(info.value.problems)
    assert "'score'" in joined and "line 2 ('7')" in joined
    assert "duplicate" in joined and "line 5 (('u1', 't1', 'i1', '1767571200'))" in joined


def test_datetime_timestamps_become_seconds(tmp_path: Path) -> None:
    good = read_events_file(write_csv(tmp_path / "ok.csv", ROWS))
    frame = good.assign(timestamp=pd.to_datetime(good["timestamp"], unit="s", utc=True))
    path = tmp_path / "dt.parquet"
    frame.to_parquet(path, index=False)
    assert read_events_file(path)["timestamp"].tolist() == good["timestamp"].tolist()


# ----------------------------------------------------------------------------- id and time rules
# One set of id/time rules (serving.ids) for the data stage and serving.


@pytest.mark.parametrize(
    ("column", "value", "problem"),
    [
        ("user_id", "u" * 129, "id(s) longer than 128 characters"),
        ("topic_id", "t" * 65, "id(s) longer than 64 characters"),
        ("user_id", "a\x07b", "id(s) contains a control character"),
        ("user_id", "u\u200b1", "id(s) contains an invisible formatting character (U+200B)"),
        ("topic_id", "t\u202e1", "id(s) contains an invisible formatting character (U+202E)"),
        ("topic_id", "__global", "id(s) starts with the reserved prefix '__'"),
    ],
)
def test_ids_serving_refuses_are_refused_here(
    tmp_path: Path, column: str, value: str, problem: str
) -> None:
    path = write_csv(tmp_path / "ids.csv", with_cell(1, column, value))
    with pytest.raises(EventValidationError) as err:
        read_events_file(path)
    message = str(err.value)
    assert "\n" not in message
    assert f"column '{column}': 1 {problem} at line 3" in message
    assert "allowed: 1-" in message


def test_the_same_rules_refuse_these_ids_in_a_request() -> None:
    """The request schema reads the same module: what the data stage refuses, serving refuses."""
    from pydantic import ValidationError

    from serving import ids
    from serving.schemas import WeaknessPredictionInput

    for user in ("u" * (ids.MAX_LEN["user_id"] + 1), "a\x07b"):
        assert ids.id_problem(user, "user_id")
        with pytest.raises(ValidationError):
            WeaknessPredictionInput(user_id=user, average_score_per_topic={"t": 0.5})
    assert ids.id_problem("__global", "topic_id")
    with pytest.raises(ValidationError):
        WeaknessPredictionInput(user_id="u", average_score_per_topic={"__global": 0.5})
    assert ids.id_problem("u" * ids.MAX_LEN["user_id"], "user_id") is None


def test_same_learner_same_second_is_tie_broken_by_row_order(tmp_path: Path) -> None:
    """docs/data_schema.md: a learner's timestamps strictly increase after loading."""
    from data.sources import DataConfig, load_events

    rows = [
        ["u1", "t1", "i1", "1767571200", "quiz", "0.8", "30", "0", "1", "false"],
        ["u1", "t2", "i2", "1767571200", "quiz", "0.4", "30", "0", "1", "false"],  # same second
        ["u2", "t1", "i1", "1767571200", "quiz", "0.4", "30", "0", "1", "false"],  # other learner
    ]
    path = write_csv(tmp_path / "ties.csv", rows)
    cfg = DataConfig(source="events_file", path=str(path), pass_mark=0.6)
    events, _ = load_events(cfg)
    cols = zip(events["user_id"], events["topic_id"], events["timestamp"], strict=True)
    by = {(u, t): ts for u, t, ts in cols}
    assert by[("u1", "t1")] == 1767571200
    assert by[("u1", "t2")] == 1767571201  # the later file row moves up one second
    assert by[("u2", "t1")] == 1767571200
    # an exact duplicate is still refused, not tie-broken
    dup = write_csv(tmp_path / "dup.csv", [rows[0], rows[0]])
    with pytest.raises(EventValidationError, match="duplicate event"):
        read_events_file(dup)
