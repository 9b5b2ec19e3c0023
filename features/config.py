"""Typed config of the `features` stage, built once from the `features:` section of params.yaml.

Kept apart from `spec.py` because it depends on the params layer (`data.params`), which serving
never needs: serving reads the feature spec JSON, never params. Field constraints are pydantic
validators (`Range`, `OneOf`) checked when `build_config` loads the section, so a bad value
fails at load time naming `features.<key>`, what is allowed and the value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from pydantic import AfterValidator

from core.schema import ACTIVITIES
from data.params import FieldProblem, OneOf, Range, require


def _distinct_windows(windows: tuple[int, ...]) -> tuple[int, ...]:
    """1-8 distinct windows (each window's range is checked on the item)."""
    if not 0 < len(windows) <= 8 or len(set(windows)) != len(windows):
        raise FieldProblem(f"must be 1-8 distinct integers in [1, 1000], got {list(windows)}")
    return windows


# Defaults: equal to params.yaml's `features` section (tests/pipelines/test_params_defaults.py
# fails when they differ), so that tests and benches can build a config without the file. Every
# range is checked once, by the field's validator, when `build_config` loads the section.


@dataclass(frozen=True)
class SplitConfig:
    """Time split of the examples and the share of learners held out entirely for test."""

    val_start_quantile: Annotated[float, Range(0.0, 1.0, lo_open=True, hi_open=True)] = 0.70
    test_start_quantile: Annotated[float, Range(0.0, 1.0, lo_open=True, hi_open=True)] = 0.85
    unseen_learner_frac: Annotated[float, Range(0.0, 1.0, hi_open=True)] = 0.10
    seed: Annotated[int, Range(0, integer=True)] = 13

    def __post_init__(self) -> None:
        # cross-field only (each value's own range is its field's validator)
        require(
            self.val_start_quantile < self.test_start_quantile,
            "features.split.test_start_quantile",
            f"must be in (val_start_quantile={self.val_start_quantile}, 1), "
            f"got {self.test_start_quantile}",
        )


@dataclass(frozen=True)
class FeatureConfig:
    """Everything that defines the feature values (the spec copies it) plus the split."""

    pass_mark: Annotated[float, Range(0.0, 1.0, lo_open=True)] = 0.6
    # Known activities only: a typo (`quizz`) would otherwise end in "no assessment timestamps".
    assessment_activities: Annotated[tuple[str, ...], OneOf(ACTIVITIES, each=True)] = ("quiz",)
    rolling_windows: Annotated[
        tuple[Annotated[int, Range(1, 1000, integer=True)], ...], AfterValidator(_distinct_windows)
    ] = (3, 10)
    half_life_days: Annotated[float, Range(0.0, 3650.0, lo_open=True)] = 7.0
    peer_prior_weight: Annotated[float, Range(0.0, 1e6)] = 20.0
    split: SplitConfig = field(default_factory=SplitConfig)

    @property
    def half_life_s(self) -> float:
        """Half-life in seconds (event timestamps are seconds)."""
        return self.half_life_days * 86400.0
