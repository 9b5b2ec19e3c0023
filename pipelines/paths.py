"""Every file a stage reads from another stage or writes, declared once.

Paths are POSIX strings relative to the repository root, spelled exactly as ``dvc.yaml`` spells
them: stages join them to the checkout (:func:`at`) and never spell a path of their own, and
``tests/test_dvc_deps.py`` checks that each stage's ``deps`` (those made by other stages),
``outs``, ``metrics`` and ``plots`` in ``dvc.yaml`` are the ones :data:`STAGES` declares, and that
``dvc.yaml`` lists the stages in data-flow order. Source files tracked by git (the school nouns,
the skeleton bank, the request sets) belong to the packages that read them and are not listed
here. Inner packages never import this module (it is pipeline wiring).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipelines.common import REPO_ROOT

# ----------------------------------------------------------------------------- weakness branch
EVENTS = "outputs/events"
EVENTS_FILE = f"{EVENTS}/events.parquet"
ORACLE_FILE = f"{EVENTS}/oracle.parquet"
DATA_METRICS = "metrics/data.json"

FEATURES = "outputs/features"
FEATURE_SPLITS = tuple(f"{FEATURES}/{split}.parquet" for split in ("train", "val", "test"))
FEATURES_TEST = f"{FEATURES}/test.parquet"
FEATURE_SPEC = f"{FEATURES}/feature_spec.json"
FEATURES_METRICS = "metrics/features.json"

WEAKNESS_MODEL = "outputs/models/weakness"
WEAKNESS_METRICS = "metrics/weakness.json"
WEAKNESS_PLOTS = "plots/weakness"
# plot name (training.weakness's result.plots key) -> file under WEAKNESS_PLOTS
WEAKNESS_PLOT_FILES = {
    "roc": "roc.csv",
    "pr": "pr.csv",
    "calibration_before": "calibration_before.csv",
    "calibration_after": "calibration_after.csv",
    "importance": "importance.csv",
}
WEAKNESS_VIEW_PLOTS = f"{WEAKNESS_PLOTS}/views"  # calibration_<view>.csv, one per request view

WEAKNESS_ONNX = "outputs/onnx/weakness"
WEAKNESS_EXPORT_METRICS = "metrics/weakness_export.json"

SCORES = "outputs/scores"
SCORE_METRICS = "metrics/score.json"
SCORE_PLOT = "plots/score/levels.csv"

# ----------------------------------------------------------------------------- generator branch
LEXICON = "outputs/lexicon"
LEXICON_TABLE = f"{LEXICON}/nouns.tsv"
LEXICON_METRICS = "metrics/lexicon.json"

TEXT = "outputs/text"
TEXT_SPLITS = tuple(f"{TEXT}/{split}.jsonl" for split in ("train", "val", "test"))
TEXT_TRAIN, TEXT_VAL, TEXT_TEST = TEXT_SPLITS
UNSEEN_FILE = "test_unseen.jsonl"  # the open-vocabulary requests, beside the template splits
TEXT_UNSEEN = f"{TEXT}/{UNSEEN_FILE}"
TOKENIZER = f"{TEXT}/tokenizer"
TEXT_METRICS = "metrics/text.json"

GENERATOR_MODEL = "outputs/models/generator"
GENERATOR_TRAINING_CONFIG = f"{GENERATOR_MODEL}/training_config.json"
GENERATOR_METRICS = "metrics/generator.json"
GENERATOR_LOSS_PLOT = "plots/generator/loss.csv"

GENERATOR_ONNX = "outputs/onnx/generator"
GENERATOR_DRAFT = f"{GENERATOR_ONNX}/manifest.draft.json"
GENERATOR_EXPORT_METRICS = "metrics/generator_export.json"

VARIANTS = "outputs/onnx/generator_variants"
QUANTIZE_METRICS = "metrics/quantize.json"
QUANTIZE_PLOT = "plots/quantize/variants.json"
GENERATOR_SAMPLES = "metrics/generator_samples.md"  # the served samples page (docs link it)

# ----------------------------------------------------------------------------- release
PACKAGE_METRICS = "metrics/package.json"

QUESTS = "outputs/quests"
QUESTS_METRICS = "metrics/quests.json"
QUESTS_PLOT = "plots/quests/topics.csv"


def at(path: str) -> Path:
    """A declared path in this checkout (what a stage's ``main()`` hands to its ``run()``)."""
    return REPO_ROOT / path


@dataclass(frozen=True)
class StageFiles:
    """What one stage reads from other stages and what it writes (``dvc.yaml``'s sections)."""

    inputs: tuple[str, ...] = ()
    outs: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    plots: tuple[str, ...] = ()


# In data-flow order: dvc.yaml lists its stages in this order.
STAGES: dict[str, StageFiles] = {
    "data": StageFiles(outs=(EVENTS,), metrics=(DATA_METRICS,)),
    "features": StageFiles(inputs=(EVENTS,), outs=(FEATURES,), metrics=(FEATURES_METRICS,)),
    "train_weakness": StageFiles(
        inputs=(EVENTS_FILE, *FEATURE_SPLITS, FEATURE_SPEC),
        outs=(WEAKNESS_MODEL,),
        metrics=(WEAKNESS_METRICS,),
        plots=(
            *(f"{WEAKNESS_PLOTS}/{name}" for name in WEAKNESS_PLOT_FILES.values()),
            WEAKNESS_VIEW_PLOTS,
        ),
    ),
    "export_weakness": StageFiles(
        inputs=(WEAKNESS_MODEL, FEATURES_TEST, WEAKNESS_METRICS),
        outs=(WEAKNESS_ONNX,),
        metrics=(WEAKNESS_EXPORT_METRICS,),
    ),
    "score": StageFiles(
        inputs=(EVENTS, WEAKNESS_ONNX),
        outs=(SCORES,),
        metrics=(SCORE_METRICS,),
        plots=(SCORE_PLOT,),
    ),
    "prepare_lexicon": StageFiles(outs=(LEXICON,), metrics=(LEXICON_METRICS,)),
    "prepare_text": StageFiles(inputs=(LEXICON_TABLE,), outs=(TEXT,), metrics=(TEXT_METRICS,)),
    "train_generator": StageFiles(
        inputs=(*TEXT_SPLITS, TEXT_UNSEEN, TOKENIZER),
        outs=(GENERATOR_MODEL,),
        metrics=(GENERATOR_METRICS,),
        plots=(GENERATOR_LOSS_PLOT,),
    ),
    "export_generator": StageFiles(
        inputs=(GENERATOR_MODEL, TEXT_TEST),
        outs=(GENERATOR_ONNX,),
        metrics=(GENERATOR_EXPORT_METRICS,),
    ),
    "quantize_generator": StageFiles(
        inputs=(GENERATOR_ONNX, TEXT_TRAIN, TEXT_TEST, TEXT_UNSEEN),
        outs=(VARIANTS, GENERATOR_SAMPLES),
        metrics=(QUANTIZE_METRICS,),
        plots=(QUANTIZE_PLOT,),
    ),
    "package": StageFiles(
        inputs=(
            WEAKNESS_ONNX,
            VARIANTS,
            GENERATOR_DRAFT,
            GENERATOR_TRAINING_CONFIG,
            QUANTIZE_METRICS,
            FEATURES_TEST,
            TEXT_TEST,
            TEXT_UNSEEN,
        ),
        metrics=(PACKAGE_METRICS,),
    ),
    "quests": StageFiles(
        inputs=(SCORES, VARIANTS, QUANTIZE_METRICS),
        outs=(QUESTS,),
        metrics=(QUESTS_METRICS,),
        plots=(QUESTS_PLOT,),
    ),
}
