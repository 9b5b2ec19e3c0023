"""Readers: KT TSV adapter, events CSV/Parquet round trip, dispatch by source."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data.simulator import SimulatorConfig, parse_start, simulate
from data.sources import (
    KT_DEFAULT_START,
    KT_STEP_S,
    DataConfig,
    load_events,
    read_events_file,
    read_kt_tsv,
)
from data.validate import EventValidationError, pandas_dtypes
from pipelines.common import ConfigError, build_config
from tests.fixtures.events import SHARED_KT, TINY_SIM

KT_HEADER = "user_id\titem_id\ttimestamp\tcorrect\tskill_id"


def write_tsv(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join([KT_HEADER, *rows]) + "\n")
    return path


def test_kt_zero_timestamps_row_order_is_time(tmp_path: Path) -> None:
    path = write_tsv(
        tmp_path / "kt.tsv",
        [
            "7\t100\t0\t0\t3",
            "7\t101\t0\t1\t3",
            "8\t100\t0\t1\t1_2",
            "7\t100\t0\t1\t3",  # second answer of learner 7 to item 100
            "7\t100\t0\t1\t3",  # third
        ],
    )
    events = read_kt_tsv(path)
    assert {c: str(t) for c, t in events.dtypes.items()} == pandas_dtypes()
    start = parse_start(KT_DEFAULT_START)
    assert events["timestamp"].tolist() == [start + KT_STEP_S * i for i in range(5)]
    assert events["user_id"].tolist() == ["7", "7", "8", "7", "7"]
    assert events["topic_id"].tolist() == ["3", "3", "1_2", "3", "3"]  # multi-skill = 1 topic
    assert events["score"].tolist() == [0.0, 1.0, 1.0, 1.0, 1.0]
    assert events["attempt"].tolist() == [1, 1, 1, 2, 3]
    assert events["is_revisit"].tolist() == [False, False, False, True, True]
    assert set(events["activity"]) == {"quiz"}
    assert (events["time_spent_s"] == 0).all() and (events["hints_used"] == 0).all()


def test_kt_real_timestamps_ties_broken_by_row_order(tmp_path: Path) -> None:
    t = 1_700_000_000  # epoch seconds (2023): inside serving's 2000..2100 range
    path = write_tsv(
        tmp_path / "kt.tsv",
        [
            f"a\t1\t{t + 100}\t1\ts",
            f"a\t2\t{t + 100}\t0\ts",  # tie with the row above: comes after it
            f"b\t1\t{t + 100}\t1\ts",  # another learner may share the second
            f"a\t1\t{t + 101}\t1\ts",  # would collide with the shifted tie: pushed on
            f"a\t3\t{t}\t1\ts",  # earlier in time than the rows above
            f"a\t4\t{t + 500}\t1\ts",  # leaves room: unchanged
        ],
    )
    events = read_kt_tsv(path)
    assert (events["timestamp"] - t).tolist() == [100, 101, 100, 102, 0, 500]
    # attempt follows time order: item 1 of learner a is answered at 1000 then 1002.
    assert events["attempt"].tolist() == [1, 1, 1, 2, 1, 1]
    per_learner = events[events["user_id"] == "a"].sort_values("timestamp")["timestamp"]
    assert per_learner.is_monotonic_increasing and per_learner.is_unique


def test_kt_errors_quote_timestamps_as_in_the_file(tmp_path: Path) -> None:
    """A relative clock (before 2000) is quoted as written, not tie-broken."""
    path = write_tsv(tmp_path / "kt.tsv", ["a\t1\t1000\t1\ts", "a\t2\t1000\t0\ts"])
    with pytest.raises(EventValidationError) as err:
        read_kt_tsv(path)
    assert str(err.value) == (
        f"{path}: column 'timestamp': 2 value(s) out of range at line 2 ('1000'), "
        "line 3 ('1000'); allowed: integer seconds in [946684800, 4102444800] "
        "(2000-01-01 .. 2100-01-01 UTC)"
    )


def test_kt_bad_rows_are_named(tmp_path: Path) -> None:
    path = write_tsv(tmp_path / "kt.tsv", ["1\t5\t0\t2\t3", "1\t6\tx\t1\t", "\t7\t0\t1\t3"])
    with pytest.raises(EventValidationError) as info:
        read_kt_tsv(path)
    joined = "\n".join(info.value.problems)
    assert str(path) in str(info.value)
    assert "column 'correct'" in joined and "line 2 ('2')" in joined and "0 or 1" in joined
    assert "column 'timestamp'" in joined and "line 3 ('x')" in joined
    assert "column 'skill_id'" in joined and "line 3 ('')" in joined
    assert "column 'user_id'" in joined and "line 4 ('')" in joined


def test_kt_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "kt.tsv"
    path.write_text("user_id\titem_id\tcorrect\tskill_id\n1\t2\t1\t3\n")
    with pytest.raises(EventValidationError, match=r"missing column\(s\) \['timestamp'\]"):
        read_kt_tsv(path)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_events_file_round_trip(tmp_path: Path, suffix: str) -> None:
    cfg = SimulatorConfig(**{**TINY_SIM, "n_learners": 10, "days": 10})
    events, _ = simulate(cfg, pass_mark=0.6)
    path = tmp_path / f"events{suffix}"
    if suffix == ".csv":
        events.to_csv(path, index=False)
    else:
        events.to_parquet(path, index=False)
    back = read_events_file(path)
    pd.testing.assert_frame_equal(back, events, check_exact=False, rtol=1e-12)


def test_load_events_dispatch(tmp_path: Path) -> None:
    t = 1_700_000_000
    path = write_tsv(
        tmp_path / "kt.tsv",
        [f"b\t1\t{t + 20}\t1\ts", f"a\t1\t{t + 10}\t0\ts", f"a\t2\t{t + 20}\t1\ts"],
    )
    cfg = DataConfig(source="kt_tsv", path=str(path), simulator=None, pass_mark=0.6)
    events, oracle = load_events(cfg)
    # Sorted by (timestamp, user_id); the oracle is unknown for real data.
    assert list(zip(events["timestamp"] - t, events["user_id"], strict=True)) == [
        (10, "a"),
        (20, "a"),
        (20, "b"),
    ]
    assert len(oracle) == 3 and oracle.isna().all().all()

    sim_cfg = DataConfig(
        source="simulator", path=None, simulator=SimulatorConfig(**TINY_SIM), pass_mark=0.6
    )
    events, oracle = load_events(sim_cfg)
    assert len(events) == len(oracle) > 0 and oracle.notna().all().all()


def test_data_config_requires_path_for_files() -> None:
    values = {"source": "events_file", "path": None, "simulator": TINY_SIM, "pass_mark": 0.6}
    with pytest.raises(ConfigError, match=r"data\.path"):
        build_config(DataConfig, values, "data")
    with pytest.raises(ConfigError, match="source"):
        build_config(DataConfig, {**values, "source": "excel"}, "data")


@pytest.mark.realdata
@pytest.mark.skipif(not SHARED_KT.is_file(), reason="../shared/data not available")
def test_assistments09_train() -> None:
    start = time.perf_counter()
    events = read_kt_tsv(SHARED_KT)
    elapsed = time.perf_counter() - start
    assert len(events) == 220_070
    assert events["user_id"].nunique() == 2_491
    assert 0.6 < events["score"].mean() < 0.7  # about 66% correct (README)
    ts = events.groupby("user_id")["timestamp"].diff().dropna()
    assert (ts > 0).all()
    assert elapsed < 15.0, f"reading took {elapsed:.1f} s"
    assert np.isin(events["score"], (0.0, 1.0)).all()
