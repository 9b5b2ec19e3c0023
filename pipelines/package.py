"""Stage `package`: versioned, self-describing artifacts in `artifacts/<model>/<version>/`.

For each model the stage gathers the candidate (weakness: the exported fp32 model; generator:
the variant `quantize_generator` shipped), evaluates its gates, and then:

- gates failed  -> nothing is packaged; the failure is recorded in `metrics/package.json`
  (the stage still succeeds, so `dvc repro` finishes and the champion keeps serving);
- same content as an existing version (same files, same sha256; newest first) -> that version
  is reused, so returning to earlier params after a `dvc exp run` mints no duplicate;
- otherwise -> a new version `max(existing) + 1` is written atomically; an existing version
  directory is never overwritten.

Each packaged version is logged to an MLflow run and registered in the model registry. The
work lives in :mod:`training.packaging` (candidates, store, registry); this module only reads
params and the paths `dvc.yaml` declares. Packaging and registration of one model happen under
that model's store lock, so two experiments packaging at once (`dvc queue start -j 2`) get
distinct versions and one registry entry each. `artifacts/` lives at the main checkout's root
(like the MLflow store), so `dvc exp run` copies add versions to the same store.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

from core.io import read_json
from data.params import OneOf
from pipelines import paths
from pipelines.common import (
    REPO_ROOT,
    atomic_write_json,
    load_section,
    main_repo_root,
    params_hash,
    require,
    setup_mlflow,
    stage_config,
    stage_main,
)
from pipelines.gates import load_gates
from serving.limits import DEFAULT_MAX_LENGTH
from serving.manifest import sha256_file
from training.packaging import registry
from training.packaging.candidates import (
    GENERATOR_FILES,
    WEAKNESS_FILES,
    Candidate,
    generator_candidate,
    weakness_candidate,
)
from training.packaging.store import model_lock, package_candidate

__all__ = [
    "ARTIFACTS_ROOT",
    "GENERATOR_FILES",
    "WEAKNESS_FILES",
    "Candidate",
    "PackageConfig",
    "PackageInputs",
    "generator_candidate",
    "main",
    "package_and_register",
    "package_candidate",
    "register_version",
    "run",
    "weakness_candidate",
]

MODELS = ("weakness", "generator")
ARTIFACTS_ROOT = main_repo_root(REPO_ROOT) / "artifacts"


@dataclasses.dataclass(frozen=True)
class PackageConfig:
    """Params `package` (every key is required: the values live in params.yaml)."""

    models: Annotated[tuple[str, ...], OneOf(MODELS, each=True)]
    register: bool
    experiment: str

    def __post_init__(self) -> None:
        require(bool(self.experiment.strip()), "package.experiment", "must not be empty")


@dataclasses.dataclass(frozen=True)
class PackageInputs:
    """The files the stage reads from earlier stages (declared in ``pipelines/paths.py``)."""

    weakness_dir: Path
    variants_dir: Path
    generator_draft: Path
    generator_training_config: Path
    quantize_metrics: Path
    features_test: Path
    text_test: Path
    text_unseen: Path


def register_version(artifact_dir: Path, *, experiment: str) -> str:
    """Register one packaged version in the MLflow registry (experiment ``experiment``)."""
    setup_mlflow(experiment)
    with model_lock(artifact_dir.parent):
        return registry.register_version(artifact_dir)


def package_and_register(
    cand: Candidate, artifacts_root: Path, *, register: bool
) -> dict[str, Any]:
    """Package ``cand`` and register its version, both under the model's store lock.

    The lock spans both steps, so a concurrent stage can neither take the same version number
    nor register the same version twice; MLflow must already point at the experiment.
    """
    with model_lock(artifacts_root / cand.model):
        result = package_candidate(cand, artifacts_root)
        if register and result["version"] is not None:
            result["registry_version"] = registry.register_version(Path(result["path"]))
    return result


def _file_sha(path: Path) -> str | None:
    return sha256_file(path) if path.is_file() else None


def _candidate(
    model: str, gates: dict[str, Any], quantize: dict[str, Any], inputs: PackageInputs
) -> Candidate:
    if model == "weakness":
        cand = weakness_candidate(
            inputs.weakness_dir, auc_floor=float(gates["weakness"]["auc_floor"])
        )
        cand.fields["eval_data"]["sha256"] = _file_sha(inputs.features_test)
        return cand
    keys = ("eval_samples", "unseen_eval_samples", "seed")
    sample = {k: quantize.get(k) for k in keys}
    # the length quantize evaluated at: serving's default request length (no params key)
    sample["max_new_tokens"] = DEFAULT_MAX_LENGTH
    return generator_candidate(
        inputs.variants_dir,
        read_json(inputs.quantize_metrics),
        draft=read_json(inputs.generator_draft),
        training_config=read_json(inputs.generator_training_config),
        floors=gates["generator"].get("floors", {}),
        eval_data={
            "file": paths.TEXT_TEST,
            "sha256": _file_sha(inputs.text_test),
            # the open-vocabulary requests quantize scores too
            "unseen_sha256": _file_sha(inputs.text_unseen),
            "sample": params_hash(sample),
        },
    )


def shown_path(path: str | Path, root: Path | None = None) -> str:
    """A packaged version's path as the report records it: relative to the checkout when it is
    inside it (``artifacts/generator/1``), so a committed metrics file names no machine's
    folders and reads the same on every clone; as it is when the store lives elsewhere."""
    root = main_repo_root() if root is None else root
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def run(
    cfg: PackageConfig,
    gates: dict[str, Any],
    quantize: dict[str, Any],
    *,
    inputs: PackageInputs,
    artifacts_root: Path,
    metrics_file: Path,
) -> dict[str, Any]:
    """Build both candidates, package what passed, register, write the report to metrics_file."""
    if cfg.register:
        setup_mlflow(cfg.experiment)
    report: dict[str, Any] = {}
    for model in cfg.models:
        cand = _candidate(model, gates, quantize, inputs)
        result = package_and_register(cand, artifacts_root, register=cfg.register)
        if result.get("path"):
            result["path"] = shown_path(result["path"])
        result["gates"] = cand.fields.get("gates", [])
        result["variant"] = cand.fields.get("variant")
        if model == "weakness":  # why fp32 ships: no operator int8 quantization acts on
            result["quantization"] = cand.fields.get("quantization")
        report[model] = result
    atomic_write_json(metrics_file, report)
    return report


def main() -> None:
    """Entry point of `python -m pipelines.package` (paths declared in paths.py)."""
    files = paths.stage_args("package")
    metrics_file = files.pop("metrics_file")
    run(
        stage_config(PackageConfig, "package"),
        load_gates(),
        load_section("quantize_generator"),
        inputs=PackageInputs(**files),
        artifacts_root=ARTIFACTS_ROOT,
        metrics_file=metrics_file,
    )


if __name__ == "__main__":
    stage_main(main)
