"""engine: dask gives the local engine's features: same plan, peer table and rows bit for bit.

On a real 2-worker LocalCluster (processes) with a tiny simulated event table, read both as one
Parquet file (row groups = partitions) and as a directory of shards.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from core.kernel import feature_names
from data.simulator import simulate
from features.config import FeatureConfig
from features.dask_build import (
    build_examples_dask,
    by_learner,
    kth_smallest,
    learner_layout,
    order_statistics,
    plan_split_dask,
    quantile_index,
    split_plan_and_users,
)
from features.dask_io import event_pieces, events_frame, iter_partitions, read_piece, write_splits
from features.dask_peer import compute_peer_table_dask, exact_partial_sums, in_set, pairwise_total
from features.split import plan_split
from pipelines.features import make_features
from tests.fixtures.cluster import shared_client
from tests.fixtures.events import sim_config

SIM = sim_config(seed=5, n_learners=60, n_topics=4, days=30, sessions_per_week=4.0)
CFG = FeatureConfig()
SORT_KEYS = ["user_id", "timestamp", "topic_id"]


@pytest.fixture(scope="module")
def client() -> Any:
    return shared_client()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    events, oracle = simulate(SIM, pass_mark=CFG.pass_mark)
    root = tmp_path_factory.mktemp("events")
    # one file with several row groups, and a directory of 3 shards (rows cut anywhere)
    events.to_parquet(root / "events.parquet", index=False, row_group_size=1500)
    oracle.to_parquet(root / "oracle.parquet", index=False, row_group_size=1500)
    (root / "ev").mkdir()
    (root / "or").mkdir()
    for i, idx in enumerate(np.array_split(np.arange(len(events)), 3)):
        events.iloc[idx].to_parquet(root / "ev" / f"part-{i:05d}.parquet", index=False)
        oracle.iloc[idx].to_parquet(root / "or" / f"part-{i:05d}.parquet", index=False)
    return {"events": events, "oracle": oracle, "root": root}


def _dask_features(
    client: Any, events_path: Path, oracle_path: Path, out: Path, events: Any = None
) -> tuple[dict[str, pd.DataFrame], dict[str, Any], Any]:
    frame = events if events is not None else events_frame(event_pieces(events_path, oracle_path))
    plan = plan_split_dask(frame, CFG)
    peer = compute_peer_table_dask(
        frame, prior_weight=CFG.peer_prior_weight, before=plan.val_start, exclude_users=plan.unseen
    )
    examples = build_examples_dask(frame, CFG, peer, plan, learners_per_partition=17)
    out.mkdir(exist_ok=True)
    write_splits(iter_partitions(client, examples, 2), out, plan.unseen)
    return {s: pd.read_parquet(out / f"{s}.parquet") for s in ("train", "val", "test")}, peer, plan


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(SORT_KEYS, kind="stable").reset_index(drop=True)


def test_exact_sums_do_not_depend_on_partitioning() -> None:
    rng = np.random.default_rng(0)
    values = rng.random(10_000) ** 3
    keys = np.array(["a", "b"], dtype=object)[rng.integers(0, 2, values.size)]
    whole = exact_partial_sums(keys, values)
    halves = [exact_partial_sums(keys[s], values[s]) for s in (slice(0, 3333), slice(3333, None))]
    for k in ("a", "b"):
        assert whole[k][0] == halves[0][k][0] + halves[1][k][0]
        assert whole[k][1] == halves[0][k][1] + halves[1][k][1]
        assert whole[k][0] / (1 << 1127) == math.fsum(values[keys == k])  # correctly rounded


@pytest.mark.parametrize("cuts", [[0, 1, 130, 131, 5000], [0, 7, 7, 2000, 9999], [0, 10_000]])
def test_pairwise_total_is_series_sum_bit_for_bit(client: Any, cuts: list[int]) -> None:
    """numpy's pairwise sum over the whole column, rebuilt from partitions cut anywhere."""
    import dask

    rng = np.random.default_rng(len(cuts))
    frame = pd.DataFrame(
        {
            "user_id": np.where(rng.random(10_000) < 0.1, "held", "u"),
            "topic_id": "t",
            "timestamp": rng.integers(0, 100, 10_000),
            "score": rng.random(10_000) * 10.0 ** rng.integers(-6, 1, 10_000),
        }
    )
    bounds = [*cuts, len(frame)] if cuts[-1] < len(frame) else cuts
    parts = [dask.delayed(frame.iloc[a:b]) for a, b in itertools.pairwise(bounds)]
    keep = (frame["timestamp"] < 70) & (frame["user_id"] != "held")
    counts = [int(keep.iloc[a:b].sum()) for a, b in itertools.pairwise(bounds)]
    got = pairwise_total(parts, counts, 70, frozenset({"held"}))
    want = frame.loc[keep, "score"].sum()
    assert got == want
    # another summation order gives another float here: the test can fail
    assert got != float(np.cumsum(frame.loc[keep, "score"].to_numpy())[-1])


