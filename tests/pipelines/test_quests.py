"""Stage `quests`: a bank per (topic, grade), each learner's weakest topics drawn from it.

Scores are written inline in the score stage's layout (whole learners per part); problems come
from the rule-based templates (a real source whose problems verify). The Dask run uses the shared
2-worker LocalCluster; both engines must write the same bank and quests.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from features.engine import DaskConfig
from pipelines.common import ConfigError, build_config
from pipelines.engines import DaskEngine, Engine, LocalEngine
from pipelines.quests import run
from serving.topics import SUPPORTED_TOPICS, equation_fits_topic
from tests.fixtures.cluster import shared_client
from tests.fixtures.practice import template_source
from training.quests import BANK_COLUMNS, QUEST_COLUMNS, QuestsConfig

TOPICS = ["addition", "fractions", "money", "speed", "chess"]  # chess: no generator topic
CFG = QuestsConfig(topics_per_learner=2, problems_per_topic=2, bank_size=4, grades=(3, 4))


@pytest.fixture(scope="module")
def scores_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 learners x 5 topics in 3 parts, as the score stage writes them."""
    rng = np.random.default_rng(0)
    users = [f"u{i:03d}" for i in range(40)]
    p = rng.uniform(0, 1, (len(users), len(TOPICS))).round(3)
    p[:5, :] = 0.5  # ties: broken by topic id
    frame = pd.DataFrame(
        {
            "user_id": np.repeat(users, len(TOPICS)),
            "topic_id": TOPICS * len(users),
            "as_of": 1_767_225_600,
            "weakness_probability": p.reshape(-1),
            "action_level": "review",
            "model_version": "weakness@test",
        }
    )
    out = tmp_path_factory.mktemp("scores")
    for i, block in enumerate(np.array_split(np.array(users), 3)):
        frame[frame["user_id"].isin(block)].to_parquet(out / f"part-{i:05d}.parquet", index=False)
    return out


def _run(
    scores_dir: Path,
    out: Path,
    engine: str,
    cfg: QuestsConfig = CFG,
    *,
    source: Any = template_source,
    topics: Sequence[str] = SUPPORTED_TOPICS,
) -> Any:
    """Run the stage into ``out``; return its metrics, the quests of all parts and the bank."""
    chosen: Engine = LocalEngine()
    if engine == "dask":
        chosen = DaskEngine(DaskConfig(scheduler_address=shared_client().scheduler.address))
    metrics = run(
        cfg,
        source=source,
        generator_topics=topics,
        engine=chosen,
        scores_dir=scores_dir,
        out_dir=out / "quests",
        metrics_file=out / "quests.json",
        plot_file=out / "topics.csv",
    )
    quests = pd.concat(
        [pd.read_parquet(p) for p in sorted((out / "quests").glob("part-*.parquet"))],
        ignore_index=True,
    )
    bank = pd.read_parquet(out / "quests" / "bank.parquet")
    return metrics, quests, bank


TIMINGS = {"engine", "bank_seconds", "bank_problems_per_s", "draw_seconds", "draw_learners_per_s"}


def test_engines_write_the_same_bank_and_quests(scores_dir: Path, tmp_path: Path) -> None:
    m_local, q_local, b_local = _run(scores_dir, tmp_path / "local", "local")
    m_dask, q_dask, b_dask = _run(scores_dir, tmp_path / "dask", "dask")
    pd.testing.assert_frame_equal(b_local, b_dask)
    pd.testing.assert_frame_equal(q_local, q_dask)
    assert {k: v for k, v in m_local.items() if k not in TIMINGS} == {
        k: v for k, v in m_dask.items() if k not in TIMINGS
    }
    assert m_dask["engine"] == "dask" and m_local["draw_learners_per_s"] > 0


