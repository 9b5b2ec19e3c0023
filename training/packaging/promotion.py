"""Promotion and rollback of packaged models through the registry's ``champion`` alias.

A candidate (a packaged version, registered by the ``package`` stage) is compared with the
current champion on the same held-out data with MLflow's own ``MetricThreshold`` semantics
(``mlflow.validate_evaluation_results``): each metric must pass its absolute floor
(``threshold``) and, when there is a champion, improve on it by ``min_absolute_change`` and/or
``min_relative_change`` (``min_relative_change: 0.0`` means "beats or holds"). Without a champion
only the floors apply.

History: the registered model's tag ``ludora.champion_history`` holds the promoted versions in
order (a stack); ``previous-champion`` is an alias on the version below the top. Rollback pops
the stack. Every change is mirrored to ``artifacts/<model>/aliases.json`` so serving can resolve
``champion`` without MLflow. Both commands hold the model's store lock, so they never interleave
with a ``package`` stage or with each other.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from serving.manifest import ManifestError, list_versions, load_manifest, verify_artifact
from serving.onnx_files import WEAKNESS_MODEL_FILE
from training.packaging import registry as reg
from training.packaging.registry import REGISTRY_NAMES, PromotionError
from training.packaging.store import model_lock

logger = logging.getLogger(__name__)

__all__ = [
    "REGISTRY_NAMES",
    "Decision",
    "MetricRule",
    "PromotionError",
    "generator_evaluator",
    "generator_reevaluator",
    "promote",
    "rollback",
    "rules_from_params",
    "validate",
    "weakness_evaluator",
    "weakness_metrics",
]

EvalFn = Callable[[Path, Path | None], tuple[dict[str, float], dict[str, float] | None]]


@dataclasses.dataclass(frozen=True)
class MetricRule:
    """One metric's rule, mirroring ``mlflow.models.MetricThreshold``'s arguments."""

    greater_is_better: bool = True
    threshold: float | None = None
    min_absolute_change: float | None = None
    min_relative_change: float | None = None

    def __post_init__(self) -> None:
        if self.min_absolute_change is not None and self.min_absolute_change <= 0:
            raise ValueError(
                f"min_absolute_change: must be > 0 or null, got {self.min_absolute_change}"
            )
        if self.min_relative_change is not None and not 0 <= self.min_relative_change <= 1:
            raise ValueError(
                f"min_relative_change: must be in [0, 1] or null, got {self.min_relative_change}"
            )


@dataclasses.dataclass
class Decision:
    """Outcome of a promotion attempt; ``reasons`` says why it failed (empty when it passed)."""

    model: str
    candidate: int
    champion: int | None
    passed: bool
    promoted: bool
    reasons: list[str]
    candidate_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    note: str = ""

    def summary(self) -> str:
        head = (
            f"{self.model}: candidate v{self.candidate} vs "
            f"{'no champion' if self.champion is None else f'champion v{self.champion}'}: "
        )
        if self.passed:
            return head + ("promoted" if self.promoted else self.note or "passes (not moved)")
        return head + "refused\n  " + "\n  ".join(self.reasons)


def rules_from_params(gates: Mapping[str, Any], model: str) -> dict[str, MetricRule]:
    """Metric rules from `gates.<model>`: floors (`auc_floor` / `floors`) + `promotion` changes."""
    section = gates.get(model) or {}
    floors: dict[str, float] = dict(section.get("floors") or {})
    if "auc_floor" in section:
        floors["auc"] = float(section["auc_floor"])
    promo: dict[str, Any] = dict(section.get("promotion") or {})
    rules = {}
    for metric in sorted(set(floors) | set(promo)):
        spec = dict(promo.get(metric) or {})
        try:
            rules[metric] = MetricRule(
                greater_is_better=bool(spec.get("greater_is_better", True)),
                threshold=floors.get(metric),
                min_absolute_change=spec.get("min_absolute_change"),
                min_relative_change=spec.get("min_relative_change"),
            )
        except ValueError as exc:
            raise ValueError(f"gates.{model}.promotion.{metric}: {exc}") from exc
    if not rules:
        raise ValueError(f"gates.{model}: no floors or promotion rules declared")
    return rules


def validate(
    candidate: Mapping[str, float],
    baseline: Mapping[str, float] | None,
    rules: Mapping[str, MetricRule],
) -> list[str]:
    """Failure messages from ``mlflow.validate_evaluation_results`` (empty list: passed)."""
    from mlflow.models import MetricThreshold
    from mlflow.models.evaluation import EvaluationResult
    from mlflow.models.evaluation.validation import ModelValidationFailedException

    thresholds = {}
    for metric, r in rules.items():
        compare = baseline is not None
        abs_change = r.min_absolute_change if compare else None
        rel_change = r.min_relative_change if compare else None
        if r.threshold is None and abs_change is None and rel_change is None:
            continue  # a pure comparison rule has nothing to check without a champion
        thresholds[metric] = MetricThreshold(
            threshold=r.threshold,
            min_absolute_change=abs_change,
            min_relative_change=None if rel_change is None else float(rel_change),
            greater_is_better=r.greater_is_better,
        )
    missing = [m for m in thresholds if m not in candidate]
    if missing:
        return [f"candidate lacks metric(s) {missing}"]
    if baseline is not None:
        lacking = [m for m, r in rules.items() if m not in baseline and m in thresholds]
        if lacking:
            return [f"champion lacks metric(s) {lacking}"]
    cand = EvaluationResult(metrics=dict(candidate), artifacts={})
    base = None if baseline is None else EvaluationResult(metrics=dict(baseline), artifacts={})
    try:
        import mlflow

        mlflow.validate_evaluation_results(thresholds, cand, base)
    except ModelValidationFailedException as exc:
        return [line.strip() for line in str(exc.message).splitlines() if line.strip()]
    return []


# ----------------------------------------------------------------------------- commands


def promote(
    model: str,
    *,
    artifacts_root: Path,
    rules: Mapping[str, MetricRule],
    evaluate: EvalFn,
    version: int | None = None,
    dry_run: bool = False,
) -> Decision:
    """Compare candidate ``version`` (default: latest packaged) with the champion; move the alias.

    ``evaluate(candidate_dir, champion_dir)`` returns both models' metrics on the same held-out
    data (the champion's is None when there is no champion).
    """
    name = REGISTRY_NAMES[model]
    model_root = artifacts_root / model
    if not list_versions(model_root):  # checked before the lock, which creates the folder
        raise PromotionError(f"{model_root}: no packaged version to promote")
    with model_lock(model_root):
        versions = list_versions(model_root)
        if version is None:
            if not versions:
                raise PromotionError(f"{model_root}: no packaged version to promote")
            version = versions[-1]
        if version not in versions:
            raise PromotionError(f"{model_root / str(version)}: version {version} not packaged")
        client = reg.client()
        cand_mv = reg.registry_version_for(client, name, version)
        reg.reconcile(client, name, model_root)
        champ_mv = reg.current_champion(client, name)
        champ = None if champ_mv is None else int(champ_mv.tags["ludora.version"])
        cand_dir = model_root / str(version)
        # Files and manifest first: evaluating a tampered ONNX file fails deep in onnxruntime,
        # and a forged manifest must not be promoted whatever its metrics say.
        problem = _integrity_problem(cand_dir, cand_mv)
        if problem:
            decision = Decision(model, version, champ, False, False, [problem], {}, None)
            logger.info(decision.summary())
            return decision
        if champ == version:
            metrics, _ = evaluate(cand_dir, None)
            return Decision(
                model, version, champ, True, False, [], metrics, None, note="already the champion"
            )
        champ_dir = None if champ is None else model_root / str(champ)
        cand_metrics, champ_metrics = evaluate(cand_dir, champ_dir)
        reasons = validate(cand_metrics, champ_metrics, rules)
        passed = not reasons
        promoted = False
        if passed and not dry_run:
            hist = [v for v in reg.history(client, name) if v != version] + [version]
            reg.set_champion(client, name, model_root, hist, f"promote v{version}")
            promoted = True
    decision = Decision(
        model,
        version,
        champ,
        passed,
        promoted,
        reasons,
        cand_metrics,
        champ_metrics,
        note="dry run: nothing moved" if dry_run else "",
    )
    logger.info(decision.summary())
    return decision


def _integrity_problem(cand_dir: Path, model_version: Any) -> str | None:
    """Why the candidate must not be promoted (files, manifest seal, registry record), or None.

    The registry tag ``ludora.manifest_sha256`` was written when the version was registered:
    a manifest rewritten since, digest recomputed or not, no longer matches it.
    """
    try:
        manifest = verify_artifact(cand_dir)
    except ManifestError as exc:
        return str(exc)
    recorded = (getattr(model_version, "tags", None) or {}).get("ludora.manifest_sha256")
    if recorded != manifest.get("manifest_sha256"):
        return (
            f"{cand_dir / 'manifest.json'}: manifest_sha256 differs from the one registered "
            f"with this version ({recorded}); the manifest was rewritten after registration"
        )
    return None


def _require_previous(name: str, hist: Sequence[int]) -> None:
    if len(hist) < 2:
        state = "no champion yet" if not hist else f"only v{hist[-1]} was ever champion"
        raise PromotionError(f"{name}: no previous champion to roll back to ({state})")


def rollback(model: str, *, artifacts_root: Path) -> tuple[int, int]:
    """Move ``champion`` back to the previous champion; returns (from_version, to_version)."""
    name = REGISTRY_NAMES[model]
    model_root = artifacts_root / model
    client = reg.client()
    _require_previous(name, reg.history(client, name))  # before the lock: creates nothing
    with model_lock(model_root):
        reg.reconcile(client, name, model_root)
        hist = reg.history(client, name)
        _require_previous(name, hist)
        current = hist.pop()
        reg.set_champion(client, name, model_root, hist, f"rollback v{current}")
    logger.info("%s: champion rolled back from v%d to v%d", name, current, hist[-1])
    return current, hist[-1]


# ----------------------------------------------------------------------------- evaluation


def weakness_metrics(artifact_dir: Path, test_file: Path) -> dict[str, float]:
    """AUC, log loss, Brier, ECE of one weakness artifact on the test split (served probability).

    Features are taken from the test table by the artifact's own feature names and order.
    """
    import numpy as np
    import onnxruntime as ort
    import pandas as pd

    from serving.weakness_post import apply_calibration
    from training.weakness_metrics import binary_metrics

    manifest = load_manifest(artifact_dir)
    names = list(manifest["feature_names"])
    df = pd.read_parquet(test_file)
    missing = [n for n in [*names, "label"] if n not in df.columns]
    if missing:
        raise PromotionError(f"{test_file}: missing column(s) {missing}")
    x = df[names].to_numpy(dtype=np.float32)
    sess = ort.InferenceSession(
        str(artifact_dir / WEAKNESS_MODEL_FILE), providers=["CPUExecutionProvider"]
    )
    input_name = manifest.get("feature_input_name") or sess.get_inputs()[0].name
    out_name = manifest.get("probability_output", "probabilities")
    (proba,) = sess.run([out_name], {input_name: x})
    p = np.asarray(proba, dtype=np.float64)[:, int(manifest.get("probability_column", 1))]
    cal_path = artifact_dir / "calibration.json"
    if cal_path.is_file():
        p = apply_calibration(p, json.loads(cal_path.read_text()))
    result = binary_metrics(df["label"].to_numpy(), p, n_bins=10)
    return {k: float(v) for k, v in result.items()}


def weakness_evaluator(test_file: Path) -> EvalFn:
    """Both artifacts scored on the same test table."""

    def _eval(cand: Path, champ: Path | None) -> tuple[dict[str, float], dict[str, float] | None]:
        return (
            weakness_metrics(cand, test_file),
            None if champ is None else weakness_metrics(champ, test_file),
        )

    return _eval


def generator_evaluator(
    reevaluate: Callable[[Path], dict[str, float]] | None,
) -> EvalFn:
    """Manifest metrics when both were measured on identical held-out data, else re-measure.

    The quantize stage measured each artifact's metrics on a fixed-seed sample of the test
    split; when both manifests record the same ``eval_data`` (file sha256 + sample settings) the
    numbers are comparable as they are. Otherwise both are re-evaluated with ``reevaluate``,
    over their manifests' metrics: a floor on a served rate the re-evaluation does not measure
    is still checked on the number the candidate's own quantize stage measured.
    """

    def _eval(cand: Path, champ: Path | None) -> tuple[dict[str, float], dict[str, float] | None]:
        cm = load_manifest(cand)
        if champ is None:
            return dict(cm["metrics"]), None
        hm = load_manifest(champ)
        if cm.get("eval_data") == hm.get("eval_data") and cm.get("eval_data"):
            return dict(cm["metrics"]), dict(hm["metrics"])
        if reevaluate is None:
            raise PromotionError(
                f"{cand} and {champ} were evaluated on different data and no re-evaluation "
                "is available"
            )
        logger.info("held-out data differ: re-evaluating both generator artifacts")
        # what is re-measured replaces the manifest's numbers; what only the quantize stage
        # measures (the served policy's rates, absolute floors) stays the manifest's own
        return (
            {**cm["metrics"], **reevaluate(cand)},
            {**hm["metrics"], **reevaluate(champ)},
        )

    return _eval


def generator_reevaluator(
    test_file: Path,
    train_file: Path,
    *,
    eval_samples: int,
    seed: int,
    max_new_tokens: int,
    threads: int,
    unseen_eval_samples: int = 0,
    realistic: Sequence[Mapping[str, Any]] = (),
) -> Callable[[Path], dict[str, float]]:
    """Score a generator artifact on the quantize stage's test sample with serving's loop.

    ``seed`` is ``quantize_generator.seed``: the template test records and then
    ``unseen_eval_samples`` open-vocabulary requests of ``test_unseen.jsonl`` (beside
    ``test_file``) are drawn by the stage's own `quantize.generator.evaluation_records`, and scored
    by its ``training.text_metrics.mixed_metrics``; the served policy's rates
    (``served_*``, ``served_realistic_*`` with ``realistic`` requests) are measured as the
    quantize stage measures them, on every open-vocabulary request.
    """

    def _reevaluate(artifact_dir: Path) -> dict[str, float]:
        from data.word_problems.corpus import read_jsonl
        from quantize.generator import evaluate_variant, evaluation_records
        from training.text_metrics import mixed_metrics, served_metrics

        train = {str(r["problem"]) for r in read_jsonl(train_file, required=["problem"])}
        test = read_jsonl(test_file, required=["prompt", "target", "keywords"])
        unseen_file = test_file.with_name("test_unseen.jsonl")
        unseen: list[dict[str, Any]] = []
        if unseen_eval_samples and unseen_file.is_file():
            unseen = read_jsonl(unseen_file, required=["id", "prompt", "topic", "keywords"])
        records = evaluation_records(
            test,
            unseen,
            eval_samples=eval_samples,
            unseen_eval_samples=unseen_eval_samples,
            seed=seed,
        )

        def metric_fn(outputs: list[str], recs: list[dict[str, Any]]) -> dict[str, float]:
            result = mixed_metrics(outputs, recs, train)
            return {k: float(v) for k, v in result.items() if isinstance(v, int | float)}

        result = evaluate_variant(
            artifact_dir,
            records,
            metric_fn=metric_fn,
            max_new_tokens=max_new_tokens,
            threads=threads,
        )
        out = {k: float(v) for k, v in result["metrics"].items()}
        if unseen:
            out |= served_metrics(
                artifact_dir,
                unseen,
                realistic,
                seed=seed,
                threads=threads,
                max_new_tokens=max_new_tokens,
            )
        return out

    return _reevaluate
