"""`eval-kt` on a tiny inline KT file, the out-of-fold statistics, and the real split (realdata)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from features.config import FeatureConfig
from pipelines.common import build_config
from tests.fixtures.events import SHARED_DATA
from tests.fixtures.weakness import FAST_PARAMS
from training.kt_eval import KTSettings, eval_kt, learner_folds, previous_topic, smoothed_rate
from training.weakness import WeaknessConfig

DATA = SHARED_DATA / "learner_events" / "assistments09"


def write_tsv(path: Path, n_users: int, seed: int, first_user: int) -> Path:
    """KT rows (user item timestamp correct skill) with learners that improve with practice."""
    rng = np.random.default_rng(seed)
    lines = ["user_id\titem_id\ttimestamp\tcorrect\tskill_id"]
    for u in range(first_user, first_user + n_users):
        ability = rng.normal()
        for k in range(30):
            skill = int(rng.integers(0, 4))
            item = skill * 10 + int(rng.integers(0, 5))
            p = 1 / (1 + np.exp(-(ability + 0.1 * k - 0.3 * skill)))
            lines.append(f"{u}\t{item}\t0\t{int(rng.uniform() < p)}\t{skill}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_folds_are_per_learner() -> None:
    users = np.array(["a", "b", "a", "c", "b", "d"])
    folds = learner_folds(users, 2, seed=0)
    for u in np.unique(users):
        assert len(set(folds[users == u])) == 1
    assert set(folds) <= {0, 1}


def test_smoothed_rate_never_sees_query_rows() -> None:
    rate, count = smoothed_rate(
        np.array(["i1", "i1", "i2"]), np.array([1.0, 0.0, 1.0]), np.array(["i1", "i3"]), 0.5, 2.0
    )
    np.testing.assert_allclose(rate, [(1 + 2 * 0.5) / (2 + 2), 0.5])  # unseen item -> prior
    np.testing.assert_array_equal(count, [2, 0])


def test_previous_topic_uses_only_the_learners_own_past() -> None:
    import pandas as pd

    ex = pd.DataFrame(
        {
            "user_id": ["a", "b", "a", "a", "b"],
            "topic_id": ["t1", "t9", "t2", "t3", "t8"],
            "timestamp": [30, 10, 10, 20, 20],
        }
    )
    # a: t2 (10) -> t3 (20) -> t1 (30); b: t9 (10) -> t8 (20)
    assert previous_topic(ex).tolist() == ["t3", "", "", "t2", "t9"]


@pytest.mark.parametrize("item_difficulty", [False, True])
def test_eval_kt_tiny(tmp_path: Path, item_difficulty: bool) -> None:
    train = write_tsv(tmp_path / "train.tsv", 40, 0, 0)
    test = write_tsv(tmp_path / "test.tsv", 15, 1, 1000)
    cfg = build_config(WeaknessConfig, FAST_PARAMS, "train_weakness")
    res = eval_kt(
        train,
        test,
        cfg=cfg,
        feat_cfg=FeatureConfig(),
        item_difficulty=item_difficulty,
        settings=KTSettings(n_folds=3),
    )
    assert {"auc", "logloss", "n_train", "n_test"} <= set(res)
    assert res["n_train"] == 40 * 30 and res["n_test"] == 15 * 30
    assert 0.5 < res["auc"] <= 1.0
    assert ("item_peer_success" in res["features"]) is item_difficulty
    json.dumps(res)  # JSON-able


def test_eval_kt_rejects_shared_learners(tmp_path: Path) -> None:
    train = write_tsv(tmp_path / "train.tsv", 10, 0, 0)
    test = write_tsv(tmp_path / "test.tsv", 5, 1, 5)  # users 5..9 also in train
    cfg = build_config(WeaknessConfig, FAST_PARAMS, "train_weakness")
    with pytest.raises(ValueError, match="also appear in"):
        eval_kt(train, test, cfg=cfg, feat_cfg=FeatureConfig())


def test_cli_prints_and_writes_json(tmp_path: Path) -> None:
    """The command with the repo's default params (early stopping keeps it short on tiny data)."""
    from typer.testing import CliRunner

    from pipelines import cli

    train = write_tsv(tmp_path / "train.tsv", 30, 0, 0)
    test = write_tsv(tmp_path / "test.tsv", 10, 1, 1000)
    out = tmp_path / "res.json"
    result = CliRunner().invoke(
        cli.app, ["eval-kt", "--train", str(train), "--test", str(test), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output.strip().splitlines()[-1])
    assert printed["n_test"] == 300
    assert json.loads(out.read_text())["auc"] == printed["auc"]
    bad = CliRunner().invoke(cli.app, ["eval-kt", "--train", "nope.tsv", "--test", str(test)])
    assert bad.exit_code != 0


@pytest.mark.realdata
@pytest.mark.slow
@pytest.mark.skipif(not (DATA / "preprocessed_data_train.csv").is_file(), reason="no shared data")
def test_real_assistments_subsample(tmp_path: Path) -> None:
    """The default path on the first 300 train / 100 test learners of assistments09."""
    import pandas as pd

    tr = pd.read_csv(DATA / "preprocessed_data_train.csv", sep="\t")
    te = pd.read_csv(DATA / "preprocessed_data_test.csv", sep="\t")
    tr = tr[tr["user_id"].isin(tr["user_id"].unique()[:300])]
    te = te[te["user_id"].isin(te["user_id"].unique()[:100])]
    tr.to_csv(tmp_path / "train.tsv", sep="\t", index=False)
    te.to_csv(tmp_path / "test.tsv", sep="\t", index=False)
    cfg = build_config(WeaknessConfig, {**FAST_PARAMS, "num_threads": 2}, "train_weakness")
    res = eval_kt(tmp_path / "train.tsv", tmp_path / "test.tsv", cfg=cfg, feat_cfg=FeatureConfig())
    assert res["n_test"] == len(te)
    assert res["auc"] > 0.70


def test_eval_kt_reports_summary_views(tmp_path: Path) -> None:
    """With views configured, every view the KT data can express is scored on the test answers."""
    train = write_tsv(tmp_path / "train.tsv", 40, 0, 0)
    test = write_tsv(tmp_path / "test.tsv", 15, 1, 1000)
    names = ["full", "recent_scores", "averages_counts", "averages", "averages_flat"]
    cfg = build_config(
        WeaknessConfig,
        {**FAST_PARAMS, "views": {**FAST_PARAMS["views"], "names": [*names, "averages_time"]}},
        "train_weakness",
    )
    res = eval_kt(train, test, cfg=cfg, feat_cfg=FeatureConfig())
    # KT answers carry no time spent: the _time views are left out, not faked
    assert list(res["views"]) == names
    for view, m in res["views"].items():
        assert 0.0 <= m["ece"] <= 1.0 and m["logloss"] > 0, view
        assert m["auc"] > 0.5, view
