"""Typed config of the `features` stage, built once from the `features:` section of params.yaml.

Kept apart from `spec.py` because it depends on `pipelines.common` (ConfigError, require), which
serving never needs: serving reads the feature spec JSON, never params.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipelines.common import require


@dataclass(frozen=True)
class SplitConfig:
    """Time split of the examples and the share of learners held out entirely for test."""

    val_start_quantile: float = 0.70
    test_start_quantile: float = 0.85
    unseen_learner_frac: float = 0.10
    seed: int = 13

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

    pass_mark: float = 0.6
    assessment_activities: tuple[str, ...] = ("quiz",)
    rolling_windows: tuple[int, ...] = (3, 10)
    half_life_days: float = 7.0
    peer_prior_weight: float = 20.0
    split: SplitConfig = field(default_factory=SplitConfig)

    def __post_init__(self) -> None:
        require(
            0.0 < self.pass_mark <= 1.0,
            "features.pass_mark",
            f"must be in (0, 1], got {self.pass_mark}",
        )
        require(
            len(self.assessment_activities) > 0
            and all(isinstance(a, str) and a for a in self.assessment_activities),
            "features.assessment_activities",
            f"must be a non-empty list of activity names, got {list(self.assessment_activities)}",
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