def test_kth_smallest_equals_numpy_quantile_higher(client: Any) -> None:
    import dask.dataframe as dd

    rng = np.random.default_rng(1)
    ts = rng.integers(1_700_000_000, 1_700_000_000 + 40 * 86_400, 5_001)
    s = dd.from_pandas(pd.Series(ts), npartitions=4)
    qs = (0.0, 0.3, 0.7, 0.85, 1.0)
    got = order_statistics(s, [quantile_index(ts.size, q) for q in qs])
    assert got == [int(np.quantile(ts, q, method="higher")) for q in qs]
    assert kth_smallest(s, 17) == int(np.sort(ts)[17])


@pytest.mark.parametrize("layout", ["file", "directory"])
def test_dask_features_equal_local_bit_for_bit(
    client: Any, data: dict[str, Any], tmp_path: Path, layout: str
) -> None:
    root = data["root"]
    paths = (
        (root / "events.parquet", root / "oracle.parquet")
        if layout == "file"
        else (root / "ev", root / "or")
    )
    assert len(event_pieces(*paths)) >= 3  # really partitioned
    local, local_spec, local_plan = make_features(data["events"], data["oracle"], CFG)
    splits, peer, plan = _dask_features(client, *paths, tmp_path / "out")
    assert plan == local_plan
    assert peer == local_spec["peer"]  # per-topic sums, counts and the global mean, exactly
    names = feature_names(CFG.rolling_windows)
    for s in ("train", "val", "test"):
        a, b = _sorted(splits[s]), _sorted(local[s])
        assert len(a) == len(b) > 0
        assert list(a.columns) == list(b.columns)
        pd.testing.assert_frame_equal(a.drop(columns=names), b.drop(columns=names))
        np.testing.assert_array_equal(a[names].to_numpy(), b[names].to_numpy())
        assert a[names].dtypes.eq(np.float32).all()


def test_no_leakage_on_both_engines(client: Any, data: dict[str, Any], tmp_path: Path) -> None:
    """Changing events at or after t moves no feature of an example at or before t, and
    changing val/test-period events moves no peer statistic, with either engine."""
    import dask.dataframe as dd

    events, oracle = data["events"], data["oracle"]
    plan = plan_split(events, CFG.split, CFG.assessment_activities)
    t = plan.val_start
    changed = events.copy()
    late = changed["timestamp"].to_numpy() >= t
    assert late.any() and (~late).any()
    changed.loc[late, "score"] = 1.0 - changed.loc[late, "score"]
    changed.loc[late, "hints_used"] = 5
    names = feature_names(CFG.rolling_windows)

    def as_frame(ev: pd.DataFrame) -> Any:
        frame = ev.assign(p_fail_true=oracle["p_fail_true"].to_numpy(), _gid=np.arange(len(ev)))
        return dd.from_pandas(frame, npartitions=3, sort=False)

    # local on both tables; dask on the changed one (dask == local on the original table is
    # test_dask_features_equal_local_bit_for_bit)
    got = []
    for engine, ev in (("local", events), ("local", changed), ("dask", changed)):
        if engine == "local":
            parts, spec, _ = make_features(ev, oracle, CFG)
            peer = spec["peer"]
        else:
            parts, peer, _ = _dask_features(client, Path(), Path(), tmp_path, events=as_frame(ev))
        got.append((_sorted(pd.concat([parts[s] for s in ("train", "val", "test")])), peer))
    before, peer_before = got[0]
    keep = before["timestamp"].to_numpy() <= t
    assert keep.sum() > 10 and (~keep).sum() > 10
    for after, peer_after in got[1:]:
        assert peer_after["topics"] == peer_before["topics"]  # training period only
        np.testing.assert_array_equal(
            after.loc[keep, names].to_numpy(), before.loc[keep, names].to_numpy()
        )
        # the change is visible later (the test can fail)
        assert not np.array_equal(
            after.loc[~keep, names].to_numpy(), before.loc[~keep, names].to_numpy()
        )


