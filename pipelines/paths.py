"""Every file a stage reads from another stage or writes, declared once.

Paths are POSIX strings relative to the repository root, spelled exactly as ``dvc.yaml`` spells
them: a stage's ``main()`` receives its own joined to the checkout (:func:`stage_args`, from
``StageFiles.args``) and never spells a path of its own, and
``tests/test_dvc_deps.py`` checks that each stage's ``deps`` (those made by other stages),
``outs``, ``metrics`` and ``plots`` in ``dvc.yaml`` are the ones :data:`STAGES` declares, and that
``dvc.yaml`` lists the stages in data-flow order. Source files tracked by git (the school nouns,
the skeleton bank, the request sets) belong to the packages that read them and are not listed
here. Inner packages never import this module (it is pipeline wiring).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.common import REPO_ROOT

# ----------------------------------------------------------------------------- weakness branch
EVENTS = "outputs/events"
EVENTS_NAME = "events.parquet"  # inside the data stage's output directory
ORACLE_NAME = "oracle.parquet"
EVENTS_FILE = f"{EVENTS}/{EVENTS_NAME}"
ORACLE_FILE = f"{EVENTS}/{ORACLE_NAME}"
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
GENERATOR_PLOTS = "plots/generator"
GENERATOR_LOSS_PLOT = f"{GENERATOR_PLOTS}/loss.csv"

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
    """What one stage reads from other stages and what it writes (``dvc.yaml``'s sections), and
    how its ``run()`` receives them.

    ``args`` maps a keyword of the stage's ``run()`` to one of the stage's declared paths, a file
    inside a declared folder or the folder of declared files (``tests/test_dvc_deps.py`` checks
    that each is one of those and that ``run()`` takes the keyword), so ``main()`` hands its paths
    over with :func:`stage_args` and spells none of its own.
    """

    inputs: tuple[str, ...] = ()
    outs: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    plots: tuple[str, ...] = ()
    args: Mapping[str, str] = field(default_factory=dict)


# In data-flow order: dvc.yaml lists its stages in this order.
STAGES: dict[str, StageFiles] = {
    "data": StageFiles(
        outs=(EVENTS,),
        metrics=(DATA_METRICS,),
        args=dict(out_dir=EVENTS, metrics_file=DATA_METRICS),
    ),
    "features": StageFiles(
        inputs=(EVENTS,),
        outs=(FEATURES,),
        metrics=(FEATURES_METRICS,),
        args=dict(
            events_file=EVENTS_FILE,
            oracle_file=ORACLE_FILE,
            out_dir=FEATURES,
            metrics_file=FEATURES_METRICS,
        ),
    ),
    "train_weakness": StageFiles(
        inputs=(EVENTS_FILE, *FEATURE_SPLITS, FEATURE_SPEC),
        outs=(WEAKNESS_MODEL,),
        metrics=(WEAKNESS_METRICS,),
        plots=(
            *(f"{WEAKNESS_PLOTS}/{name}" for name in WEAKNESS_PLOT_FILES.values()),
            WEAKNESS_VIEW_PLOTS,
        ),
        args=dict(
            features_dir=FEATURES,
            model_dir=WEAKNESS_MODEL,
            metrics_file=WEAKNESS_METRICS,
            plots_dir=WEAKNESS_PLOTS,
            events_file=EVENTS_FILE,
        ),
    ),
    "export_weakness": StageFiles(
        inputs=(WEAKNESS_MODEL, FEATURES_TEST, WEAKNESS_METRICS),
        outs=(WEAKNESS_ONNX,),
        metrics=(WEAKNESS_EXPORT_METRICS,),
        args=dict(
            model_dir=WEAKNESS_MODEL,
            test_file=FEATURES_TEST,
            out_dir=WEAKNESS_ONNX,
            metrics_file=WEAKNESS_EXPORT_METRICS,
            train_metrics_file=WEAKNESS_METRICS,
        ),
    ),
    "score": StageFiles(
        inputs=(EVENTS, WEAKNESS_ONNX),
        outs=(SCORES,),
        metrics=(SCORE_METRICS,),
        plots=(SCORE_PLOT,),
        args=dict(
            events_file=EVENTS_FILE,
            model_dir=WEAKNESS_ONNX,
            out_dir=SCORES,
            metrics_file=SCORE_METRICS,
            plot_file=SCORE_PLOT,
        ),
    ),
    "prepare_lexicon": StageFiles(
        outs=(LEXICON,),
        metrics=(LEXICON_METRICS,),
        args=dict(table_path=LEXICON_TABLE, metrics_path=LEXICON_METRICS),
    ),
    "prepare_text": StageFiles(
        inputs=(LEXICON_TABLE,),
        outs=(TEXT,),
        metrics=(TEXT_METRICS,),
        args=dict(text_dir=TEXT, metrics_path=TEXT_METRICS, lexicon_path=LEXICON_TABLE),
    ),
    "train_generator": StageFiles(
        inputs=(*TEXT_SPLITS, TEXT_UNSEEN, TOKENIZER),
        outs=(GENERATOR_MODEL,),
        metrics=(GENERATOR_METRICS,),
        plots=(GENERATOR_LOSS_PLOT,),
        args=dict(
            text_dir=TEXT,
            tokenizer_dir=TOKENIZER,
            model_dir=GENERATOR_MODEL,
            metrics_file=GENERATOR_METRICS,
            plots_dir=GENERATOR_PLOTS,
        ),
    ),
    "export_generator": StageFiles(
        inputs=(GENERATOR_MODEL, TEXT_TEST),
        outs=(GENERATOR_ONNX,),
        metrics=(GENERATOR_EXPORT_METRICS,),
        args=dict(
            model_dir=GENERATOR_MODEL,
            test_file=TEXT_TEST,
            onnx_dir=GENERATOR_ONNX,
            metrics_file=GENERATOR_EXPORT_METRICS,
        ),
    ),
    "quantize_generator": StageFiles(
        inputs=(GENERATOR_ONNX, TEXT_TRAIN, TEXT_TEST, TEXT_UNSEEN),
        outs=(VARIANTS, GENERATOR_SAMPLES),
        metrics=(QUANTIZE_METRICS,),
        plots=(QUANTIZE_PLOT,),
        args=dict(
            fp32_dir=GENERATOR_ONNX,
            text_dir=TEXT,
            variants_dir=VARIANTS,
            metrics_file=QUANTIZE_METRICS,
            plot_file=QUANTIZE_PLOT,
            samples_file=GENERATOR_SAMPLES,
        ),
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
        # run()'s PackageInputs fields are the inputs above, in that order
        args=dict(
            weakness_dir=WEAKNESS_ONNX,
            variants_dir=VARIANTS,
            generator_draft=GENERATOR_DRAFT,
            generator_training_config=GENERATOR_TRAINING_CONFIG,
            quantize_metrics=QUANTIZE_METRICS,
            features_test=FEATURES_TEST,
            text_test=TEXT_TEST,
            text_unseen=TEXT_UNSEEN,
            metrics_file=PACKAGE_METRICS,
        ),
    ),
    "quests": StageFiles(
        inputs=(SCORES, VARIANTS, QUANTIZE_METRICS),
        outs=(QUESTS,),
        metrics=(QUESTS_METRICS,),
        plots=(QUESTS_PLOT,),
        args=dict(
            scores_dir=SCORES,
            out_dir=QUESTS,
            metrics_file=QUESTS_METRICS,
            plot_file=QUESTS_PLOT,
        ),
    ),
}


def stage_args(stage: str) -> dict[str, Path]:
    """The paths ``stage``'s ``main()`` hands to its ``run()``: keyword -> path in this checkout."""
    return {keyword: at(path) for keyword, path in STAGES[stage].args.items()}
