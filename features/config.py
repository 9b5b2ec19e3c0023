"""Typed config of the `features` stage, built once from the `features:` section of params.yaml.

Kept apart from `spec.py` because it depends on the params layer (`data.params`), which serving
never needs: serving reads the feature spec JSON, never params. Field constraints are pydantic
validators (`Range`, `OneOf`) checked when `build_config` loads the section, so a bad value
fails at load time naming `features.<key>`, what is allowed and the value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from core.schema import ACTIVITIES
from data.params import OneOf, Range, require


@dataclass(frozen=True)
class SplitConfig:
    """Time split of the examples and the share of learners held out entirely for test."""

    val_start_quantile: Annotated[float, Range(0.0, 1.0, lo_open=True, hi_open=True)] = 0.70
    test_start_quantile: Annotated[float, Range(0.0, 1.0, lo_open=True, hi_open=True)] = 0.85
    unseen_learner_frac: Annotated[float, Range(0.0, 1.0, hi_open=True)] = 0.10
    seed: Annotated[int, Range(0, integer=True)] = 13

    def __post_init__(self) -> None:
        require(
            0.0 < self.val_start_quantile < 1.0,
            "features.split.val_start_quantile",
            f"must be in (0, 1), got {self.val_start_quantile}",
        )
        require(
            self.val_start_quantile < self.test_start_quantile < 1.0,
            "features.split.test_start_quantile",
            f"must be in (val_start_quantile={self.val_start_quantile}, 1), "
            f"got {self.test_start_quantile}",
        )
        require(
            0.0 <= self.unseen_learner_frac < 1.0,
            "features.split.unseen_learner_frac",
            f"must be in [0, 1), got {self.unseen_learner_frac}",
        )
        require(self.seed >= 0, "features.split.seed", f"must be >= 0, got {self.seed}")


@dataclass(frozen=True)
class FeatureConfig:
    """Everything that defines the feature values (the spec copies it) plus the split."""

    pass_mark: Annotated[float, Range(0.0, 1.0, lo_open=True)] = 0.6
    # Known activities only: a typo (`quizz`) would otherwise end in "no assessment timestamps".
    assessment_activities: Annotated[tuple[str, ...], OneOf(ACTIVITIES, each=True)] = ("quiz",)
    rolling_windows: tuple[Annotated[int, Range(1, 1000, integer=True)], ...] = (3, 10)
    half_life_days: Annotated[float, Range(0.0, 3650.0, lo_open=True)] = 7.0
    peer_prior_weight: Annotated[float, Range(0.0, 1e6)] = 20.0
    split: SplitConfig = field(default_factory=SplitConfig)

    def __post_init__(self) -> None:
        require(
            0.0 < self.pass_mark <= 1.0,
            "features.pass_mark",
            f"must be in (0, 1], got {self.pass_mark}",
        )
        require(
            len(self.assessment_activities) > 0
            and all(a in ACTIVITIES for a in self.assessment_activities),
            "features.assessment_activities",
            f"must be a non-empty list of {list(ACTIVITIES)}, "
            f"got {list(self.assessment_activities)}",
        )
        require(
            0 < len(self.rolling_windows) <= 8
            and all(isinstance(k, int) and 1 <= k <= 1000 for k in self.rolling_windows)
            and len(set(self.rolling_windows)) == len(self.rolling_windows),
            "features.rolling_windows",
            f"must be 1-8 distinct integers in [1, 1000], got {list(self.rolling_windows)}",
        )
        require(
            0.0 < self.half_life_days <= 3650.0,
            "features.half_life_days",
            f"must be in (0, 3650], got {self.half_life_days}",
        )
        require(
            0.0 <= self.peer_prior_weight <= 1e6,
            "features.peer_prior_weight",
            f"must be in [0, 1e6], got {self.peer_prior_weight}",
        )

    @property
    def half_life_s(self) -> float:
        """Half-life in seconds (event timestamps are seconds)."""
        return self.half_life_days * 86400.0