def test_stage_engines_write_the_same_metrics_and_spec(
    client: Any, data: dict[str, Any], tmp_path: Path
) -> None:
    """`pipelines.features.run` on its two engines, on the same files."""
    import json

    from features.engine import DaskConfig
    from pipelines.engines import DaskEngine
    from pipelines.features import run

    root = data["root"]
    files = {"events_file": root / "events.parquet", "oracle_file": root / "oracle.parquet"}
    m_local = run(CFG, **files, out_dir=tmp_path / "l", metrics_file=tmp_path / "l.json")
    m_dask = run(
        CFG,
        engine=DaskEngine(
            DaskConfig(scheduler_address=client.scheduler.address, learners_per_partition=20)
        ),
        **files,
        out_dir=tmp_path / "d",
        metrics_file=tmp_path / "d.json",
    )
    assert m_local == m_dask
    assert (tmp_path / "l.json").read_bytes() == (tmp_path / "d.json").read_bytes()
    spec_l = json.loads((tmp_path / "l" / "feature_spec.json").read_text())
    spec_d = json.loads((tmp_path / "d" / "feature_spec.json").read_text())
    assert spec_l == spec_d
    for s in ("train", "val", "test"):
        a = _sorted(pd.read_parquet(tmp_path / "l" / f"{s}.parquet"))
        b = _sorted(pd.read_parquet(tmp_path / "d" / f"{s}.parquet"))
        pd.testing.assert_frame_equal(a, b)


@pytest.fixture(scope="module")
def learner_shards(data: dict[str, Any]) -> dict[str, Any]:
    """The events as 3 learner shards (each learner's history in one file, as the simulator's
    shard mode writes them); the reference is the local engine on their concatenation."""
    events, oracle, root = data["events"], data["oracle"], data["root"]
    users = np.array(sorted(events["user_id"].unique()))
    (root / "ls_ev").mkdir()
    (root / "ls_or").mkdir()
    ev_parts, or_parts = [], []
    for i, group in enumerate(np.array_split(users, 3)):
        rows = events["user_id"].isin(group).to_numpy()
        ev, orc = events.loc[rows], oracle.loc[rows]
        ev.to_parquet(root / "ls_ev" / f"part-{i:05d}.parquet", index=False)
        orc.to_parquet(root / "ls_or" / f"part-{i:05d}.parquet", index=False)
        ev_parts.append(ev)
        or_parts.append(orc)
    return {
        "paths": (root / "ls_ev", root / "ls_or"),
        "events": pd.concat(ev_parts, ignore_index=True),
        "oracle": pd.concat(or_parts, ignore_index=True),
    }


def test_learner_shards_skip_the_shuffle_and_equal_local(
    client: Any, learner_shards: dict[str, Any], tmp_path: Path
) -> None:
    """A learner-partitioned directory is used as it is (no shuffle), same rows bit for bit."""
    frame = events_frame(event_pieces(*learner_shards["paths"]))
    plan, n_users = split_plan_and_users(frame, CFG)
    layout = learner_layout(frame)  # remembered from the plan pass
    assert layout.disjoint and layout.n_users == n_users == 60
    assert layout.per_partition == (20, 20, 20)
    assert by_learner(frame, 17) is frame  # 20 <= 1.5 x 17: no shuffle
    local, local_spec, local_plan = make_features(
        learner_shards["events"], learner_shards["oracle"], CFG
    )
    splits, peer, plan = _dask_features(client, Path(), Path(), tmp_path, events=frame)
    assert plan == local_plan
    assert peer == local_spec["peer"]
    names = feature_names(CFG.rolling_windows)
    for s in ("train", "val", "test"):
        a, b = _sorted(splits[s]), _sorted(local[s])
        assert len(a) == len(b) > 0
        pd.testing.assert_frame_equal(a.drop(columns=names), b.drop(columns=names))
        np.testing.assert_array_equal(a[names].to_numpy(), b[names].to_numpy())