def test_each_learner_gets_their_weakest_banked_topics(scores_dir: Path, tmp_path: Path) -> None:
    metrics, quests, bank = _run(scores_dir, tmp_path, "local")
    # the written tables hold the declared columns, in order, with the declared types
    assert [(c, str(t)) for c, t in quests.dtypes.items()] == list(QUEST_COLUMNS.items())
    assert [(c, str(t)) for c, t in bank.dtypes.items()] == list(BANK_COLUMNS.items())
    assert metrics["topics_without_generator"] == ["chess"]
    assert set(bank["topic_id"]) == set(TOPICS) - {"chess"} and set(bank["grade"]) == {3, 4}
    for _, b in bank.iterrows():
        assert equation_fits_topic(b["topic_id"], b["equation"], b["text"])
    scores = pd.concat([pd.read_parquet(p) for p in sorted(scores_dir.glob("*.parquet"))])
    banked = scores[scores["topic_id"] != "chess"]
    for user, got in quests.groupby("user_id"):
        mine = banked[banked["user_id"] == user].sort_values(
            ["weakness_probability", "topic_id"], ascending=[False, True], kind="stable"
        )
        want = list(mine["topic_id"][: CFG.topics_per_learner])
        topics = list(got.drop_duplicates("topic_id").sort_values("rank")["topic_id"])
        assert topics == want, user
        for topic, rows in got.groupby("topic_id"):
            assert rows["problem_id"].is_unique and len(rows) == CFG.problems_per_topic
            picked = bank.set_index("problem_id").loc[rows["problem_id"]]
            assert (picked["topic_id"] == topic).all() and (picked["grade"] == 4).all()
    assert metrics["n_learners"] == 40 and metrics["n_rows"] == len(quests) == 40 * 2 * 2
    plot = pd.read_csv(tmp_path / "topics.csv")
    assert plot["learners"].sum() == 40 * CFG.topics_per_learner
    assert (
        dict(zip(plot["topic_id"], plot["learners"], strict=True))
        == (metrics["learners_per_topic"])
    )


def test_another_seed_draws_other_problems(scores_dir: Path, tmp_path: Path) -> None:
    _, q0, _ = _run(scores_dir, tmp_path / "a", "local")
    _, q1, _ = _run(scores_dir, tmp_path / "b", "local", dataclasses.replace(CFG, seed=9))
    assert list(q0["topic_id"]) == list(q1["topic_id"])  # the same weakest topics
    assert list(q0["problem_id"]) != list(q1["problem_id"])


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            {"grades": [3], "default_grade": 4},
            "quests.default_grade: must be one of quests.grades [3], got 4",
        ),
        (
            {"bank_size": 2, "problems_per_topic": 3},
            "quests.problems_per_topic: must be <= quests.bank_size (2), got 3",
        ),
        ({"grades": [0]}, "quests.grades[0]: must be an integer in [1, 8], got 0"),
        (
            {"keywords": ["a,b"]},
            "quests.keywords[0]: must be a non-blank word without ',', ':', '<' or '>', got 'a,b'",
        ),
    ],
)
def test_config_errors_name_the_field(values: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_config(QuestsConfig, values, "quests")
    assert str(err.value) == expected


def test_a_barely_trained_generator_leaves_short_banks_not_a_crash(
    scores_dir: Path, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """The random tiny T5 of the serving tests (like the CI smoke run's one-epoch model) rarely
    verifies a problem: the stage still writes its outputs and names the short banks."""
    from pipelines.quests import open_source
    from tests.fixtures.store import artifact_store

    model_dir = artifact_store(tmp_path_factory.mktemp("store")) / "generator" / "1"
    source, topics = open_source(model_dir)
    cfg = QuestsConfig(topics_per_learner=2, problems_per_topic=1, bank_size=2, tries_per_problem=1)
    metrics, quests, bank = _run(scores_dir, tmp_path, "local", cfg, source=source, topics=topics)
    sizes = {t: g["4"] for t, g in metrics["bank_per_topic"].items()}
    assert metrics["n_bank_problems"] == len(bank) == sum(sizes.values())
    assert metrics["bank_short_topics"] == sorted(t for t, n in sizes.items() if n < 2)
    assert metrics["n_rows"] == len(quests)
    assert set(quests["problem_id"]) <= set(bank["problem_id"])
