"""The simulator: determinism, schema, exact oracle, learning and forgetting."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom

from core.schema import EVENT_COLUMNS, ORACLE_COLUMNS
from data.simulator import SimulatorConfig, fail_threshold, simulate
from data.validate import pandas_dtypes, validate_events
from pipelines.common import ConfigError, build_config
from tests.fixtures.events import TINY_SIM

PASS = 0.6


@pytest.fixture(scope="module")
def sim() -> tuple[pd.DataFrame, pd.DataFrame]:
    """A larger-than-tiny run reused by the statistical tests (~20k events, < 1 s)."""
    cfg = SimulatorConfig(**{**TINY_SIM, "n_learners": 300, "days": 60})
    return simulate(cfg, pass_mark=PASS)


def test_same_seed_same_frames(tiny_cfg: SimulatorConfig) -> None:
    ev1, or1 = simulate(tiny_cfg, pass_mark=PASS)
    ev2, or2 = simulate(tiny_cfg, pass_mark=PASS)
    pd.testing.assert_frame_equal(ev1, ev2)
    pd.testing.assert_frame_equal(or1, or2)


def test_other_seed_other_frames(tiny_cfg: SimulatorConfig) -> None:
    ev1, _ = simulate(tiny_cfg, pass_mark=PASS)
    ev2, _ = simulate(dataclasses.replace(tiny_cfg, seed=tiny_cfg.seed + 1), pass_mark=PASS)
    assert len(ev1) != len(ev2) or not ev1.equals(ev2)


def test_schema_dtypes_order_and_validity(tiny_cfg: SimulatorConfig) -> None:
    events, oracle = simulate(tiny_cfg, pass_mark=PASS)
    assert list(events.columns) == list(EVENT_COLUMNS)
    assert {c: str(t) for c, t in events.dtypes.items()} == pandas_dtypes()
    assert list(oracle.columns) == list(ORACLE_COLUMNS)
    assert len(oracle) == len(events) > 1000
    # Sorted by (timestamp, user_id) and already valid.
    key = list(zip(events["timestamp"], events["user_id"], strict=True))
    assert key == sorted(key)
    pd.testing.assert_frame_equal(validate_events(events, source="sim"), events)
    assert set(events["activity"]) == {"quiz", "minigame"}
    # A learner's events strictly increase in time (no two share a timestamp).
    diffs = events.groupby("user_id")["timestamp"].diff().dropna()
    assert (diffs > 0).all()
    start = pd.Timestamp(tiny_cfg.start).timestamp()
    assert events["timestamp"].min() >= start
    assert events["timestamp"].max() <= start + tiny_cfg.days * 86_400 + 86_400


def test_oracle_is_exact_and_calibrated(sim: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    events, oracle = sim
    p_fail = oracle["p_fail_true"].to_numpy()
    assert np.all((p_fail >= 0) & (p_fail <= 1))
    assert np.all((oracle["mastery_true"] > 0) & (oracle["mastery_true"] < 1))
    quiz = (events["activity"] == "quiz").to_numpy()
    # Quizzes: p_fail is the binomial CDF of the number of correct answers below the mark.
    k = fail_threshold(5, PASS)
    expected = binom.cdf(k - 1, 5, oracle["mastery_true"].to_numpy()[quiz])
    np.testing.assert_allclose(p_fail[quiz], expected, rtol=1e-9, atol=1e-12)
    # Calibrated: the mean predicted fail probability matches the observed rate.
    observed = (events["score"].to_numpy() < PASS)[quiz].mean()
    assert 0.2 < observed < 0.5
    assert abs(p_fail[quiz].mean() - observed) < 0.02
    minigame = ~quiz
    observed_mg = (events["score"].to_numpy() < PASS)[minigame].mean()
    assert abs(p_fail[minigame].mean() - observed_mg) < 0.02
    # Quiz scores are fractions of 5 questions; minigame scores are continuous.
    assert set(np.round(events.loc[quiz, "score"] * 5, 9)) <= {0, 1, 2, 3, 4, 5}


def test_fail_threshold_counts_scores_below_the_mark() -> None:
    assert fail_threshold(5, 0.6) == 3  # 0, 1, 2 correct of 5 fail
    assert fail_threshold(10, 0.55) == 6
    assert fail_threshold(4, 1.0) == 4


def test_mastery_grows_with_practice(sim: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    events, oracle = sim
    nth = events.groupby(["user_id", "topic_id"]).cumcount()
    mastery = oracle["mastery_true"]
    first = mastery[nth == 0].mean()
    practised = mastery[nth >= 15].mean()
    assert practised > first + 0.05


def test_forgetting_long_gaps_lower_mastery(sim: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    events, oracle = sim
    frame = events[["user_id", "topic_id", "timestamp"]].assign(m=oracle["mastery_true"])
    g = frame.groupby(["user_id", "topic_id"])
    gap = g["timestamp"].diff()
    change = g["m"].diff()
    within_session = change[gap < 3_600].mean()
    after_long_gap = change[gap > 20 * 86_400].mean()
    assert within_session > 0
    assert after_long_gap < 0


def test_weaker_learners_spend_more_time_and_hints(
    sim: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    events, oracle = sim
    mastery = oracle["mastery_true"]
    assert np.corrcoef(mastery, events["hints_used"])[0, 1] < -0.1
    assert np.corrcoef(mastery, events["time_spent_s"])[0, 1] < -0.1
    assert events["attempt"].max() > 1
    assert 0 < events["is_revisit"].mean() < 0.5


def test_config_range_errors_name_the_field() -> None:
    def message(values: dict) -> str:
        with pytest.raises(ConfigError) as err:
            build_config(SimulatorConfig, {**TINY_SIM, **values}, "data.simulator")
        assert "\n" not in str(err.value)
        return str(err.value)

    assert message({"n_learners": 0}) == (
        "data.simulator.n_learners: must be an integer in [1, 10000000], got 0"
    )
    assert message({"quiz_share": 1.5}) == "data.simulator.quiz_share: must be in [0, 1], got 1.5"
    assert message({"start": "not a date"}).startswith(
        "data.simulator.start: must be an ISO-8601 instant"
    )
    assert message({"n_learner": 3}).startswith("data.simulator.n_learner: unknown key; allowed:")


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"n_topics": "5"}, "data.simulator.n_topics: must be an integer in [1, 10000], got '5'"),
        ({"days": 2.0}, "data.simulator.days: must be an integer in [1, 3650], got 2.0"),
        ({"quiz_share": True}, "data.simulator.quiz_share: must be a number in [0, 1], got True"),
        ({"start": 20260105}, "data.simulator.start: must be a string, got 20260105"),
        ({"sessions_per_week": 0}, "data.simulator.sessions_per_week: must be in (0, 70], got 0"),
    ],
)
def test_simulator_errors_name_key_range_and_value(values: dict, expected: str) -> None:
    """Key, range and value, not "data.simulator: {...} matches none of SimulatorConfig | None"."""
    from data.sources import DataConfig

    section = {"source": "simulator", "path": None, "pass_mark": 0.6}
    with pytest.raises(ConfigError) as err:
        build_config(DataConfig, {**section, "simulator": {**TINY_SIM, **values}}, "data")
    assert str(err.value) == expected


def test_pass_mark_out_of_range(tiny_cfg: SimulatorConfig) -> None:
    with pytest.raises(ConfigError, match="pass_mark"):
        simulate(tiny_cfg, pass_mark=1.5)


NAMED = {"easy": -1.5, "middle": 0.3, "hard": 2.0}


def test_named_topics_are_the_event_topic_ids_each_as_hard_as_declared() -> None:
    cfg = SimulatorConfig(**{**TINY_SIM, "n_learners": 200, "n_topics": None, "topics": NAMED})
    events, _ = simulate(cfg, pass_mark=PASS)
    assert cfg.n_topics == 3
    assert set(events["topic_id"]) == set(NAMED)
    assert events["item_id"].str.split("-").str[0].isin(list(NAMED)).all()
    mean = events.groupby("topic_id")["score"].mean()
    assert mean["easy"] > mean["middle"] > mean["hard"]


def test_named_topics_shard_like_the_local_simulator() -> None:
    from data.simulator import simulate_shard

    cfg = SimulatorConfig(**{**TINY_SIM, "n_topics": None, "topics": NAMED})
    events, _ = simulate_shard(cfg, pass_mark=PASS, shard=1, learners_per_shard=30)
    assert set(events["topic_id"]) <= set(NAMED) and len(events) > 0


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            {"n_topics": 5, "topics": NAMED},
            "data.simulator.n_topics: must be null or 3 (the number of data.simulator.topics), "
            "got 5",
        ),
        (
            {"n_topics": None},
            "data.simulator.n_topics: required (an integer in [1, 10000]) when "
            "data.simulator.topics is not given",
        ),
        ({"n_topics": None, "topics": {}}, "data.simulator.topics: must name at least one topic"),
        (
            {"n_topics": None, "topics": {"__prior": 0.0}},
            "data.simulator.topics: topic id '__prior' is not allowed (starts with the reserved "
            "prefix '__'); allowed: 1-64 characters without control or invisible formatting "
            "characters, not starting with '__' (reserved)",
        ),
        (
            {"n_topics": None, "topics": {"fractions": 99.0}},
            "data.simulator.topics.fractions: difficulty must be a number in [-10, 10] logits, "
            "got 99.0",
        ),
    ],
)
def test_topic_list_errors_name_the_field(values: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_config(SimulatorConfig, {**TINY_SIM, **values}, "data.simulator")
    assert str(err.value) == expected


def test_default_simulator_topics_are_the_generators() -> None:
    """The default weakness model must know the topic names a backend request uses."""
    from pipelines.common import load_section
    from serving.topics import SUPPORTED_TOPICS

    topics = load_section("data")["simulator"]["topics"]
    assert tuple(topics) == SUPPORTED_TOPICS
    assert len(set(topics.values())) > 1  # each topic its own difficulty
