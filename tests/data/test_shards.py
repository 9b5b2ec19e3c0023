"""Sharded simulation (engine: dask) and partitioned Parquet event sources."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from data.simulator import SimulatorConfig, simulate, simulate_shard
from data.sources import read_events_file
from data.validate import EventValidationError
from tests.fixtures.cluster import shared_client
from tests.fixtures.events import TINY_SIM


def test_local_simulation_unchanged_by_the_shard_mode() -> None:
    """The local simulator's frames as recorded before the shard mode was added: the exact
    columns (ids, timestamps, counts, flags) by hash, the float columns by their sums.

    Why not one hash of everything: numpy's exp / log take other SIMD paths on other CPUs
    (AVX2 against AVX-512), which moves a float's last bit, never an id or a count."""
    h = hashlib.sha256()
    sums: list[dict[str, float]] = []
    for seed in (3, 4):
        ev, orc = simulate(SimulatorConfig(**{**TINY_SIM, "seed": seed}), pass_mark=0.6)
        for frame in (ev, orc):
            exact = frame.select_dtypes(exclude="float")
            if len(exact.columns):
                h.update(pd.util.hash_pandas_object(exact, index=False).to_numpy().tobytes())
            sums.append({c: float(frame[c].sum()) for c in frame.select_dtypes(include="float")})
    assert h.hexdigest() == "4622b71e29e1586c1beca0737977d6c44323a7c811f0914e75fab4ea4a5c3602"
    assert sums == [
        {
            "score": pytest.approx(3010.048792784252, rel=1e-9),
            "time_spent_s": pytest.approx(606368.6, rel=1e-9),
        },
        {
            "p_fail_true": pytest.approx(2099.749270220592, rel=1e-9),
            "mastery_true": pytest.approx(3036.2277451219334, rel=1e-9),
        },
        {
            "score": pytest.approx(3291.8856879903583, rel=1e-9),
            "time_spent_s": pytest.approx(599162.8, rel=1e-9),
        },
        {
            "p_fail_true": pytest.approx(2042.4688564719222, rel=1e-9),
            "mastery_true": pytest.approx(3285.2554172884084, rel=1e-9),
        },
    ]


def test_shards_are_independent_and_deterministic() -> None:
    cfg = SimulatorConfig(**{**TINY_SIM, "n_learners": 25})
    a = [simulate_shard(cfg, pass_mark=0.6, shard=s, learners_per_shard=10) for s in (2, 0, 1)]
    b = simulate_shard(cfg, pass_mark=0.6, shard=0, learners_per_shard=10)
    pd.testing.assert_frame_equal(a[1][0], b[0])  # same shard, any order, same rows
    users = [set(ev["user_id"]) for ev, _ in a]
    assert [len(u) for u in users] == [5, 10, 10]
    assert not (users[0] & users[1]) and not (users[1] & users[2])
    assert set().union(*users) <= {f"u{i:02d}" for i in range(25)}  # global ids, global width
    for ev, orc in a:
        assert len(ev) == len(orc) > 0
        assert np.all(np.diff(ev["timestamp"].to_numpy()) >= 0)
    with pytest.raises(ValueError, match=r"shard 3 not in \[0, 3\)"):
        simulate_shard(cfg, pass_mark=0.6, shard=3, learners_per_shard=10)


def test_directory_source_names_the_bad_file_and_row(tmp_path: Path) -> None:
    events, _ = simulate(SimulatorConfig(**TINY_SIM), pass_mark=0.6)
    parts = tmp_path / "events"
    parts.mkdir()
    chunks = np.array_split(np.arange(len(events)), 3)
    for i, idx in enumerate(chunks):
        events.iloc[idx].to_parquet(parts / f"part-{i:05d}.parquet", index=False)
    got = read_events_file(parts)
    pd.testing.assert_frame_equal(got, read_events_file_whole(events, tmp_path))
    bad = events.iloc[chunks[1]].reset_index(drop=True)
    bad.loc[4, "score"] = 1.5
    bad.to_parquet(parts / "part-00001.parquet", index=False)
    with pytest.raises(EventValidationError) as err:
        read_events_file(parts)
    text = str(err.value)
    assert "part-00001.parquet" in text and "row 5 (1.5)" in text and "\n" not in text
    events.iloc[chunks[1]].to_parquet(parts / "part-00001.parquet", index=False)
    events.iloc[chunks[0][:3]].to_parquet(parts / "part-00003.parquet", index=False)  # repeats
    with pytest.raises(EventValidationError) as err:
        read_events_file(parts)
    text = str(err.value)
    assert "part-00003.parquet: row 1: duplicate event" in text and "3 duplicate(s)" in text
    (tmp_path / "empty").mkdir()
    with pytest.raises(EventValidationError, match=r"holds no \.parquet files"):
        read_events_file(tmp_path / "empty")


def read_events_file_whole(events: pd.DataFrame, tmp_path: Path) -> pd.DataFrame:
    events.to_parquet(tmp_path / "whole.parquet", index=False)
    return read_events_file(tmp_path / "whole.parquet")


def test_data_stage_writes_shards_on_dask(tmp_path: Path) -> None:
    from pipelines.data import run

    client = shared_client()
    params = {
        "engine": "dask",
        "dask": {"scheduler_address": client.scheduler.address, "learners_per_shard": 30},
        "data": {"source": "simulator", "path": None, "simulator": {**TINY_SIM}},
        "features": {"pass_mark": 0.6},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = tmp_path / "events"
    metrics = run(tmp_path / "params.yaml", out, tmp_path / "data.json")
    parts = sorted((out / "events.parquet").glob("*.parquet"))
    assert [p.name for p in parts] == [f"part-{i:05d}.parquet" for i in range(3)]  # 80 / 30
    oracle = sorted((out / "oracle.parquet").glob("*.parquet"))
    assert [p.name for p in oracle] == [p.name for p in parts]
    events = read_events_file(out / "events.parquet")  # validates every part
    assert metrics["n_events"] == len(events) and metrics["n_learners"] == 80
    assert metrics["n_shards"] == 3
    # the same shards as simulate_shard in this process (worker placement does not matter)
    ev1, _ = simulate_shard(
        SimulatorConfig(**TINY_SIM), pass_mark=0.6, shard=1, learners_per_shard=30
    )
    pd.testing.assert_frame_equal(pd.read_parquet(parts[1]), ev1)