@pytest.mark.parametrize(
    ("layout", "per_partition", "shuffled_parts"),
    [("rows", 17, 4), ("learners", 5, 12)],  # learners split across files; shards too big
)
def test_other_layouts_still_shuffle(
    client: Any,
    data: dict[str, Any],
    learner_shards: dict[str, Any],
    layout: str,
    per_partition: int,
    shuffled_parts: int,
) -> None:
    paths = (data["root"] / "ev", data["root"] / "or") if layout == "rows" else None
    frame = events_frame(event_pieces(*(paths or learner_shards["paths"])))
    found = learner_layout(frame)  # its own pass: no plan ran on this frame
    assert found.disjoint is (layout == "learners")
    out = by_learner(frame, per_partition)
    assert out is not frame and out.npartitions == shuffled_parts
    # whole histories per partition after the shuffle
    users = [set(p["user_id"]) for p in dask_partitions(out)]
    assert sum(len(u) for u in users) == len(set().union(*users)) == 60


def dask_partitions(frame: Any) -> list[pd.DataFrame]:
    import dask

    return list(dask.compute(*frame.to_delayed()))


def test_passes_read_only_the_columns_they_need(data: dict[str, Any]) -> None:
    """The column projection reaches the read: the oracle only when p_fail_true is asked."""
    root = data["root"]
    pieces = event_pieces(root / "ev", root / "or")
    got = read_piece(pieces[1], ["user_id", "_gid"])
    assert list(got.columns) == ["user_id", "_gid"]
    assert got["_gid"].tolist() == list(range(pieces[1].offset, pieces[1].offset + len(got)))
    only_gid = read_piece(pieces[1], ["_gid"])
    assert len(only_gid) == pieces[1].n_rows
    whole = read_piece(pieces[1])
    assert list(whole.columns)[-2:] == ["p_fail_true", "_gid"]
    frame = events_frame(pieces)
    picked = frame[["timestamp", "p_fail_true"]].compute()
    assert np.array_equal(picked["p_fail_true"].to_numpy(), data["oracle"]["p_fail_true"])


def _log_read(part: pd.DataFrame, log: str) -> pd.DataFrame:
    with open(log, "a") as f:  # the workers share this disk
        f.write(f"{len(part)}\n")
    return part


def test_a_shuffled_frame_is_read_once_when_streamed(client: Any, tmp_path: Path) -> None:
    """Streaming a shuffle's partitions in small windows must not re-run the shuffle."""
    import dask.dataframe as dd

    n = 20_000
    frame = pd.DataFrame({"user_id": [f"u{i % 97}" for i in range(n)], "x": np.arange(n)})
    log = str(tmp_path / "reads.log")
    source = dd.from_pandas(frame, npartitions=6, sort=False)
    logged = source.map_partitions(_log_read, log, meta=source._meta)
    out = logged.shuffle(on="user_id", npartitions=7)
    parts = list(iter_partitions(client, out, 2))
    assert sum(len(p) for p in parts) == n
    assert all(p["user_id"].nunique() == len(set(p["user_id"])) for p in parts)
    reads = Path(log).read_text().split()
    # each input partition once (windows of 2 used to re-run the shuffle)
    assert len(reads) == 6, f"{len(reads)} reads of 6 input partitions"


def test_in_set_is_isin() -> None:
    users = pd.Series(["u3", "u1", "u3", "u7", "u2", "u1"], dtype="str")
    for members in (frozenset(), frozenset({"u1"}), frozenset({"u3", "u7", "u9"})):
        want = users.isin(list(members)).to_numpy()
        np.testing.assert_array_equal(in_set(users, members), want)
    assert in_set(users, frozenset({"u3", "u7"})).tolist() == [1, 0, 1, 1, 0, 0]
