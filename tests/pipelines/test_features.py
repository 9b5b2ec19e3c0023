"""Stage `features` end to end on a tiny simulated event file (offline, seconds)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from core.spec import read_spec
from data.simulator import simulate
from features.build import KEY_COLUMNS
from features.config import FeatureConfig
from pipelines.features import run
from tests.fixtures.events import sim_config


def test_stage_writes_splits_spec_and_metrics(tmp_path: Path) -> None:
    sim = sim_config(n_learners=30, n_topics=3, days=30, quiz_share=0.4)
    events, oracle = simulate(sim, pass_mark=0.6)
    events.to_parquet(tmp_path / "events.parquet", index=False)
    oracle.to_parquet(tmp_path / "oracle.parquet", index=False)
    out = tmp_path / "features"
    metrics_file = tmp_path / "metrics" / "features.json"

    metrics = run(
        FeatureConfig(),
        events_file=tmp_path / "events.parquet",
        oracle_file=tmp_path / "oracle.parquet",
        out_dir=out,
        metrics_file=metrics_file,
    )

    spec = read_spec(out / "feature_spec.json")
    parts = {s: pd.read_parquet(out / f"{s}.parquet") for s in ("train", "val", "test")}
    assert metrics_file.is_file()
    n_quiz = int((events["activity"] == "quiz").sum())
    total = sum(len(p) for p in parts.values())
    assert 0 < total <= n_quiz
    for name, part in parts.items():
        assert list(part.columns) == [*KEY_COLUMNS, *spec["names"]]
        assert metrics[f"{name}_rows"] == len(part)
        assert part["p_fail_true"].between(0, 1).all()
    assert parts["train"]["timestamp"].max() < parts["test"]["timestamp"].min()
    assert metrics["test_unseen_learners"] >= 1
    assert metrics["n_features"] == len(spec["names"])
    assert not list(tmp_path.glob(".features.*"))  # no temp leftovers


def test_params_fail_at_load_time_with_the_dotted_key() -> None:
    """Not "no assessment timestamps" after the work for a misspelt `[quizz]`: fails at load."""
    import pytest

    from pipelines.common import ConfigError, build_config, load_section

    section = load_section("features")
    cases = {
        "assessment_activities": (
            ["quizz"],
            "features.assessment_activities: must be one of ['quiz', 'minigame', 'exercise'], "
            "got 'quizz'",
        ),
        "rolling_windows": (
            [3, 0],
            "features.rolling_windows[1]: must be an integer in [1, 1000], got 0",
        ),
        "half_life_days": (0, "features.half_life_days: must be in (0, 3650], got 0"),
        "split": (
            {**section["split"], "seed": 1.5},
            "features.split.seed: must be an integer >= 0, got 1.5",
        ),
    }
    for key, (value, expected) in cases.items():
        with pytest.raises(ConfigError) as err:
            build_config(FeatureConfig, {**section, key: value}, "features")
        assert str(err.value) == expected


def test_missing_events_is_one_clear_error(tmp_path: Path) -> None:
    import pytest

    with pytest.raises(IsADirectoryError, match="is a directory, expected a file"):
        run(
            FeatureConfig(),
            events_file=tmp_path,
            oracle_file=None,
            out_dir=tmp_path / "f",
            metrics_file=tmp_path / "m.json",
        )
