"""The MLflow model registry side of a packaged version: registration, tags, champion history.

Each packaged version is logged to an MLflow run and registered (``ludora-weakness``,
``ludora-generator``) with tags ``ludora.version``, ``ludora.artifact_dir``,
``ludora.gates_passed``, ``ludora.content_sha256``, ``ludora.variant`` and one ``gate.<name>``
per gate. The registered model's tag ``ludora.champion_history`` (the promoted versions, a stack)
is the source of truth for the aliases: it is written first, then ``champion`` /
``previous-champion`` and the store's ``aliases.json``; a command killed in between leaves
aliases that still point at packaged, registered versions, and the next promote or rollback
re-applies the history (:func:`reconcile`). Callers hold the store lock
(:func:`training.packaging.store.model_lock`) and have selected the MLflow experiment.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from serving.manifest import load_manifest, read_aliases
from training.packaging.store import CHAMPION, PREVIOUS, crash_point, write_aliases

logger = logging.getLogger(__name__)

REGISTRY_NAMES = {"weakness": "ludora-weakness", "generator": "ludora-generator"}
HISTORY_TAG = "ludora.champion_history"


class PromotionError(RuntimeError):
    """Promotion or rollback cannot proceed (nothing to promote, nothing to roll back to)."""


def client() -> Any:
    """An MLflow client on the current tracking URI."""
    from mlflow import MlflowClient

    return MlflowClient()


def find_registry_version(mlflow_client: Any, name: str, version: int) -> Any | None:
    """The registry model version tagged ``ludora.version == version`` (or None)."""
    from mlflow.exceptions import MlflowException

    try:
        found = mlflow_client.search_model_versions(f"name='{name}'")
    except MlflowException:
        return None
    for mv in found:
        if mv.tags.get("ludora.version") == str(version):
            return mv
    return None


def registry_version_for(mlflow_client: Any, name: str, version: int) -> Any:
    """The registry model version tagged ``ludora.version == version``."""
    mv = find_registry_version(mlflow_client, name, version)
    if mv is None:
        raise PromotionError(
            f"{name}: ludora version {version} is not registered (run the package stage first)"
        )
    return mv


def current_champion(mlflow_client: Any, name: str) -> Any | None:
    """The model version behind ``champion``, or None when the alias (or the model) is unset."""
    from mlflow.exceptions import MlflowException

    try:
        return mlflow_client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def history(mlflow_client: Any, name: str) -> list[int]:
    """Promoted ludora versions, oldest first; empty when the model was never registered."""
    from mlflow.exceptions import MlflowException

    try:
        tags = mlflow_client.get_registered_model(name).tags
    except MlflowException as exc:
        if getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
            return []
        raise
    return [int(v) for v in json.loads(tags.get(HISTORY_TAG, "[]"))]


def set_champion(
    mlflow_client: Any, name: str, model_root: Path, new_history: list[int], event: str
) -> None:
    """Record ``new_history`` then point ``champion`` (and ``previous-champion``) at its top.

    Every version is looked up before anything is written, so an unregistered version changes
    nothing; the history tag is the commit point (see the module docstring).
    """
    from mlflow.exceptions import MlflowException

    targets = [registry_version_for(mlflow_client, name, v).version for v in new_history[-2:]]
    mlflow_client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(new_history))
    crash_point("promote:history")
    mlflow_client.set_registered_model_alias(name, CHAMPION, targets[-1])
    if len(targets) > 1:
        mlflow_client.set_registered_model_alias(name, PREVIOUS, targets[0])
    else:
        with contextlib.suppress(MlflowException):
            mlflow_client.delete_registered_model_alias(name, PREVIOUS)
    crash_point("promote:aliases")
    write_aliases(model_root, new_history, event)


def reconcile(mlflow_client: Any, name: str, model_root: Path) -> bool:
    """Re-apply the history when an interrupted command left the aliases behind it."""
    hist = history(mlflow_client, name)
    if not hist:
        return False
    champ = current_champion(mlflow_client, name)
    mirrored = read_aliases(model_root)
    in_registry = None if champ is None else int(champ.tags.get("ludora.version", -1))
    if in_registry == hist[-1] and mirrored.get(CHAMPION) == hist[-1]:
        return False
    logger.warning(
        "%s: aliases (registry v%s, %s v%s) lag the champion history %s; re-applying it",
        name,
        in_registry,
        model_root / "aliases.json",
        mirrored.get(CHAMPION),
        hist,
    )
    set_champion(mlflow_client, name, model_root, hist, "reconcile")
    return True


def registry_tags(manifest: Mapping[str, Any], artifact_dir: Path) -> dict[str, str]:
    """Model-version tags: version, absolute artifact dir, gate results and values."""
    tags = {
        "ludora.version": str(manifest["version"]),
        "ludora.artifact_dir": str(artifact_dir.resolve()),
        "ludora.gates_passed": str(bool(manifest["gates_passed"])).lower(),
        "ludora.content_sha256": str(manifest["content_sha256"]),
        "ludora.manifest_sha256": str(manifest.get("manifest_sha256")),
        "ludora.variant": str(manifest.get("variant")),
    }
    for g in manifest.get("gates", []):
        tags[tag_key(f"gate.{g['name']}")] = f"{g['value']} ({'pass' if g['passed'] else 'fail'})"
    return tags


def tag_key(name: str) -> str:
    """A gate name as an MLflow tag key, which allows only ``[A-Za-z0-9_-. :/]``.

    Per-view gates are named like ``view_auc_floor[averages]``; MLflow refuses the brackets, so
    they become ``view_auc_floor.averages`` (the manifest keeps the original name).
    """
    return re.sub(r"[^\w\-. :/]+", ".", name).strip(".")


def register_version(artifact_dir: Path) -> str:
    """Log the artifact dir to an MLflow run (active experiment) and register it.

    Returns the registry version. Both models are registered from the logged artifact directory
    (manifest included): the generator is three ONNX files plus a tokenizer, which one
    ONNX-flavour ModelProto cannot hold. Idempotent: a version already registered with the same
    ``ludora.version`` is returned as is, so a re-run after a kill completes the registration.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    manifest = load_manifest(artifact_dir)
    name = REGISTRY_NAMES[manifest["name"]]
    mlflow_client = client()
    with contextlib.suppress(MlflowException):  # already exists
        mlflow_client.create_registered_model(name, description=f"Ludora {manifest['name']} model")
    existing = find_registry_version(mlflow_client, name, int(manifest["version"]))
    if existing is not None:
        # A shared registry can hold a version this store never saw (packaged by another
        # clone): the same number with other content is a different model, never "done".
        theirs = existing.tags.get("ludora.content_sha256")
        if theirs is not None and theirs != manifest["content_sha256"]:
            raise PromotionError(
                f"{name}: registry version {existing.version} is ludora v{manifest['version']} "
                f"with other content ({theirs[:12]} != {manifest['content_sha256'][:12]}); "
                f"{artifact_dir.parent} is behind the registry: pull its versions first "
                "(python -m pipelines.ci pull)"
            )
        return str(existing.version)
    tags = registry_tags(manifest, artifact_dir)
    with mlflow.start_run(run_name=f"package-{manifest['name']}-v{manifest['version']}") as run:
        mlflow.set_tags({**tags, "ludora.source_run_id": str(manifest.get("mlflow_run_id"))})
        numeric = {
            k: float(v)
            for k, v in manifest.get("metrics", {}).items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
        mlflow.log_metrics(numeric)
        mlflow.log_artifacts(str(artifact_dir), artifact_path="artifact")
        source = f"{run.info.artifact_uri}/artifact"
    crash_point("register:logged")
    mv = mlflow_client.create_model_version(name, source=source, run_id=run.info.run_id, tags=tags)
    logger.info("registered %s version %s (ludora v%s)", name, mv.version, manifest["version"])
    return str(mv.version)
