"""MLflow as its users open it: data lineage and logged models of the training runs.

MLflow 3's UI treats an experiment without a type as GenAI work and opens it on the (empty)
Traces page; runs showed "Datasets: None" and "Logged models: -". One place fixes all three:

- ``pipelines.common.setup_mlflow`` (every stage's MLflow entry) tags each experiment
  ``mlflow.experimentKind = custom_model_development``, MLflow 3's experiment-type tag (its own
  demo sets ``genai_development`` the same way), and opens the store under a file lock;
- :func:`log_datasets` logs each input file as an ``mlflow.data`` dataset (name, digest =
  the file's sha256, source = the file; context = training / validation / test) with lineage tags
  naming the upstream files (which events) it was built from;
- :func:`log_lightgbm_model` / :func:`log_torch_model` log a trained model as an MLflow model of
  its flavour, so the run page lists it under "Logged models" (the shipped ONNX files are in
  the ``package`` runs' artifacts and the model registry).

Requirements are given explicitly: MLflow's inference of them imports the model in a
subprocess, which costs seconds per stage and needs nothing we do not already pin.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

CONTEXTS = {"train": "training", "val": "validation", "test": "test"}
DIGEST_CHARS = 32  # MLflow stores a dataset digest in 36 characters; the tag keeps all 64


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _describe(path: Path, root: Path) -> str:
    """``relative/path@sha256[:12]`` (or the absolute path outside ``root``)."""
    path = path.resolve()
    rel = path.relative_to(root) if path.is_relative_to(root) else path
    return f"{rel}@{_sha256(path)[:12]}" if path.is_file() else f"{rel} (missing)"


def log_datasets(
    files: Mapping[str, Path],
    *,
    prefix: str,
    root: Path,
    upstream: Mapping[str, Path] | None = None,
) -> None:
    """Log each split file as an MLflow dataset input of the active run.

    ``files`` maps a split (``train``, ``val``, ``test``, or another name used as the context)
    to its file; ``upstream`` names what the splits were built from (``events``: the events
    file), recorded as ``lineage.<name>`` tags on every input.
    """
    import mlflow
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.sources import LocalArtifactDatasetSource  # type: ignore[attr-defined]

    lineage = {f"lineage.{k}": _describe(p, root) for k, p in (upstream or {}).items()}
    for split, path in files.items():
        if not path.is_file():
            logger.warning("%s: not found, not logged as a dataset", path)
            continue
        sha = _sha256(path)
        dataset = MetaDataset(  # type: ignore[abstract]  # MLflow implements profile
            LocalArtifactDatasetSource(str(path.resolve())),
            name=f"{prefix}/{split}",
            digest=sha[:DIGEST_CHARS],
        )
        tags = {"split": split, "sha256": sha, "bytes": str(path.stat().st_size), **lineage}
        mlflow.log_input(dataset, context=CONTEXTS.get(split, split), tags=tags)


def _requirements(*packages: str) -> list[str]:
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in packages]


def log_lightgbm_model(booster: Any, *, name: str, feature_names: list[str]) -> None:
    """The booster as an MLflow ``lightgbm`` model of the active run (signature: features)."""
    import mlflow.lightgbm
    import numpy as np
    from mlflow.models import infer_signature

    example = np.zeros((1, len(feature_names)), dtype=np.float32)
    mlflow.lightgbm.log_model(
        booster,
        name=name,
        signature=infer_signature(example, booster.predict(example)),
        pip_requirements=_requirements("lightgbm", "numpy"),
    )


def log_torch_model(model: Any, *, name: str) -> None:
    """A PyTorch module (the T5 generator) as an MLflow ``pytorch`` model of the active run."""
    import mlflow.pytorch

    # "pickle": MLflow 3's default "pt2" traces forward() on an example, which a seq2seq
    # model with its generation loop outside the graph does not fit.
    mlflow.pytorch.log_model(
        model,
        name=name,
        serialization_format="pickle",
        pip_requirements=_requirements("torch", "transformers"),
    )


def log_weakness_training(
    features_dir: Path, booster: Any, feature_names: list[str], *, root: Path
) -> None:
    """train_weakness: the three feature splits (from the events) and the booster."""
    splits = {s: features_dir / f"{s}.parquet" for s in ("train", "val", "test")}
    upstream = {
        "events": features_dir.parent / "events" / "events.parquet",
        "feature_spec": features_dir / "feature_spec.json",
    }
    log_datasets(splits, prefix="features", root=root, upstream=upstream)
    log_lightgbm_model(booster, name="weakness-booster", feature_names=feature_names)


def log_generator_training(text_dir: Path, model: Any, *, root: Path, unseen_file: str) -> None:
    """train_generator: the text splits, the open-vocabulary requests and the T5 model."""
    files = {s: text_dir / f"{s}.jsonl" for s in ("train", "val", "test")}
    files["test_unseen"] = text_dir / unseen_file
    upstream = {"tokenizer": text_dir / "tokenizer" / "tokenizer.json"}
    log_datasets(files, prefix="text", root=root, upstream=upstream)
    log_torch_model(model, name="generator-t5")
