"""The `gates` section of params.yaml as typed configs: every key, value and metric name checked.

A gate that cannot be evaluated is worse than no gate: a misspelt metric (`max_drop.bogus`)
used to be skipped, so a typo disabled a gate; `auc_floor: 2` made every candidate fail with
exit 0; `auc_floor: null` or a missing section ended in a TypeError / KeyError traceback. Here
each is one line naming the dotted key, the value and what is allowed, before any work starts.

Stages build the part they read (`quantize_generator`: :class:`GeneratorGates`,
`export_weakness`: :class:`ViewGates`); `package` and `ludora-ml promote` build the whole
section with :func:`load_gates`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from core.summary import VIEWS
from data.params import ConfigError, Range, build_config
from pipelines.common import load_params

# What `ludora-ml promote` measures on a weakness artifact (training.weakness_metrics).
WEAKNESS_METRICS = ("auc", "pr_auc", "logloss", "brier", "ece", "positive_rate")
# What the quantize stage measures on every generator variant (metrics/quantize.json
# "variants.<name>.metrics"; the served_* ones through the HTTP policy). A gate can only name
# one of these: any other name would never be measured, and a gate on it never evaluated.
GENERATOR_METRICS = (
    "answer_consistency",
    "answer_consistency_unseen",
    "bleu",
    "copy_rate",
    "degenerate_share",
    "distinct_2",
    "entity_consistency",
    "grammar_article_rate",
    "grammar_clean_rate",
    "grammar_defect_rate",
    "grammar_doubled_word_rate",
    "grammar_number_agreement_rate",
    "grammar_question_rate",
    "grammar_unknown_token_rate",
    "keyword_coverage",
    "keyword_coverage_unseen",
    "keyword_natural",
    "keywords_unused_rate",
    "role_fit",
    "rouge_l",
    "served_answer_consistency_unseen",
    "served_entity_consistency",
    "served_grammar_defect_rate",
    "served_keyword_coverage_unseen",
    "served_keyword_natural",
    "served_keywords_unused_rate",
    "served_mean_attempts",
    "served_n",
    "served_role_fit",
    "served_story_checks_ok",
    "served_topic_fidelity",
    # the same, served on the teacher-style requests (quantize_generator.realistic_requests)
    "served_realistic_answer_consistency_unseen",
    "served_realistic_grammar_defect_rate",
    "served_realistic_keyword_coverage_unseen",
    "served_realistic_mean_attempts",
    "served_realistic_n",
    "served_realistic_entity_consistency",
    "served_realistic_keyword_natural",
    "served_realistic_keywords_unused_rate",
    "served_realistic_keywords_used_rate",
    "served_realistic_role_fit",
    "served_realistic_story_checks_ok",
    "served_realistic_topic_fidelity",
    "shape_slot_rate",
    "topic_fidelity",
    "well_formed_rate",
    "well_formed_unseen",
)

Share = Annotated[float, Range(0.0, 1.0)]


def _known(names: Any, allowed: tuple[str, ...], where: str, what: str = "metric") -> None:
    for name in names:
        if name not in allowed:
            raise ConfigError(f"{where}.{name}: unknown {what}; allowed: {list(allowed)}")


# Every key the params file sets is required here (params.yaml holds the values); the defaults
# left are None ("not set") or, in MetricChange, equal to every rule params.yaml writes
# (tests/pipelines/test_params_defaults.py keeps them so).


@dataclass(frozen=True)
class MetricChange:
    """One `promotion.<metric>` rule (MLflow ``MetricThreshold`` against the champion)."""

    greater_is_better: bool = True
    min_relative_change: Annotated[float, Range(0.0, 1.0)] | None = None
    min_absolute_change: Annotated[float, Range(0.0, lo_open=True)] | None = None


@dataclass(frozen=True)
class ViewGates:
    """``gates.weakness.views``: per-view floors on the test split (metrics/weakness.json)."""

    min_auc: Share
    max_ece: Share
    max_auc_gap: dict[str, Share]

    def __post_init__(self) -> None:
        _known(self.max_auc_gap, tuple(VIEWS), "gates.weakness.views.max_auc_gap", "view")


@dataclass(frozen=True)
class WeaknessGates:
    """``gates.weakness``: the AUC floor, per-view floors, promotion rules."""

    # An AUC of 0.5 is chance and 1 is perfection: a floor outside [0.5, 1) fails every model
    # (or passes a useless one), which is a typo, not a policy.
    auc_floor: Annotated[float, Range(0.5, 1.0, hi_open=True)]
    views: ViewGates | None  # null: no per-view gates
    promotion: dict[str, MetricChange]

    def __post_init__(self) -> None:
        _known(self.promotion, WEAKNESS_METRICS, "gates.weakness.promotion")


@dataclass(frozen=True)
class GeneratorGates:
    """``gates.generator``: drops vs fp32, changed-output share, absolute floors, promotion."""

    max_drop: dict[str, Share]
    max_changed_share: Share
    floors: dict[str, Share]
    promotion: dict[str, MetricChange]

    def __post_init__(self) -> None:
        _known(self.max_drop, GENERATOR_METRICS, "gates.generator.max_drop")
        _known(self.floors, GENERATOR_METRICS, "gates.generator.floors")
        _known(self.promotion, GENERATOR_METRICS, "gates.generator.promotion")


@dataclass(frozen=True)
class GatesConfig:
    """The whole ``gates`` section."""

    weakness: WeaknessGates
    generator: GeneratorGates


def check_gates(section: Any, where: str = "gates") -> dict[str, Any]:
    """Validate a whole ``gates`` mapping; returned as is (plain dicts) for the consumers."""
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: section 'gates' missing or not a mapping")
    build_config(GatesConfig, section, where)
    return section


def load_gates(path: Path | str | None = None) -> dict[str, Any]:
    """The ``gates`` section of the params file, validated as a whole."""
    from pipelines import common

    path = common.PARAMS_FILE if path is None else path
    return check_gates(load_params(path).get("gates"), f"{path}:gates")
