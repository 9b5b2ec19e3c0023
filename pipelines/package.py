"""Stage `package`: versioned, self-describing artifacts in `artifacts/<model>/<version>/`.

For each model the stage gathers the candidate (weakness: the exported fp32 model; generator:
the variant `quantize_generator` shipped), evaluates its gates, and then:

- gates failed  -> nothing is packaged; the failure is recorded in `metrics/package.json`
  (the stage still succeeds, so `dvc repro` finishes and the champion keeps serving);
- same content as an existing version (same files, same sha256; newest first) -> that version
  is reused, so returning to earlier params after a `dvc exp run` mints no duplicate;
- otherwise -> a new version `max(existing) + 1` is written atomically; an existing version
  directory is never overwritten.

Each packaged version is logged to an MLflow run and registered in the model registry
(`ludora-weakness`, `ludora-generator`) with tags `ludora.version`, `ludora.artifact_dir`,
`ludora.gates_passed` and one `gate.<name>` per gate. `artifacts/` lives at the main checkout's
root (like the MLflow store), so `dvc exp run` copies add versions to the same store.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipelines.common import (
    REPO_ROOT,
    atomic_write_json,
    build_config,
    load_section,
    main_repo_root,
    params_hash,
    require,
    setup_logging,
    setup_mlflow,
)
from quantize.gates import all_passed, gate
from serving.manifest import (
    MANIFEST_NAME,
    SCHEMA_VERSION,
    content_hash,
    describe_onnx_io,
    file_entry,
    list_versions,
    load_manifest,
)
from training.promotion import REGISTRY_NAMES, find_registry_version

logger = logging.getLogger(__name__)

MODELS = ("weakness", "generator")
ARTIFACTS_ROOT = main_repo_root(REPO_ROOT) / "artifacts"
WEAKNESS_DIR = REPO_ROOT / "outputs/onnx/weakness"
GENERATOR_FP32_DIR = REPO_ROOT / "outputs/onnx/generator"
VARIANTS_DIR = REPO_ROOT / "outputs/onnx/generator_variants"
QUANTIZE_METRICS = REPO_ROOT / "metrics/quantize.json"
GENERATOR_TRAINING_CONFIG = REPO_ROOT / "outputs/models/generator/training_config.json"
TEXT_TEST = REPO_ROOT / "outputs/text/test.jsonl"
FEATURES_TEST = REPO_ROOT / "outputs/features/test.parquet"
METRICS_FILE = REPO_ROOT / "metrics/package.json"

WEAKNESS_FILES = ("model.onnx", "calibration.json", "thresholds.json", "feature_spec.json")
GENERATOR_FILES = (
    "encoder_model.onnx",
    "decoder_model.onnx",
    "decoder_with_past_model.onnx",
    "tokenizer.json",
    "generation_config.json",
)
# Operators ONNX Runtime's int8 quantizer acts on; a tree ensemble has none of them.
INT8_QUANTIZABLE_OPS = {"MatMul", "Gemm", "Conv", "Gather", "Attention", "LSTM", "Transpose"}


@dataclasses.dataclass(frozen=True)
class PackageConfig:
    """Params `package`."""

    models: tuple[str, ...] = MODELS
    register: bool = True
    experiment: str = "ludora-package"

    def __post_init__(self) -> None:
        bad = [m for m in self.models if m not in MODELS]
        require(
            bool(self.models) and not bad,
            "package.models",
            f"non-empty subset of {list(MODELS)}, got {list(self.models)}",
        )
        require(bool(self.experiment.strip()), "package.experiment", "must not be empty")


@dataclasses.dataclass
class Candidate:
    """What would be packaged: source files plus the manifest fields describing them."""

    model: str
    source_dir: Path
    files: tuple[str, ...]
    fields: dict[str, Any]

    @property
    def gates_passed(self) -> bool:
        return bool(self.fields.get("gates_passed"))


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: required input not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc


def _normalize_gates(gates: Any, prefix: str) -> list[dict[str, Any]]:
    """Upstream gate records (``pass`` or ``passed``) in our shape, names prefixed by stage."""
    out = []
    for g in gates or []:
        passed = g.get("passed", g.get("pass"))
        out.append(
            {
                "name": f"{prefix}.{g['name']}",
                "kind": g.get("kind", "ceiling"),
                "threshold": g.get("threshold"),
                "value": g.get("value"),
                "passed": bool(passed),
            }
        )
    return out


def onnx_info(path: Path) -> dict[str, Any]:
    """Opset per domain plus io names, shapes and types of one ONNX file."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {
        "opset": {(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import},
        **describe_onnx_io(path),
    }


def weakness_quantization_note(model_path: Path) -> dict[str, Any]:
    """Why the weakness model ships as fp32: it has no operator int8 quantization acts on."""
    import onnx

    ops = sorted({n.op_type for n in onnx.load(str(model_path)).graph.node})
    quantizable = sorted(set(ops) & INT8_QUANTIZABLE_OPS)
    reason = (
        "ONNX Runtime int8 quantization rewrites MatMul/Gemm/Conv/Gather-style operators; this "
        f"graph's operators are {ops} (a tree ensemble), so int8 would change nothing: fp32 ships"
        if not quantizable
        else f"graph has quantizable operators {quantizable} but the weakness model ships fp32"
    )
    return {
        "shipped_variant": "fp32",
        "op_types": ops,
        "quantizable_ops": quantizable,
        "reason": reason,
    }


def weakness_candidate(onnx_dir: Path, *, auc_floor: float) -> Candidate:
    """The exported weakness model, gated by the AUC floor and the export's parity gates."""
    draft = _read_json(onnx_dir / "manifest.draft.json")
    files = tuple(n for n in WEAKNESS_FILES if (onnx_dir / n).is_file())
    for required in ("model.onnx", "feature_spec.json"):
        if required not in files:
            raise FileNotFoundError(f"{onnx_dir / required}: required weakness file missing")
    onnx_test = (draft.get("metrics") or {}).get("onnx_test") or {}
    metrics = {k: v for k, v in onnx_test.items() if isinstance(v, int | float)}
    gates = [gate("auc_floor", "floor", auc_floor, metrics.get("auc"))]
    gates += _normalize_gates(draft.get("gates"), "export")
    spec = _read_json(onnx_dir / "feature_spec.json")
    onnx_meta = draft.get("onnx") or {}
    fields = {
        "variant": "fp32",
        "metrics": metrics,
        "gates": gates,
        "gates_passed": all_passed(gates),
        "feature_names": list(spec.get("names", draft.get("feature_names", []))),
        "feature_input_name": spec.get("input_name"),
        "probability_output": onnx_meta.get("probability_output", "probabilities"),
        "probability_column": onnx_meta.get("probability_column", 1),
        "quantization": weakness_quantization_note(onnx_dir / "model.onnx"),
        "mlflow_run_id": draft.get("mlflow_run_id"),
        "git_commit": draft.get("git_commit"),
        "params_hash": draft.get("params_hash"),
        "eval_data": {"file": "outputs/features/test.parquet"},
    }
    return Candidate("weakness", onnx_dir, files, fields)


def generator_candidate(
    variants_dir: Path,
    quantize_metrics: Mapping[str, Any],
    *,
    draft: Mapping[str, Any],
    training_config: Mapping[str, Any],
    floors: Mapping[str, float],
    eval_data: Mapping[str, Any],
) -> Candidate:
    """The shipped generator variant, gated by its quantization gates and absolute floors."""
    shipped = quantize_metrics.get("shipped")
    variants = quantize_metrics.get("variants") or {}
    record = variants.get(shipped) if shipped else None
    if record is None:
        gates = [
            {
                "name": "quantize.shipped_variant",
                "kind": "floor",
                "threshold": 1.0,
                "value": 0.0,
                "passed": False,
            }
        ]
        fields: dict[str, Any] = {
            "variant": None,
            "metrics": {},
            "gates": gates,
            "gates_passed": False,
        }
        return Candidate("generator", variants_dir, (), fields)
    metrics = {k: float(v) for k, v in record["metrics"].items()}
    gates = [gate(f"{m}_floor", "floor", t, metrics.get(m)) for m, t in floors.items()]
    gates += _normalize_gates(record["gates"], "quantize")
    source = variants_dir / str(shipped)
    files = tuple(n for n in (*GENERATOR_FILES, "config.json") if (source / n).is_file())
    missing = [n for n in GENERATOR_FILES if n not in files]
    if missing:
        raise FileNotFoundError(f"{source}: shipped variant lacks {missing}")
    fields = {
        "variant": shipped,
        "metrics": metrics,
        "gates": gates,
        "gates_passed": all_passed(gates) and bool(record.get("passed")),
        "generation": dict(draft.get("generation") or {}),
        "quantization": {
            "recipe": record.get("recipe"),
            "size_mb": record.get("size_mb"),
            "size_ratio": record.get("size_ratio"),
            "latency_ms_median": record.get("latency_ms_median"),
            "speedup": record.get("speedup"),
            "notes": list(quantize_metrics.get("notes") or []),
        },
        "export_parity": draft.get("parity"),
        "mlflow_run_id": training_config.get("mlflow_run_id"),
        "git_commit": training_config.get("git_commit"),
        "params_hash": training_config.get("params_hash"),
        "eval_data": dict(eval_data),
    }
    return Candidate("generator", source, files, fields)


def failed_gate_names(gates: Sequence[Mapping[str, Any]]) -> list[str]:
    return [g["name"] for g in gates if not g["passed"]]


def package_candidate(
    cand: Candidate, artifacts_root: Path, *, now: dt.datetime | None = None
) -> dict[str, Any]:
    """Write (or reuse) a version of ``cand``; returns its status record for metrics/package.json.

    Status is ``packaged`` (new version), ``reused`` (same content as an existing version, the
    newest such) or ``skipped_gates_failed`` (nothing written).
    """
    if not cand.gates_passed:
        failed = failed_gate_names(cand.fields.get("gates", []))
        logger.warning("%s: gates failed %s; not packaged", cand.model, failed)
        return {"status": "skipped_gates_failed", "version": None, "failed_gates": failed}
    entries = {name: file_entry(cand.source_dir / name) for name in cand.files}
    digest = content_hash(entries)
    model_root = artifacts_root / cand.model
    versions = list_versions(model_root)
    for existing in reversed(versions):
        path = model_root / str(existing)
        if load_manifest(path).get("content_sha256") == digest:
            logger.info("%s: same content as version %d, reusing it", cand.model, existing)
            return {
                "status": "reused",
                "version": existing,
                "content_sha256": digest,
                "path": str(path.resolve()),
            }
    version = (versions[-1] if versions else 0) + 1
    target = model_root / str(version)
    if target.exists():  # another writer got there first: never overwrite
        raise FileExistsError(f"{target}: version {version} already exists; not overwritten")
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "name": cand.model,
        "version": version,
        "created_at": (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds"),
        "content_sha256": digest,
        "files": entries,
        "onnx": {n: onnx_info(cand.source_dir / n) for n in cand.files if n.endswith(".onnx")},
        **cand.fields,
    }
    model_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", suffix=".tmp", dir=model_root))
    try:
        for name in cand.files:
            shutil.copy2(cand.source_dir / name, tmp / name)
        (tmp / MANIFEST_NAME).write_text(
            json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False) + "\n"
        )
        # Unlike atomic_path (which replaces an existing directory), a plain rename fails when
        # another writer created this version meanwhile: a version is never overwritten.
        os.rename(tmp, target)
    except OSError as exc:
        raise FileExistsError(f"{target}: could not create version {version} ({exc})") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("%s: packaged version %d at %s", cand.model, version, target)
    return {
        "status": "packaged",
        "version": version,
        "content_sha256": digest,
        "path": str(target.resolve()),
    }


def registry_tags(manifest: Mapping[str, Any], artifact_dir: Path) -> dict[str, str]:
    """Model-version tags: version, absolute artifact dir, gate results and values."""
    tags = {
        "ludora.version": str(manifest["version"]),
        "ludora.artifact_dir": str(artifact_dir.resolve()),
        "ludora.gates_passed": str(bool(manifest["gates_passed"])).lower(),
        "ludora.content_sha256": str(manifest["content_sha256"]),
        "ludora.variant": str(manifest.get("variant")),
    }
    for g in manifest.get("gates", []):
        tags[f"gate.{g['name']}"] = f"{g['value']} ({'pass' if g['passed'] else 'fail'})"
    return tags


def register_version(artifact_dir: Path, *, experiment: str) -> str:
    """Log the artifact dir to an MLflow run and register it; returns the registry version.

    Both models are registered from the logged artifact directory (manifest included): the
    generator is three ONNX files plus a tokenizer, which one ONNX-flavour ModelProto cannot hold.
    Idempotent: a version already registered with the same ``ludora.version`` is returned as is.
    """
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    manifest = load_manifest(artifact_dir)
    name = REGISTRY_NAMES[manifest["name"]]
    setup_mlflow(experiment)
    client = MlflowClient()
    with contextlib.suppress(MlflowException):  # already exists
        client.create_registered_model(name, description=f"Ludora {manifest['name']} model")
    existing = find_registry_version(client, name, int(manifest["version"]))
    if existing is not None:
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
    mv = client.create_model_version(name, source=source, run_id=run.info.run_id, tags=tags)
    logger.info("registered %s version %s (ludora v%s)", name, mv.version, manifest["version"])
    return str(mv.version)


def file_sha(path: Path) -> str | None:
    from serving.manifest import sha256_file

    return sha256_file(path) if path.is_file() else None


def main() -> None:
    """Build both candidates, package what passed, register, write metrics/package.json."""
    cfg = build_config(PackageConfig, load_section("package"), "package")
    gates_section = load_section("gates")
    quantize_section = load_section("quantize_generator")
    report: dict[str, Any] = {}
    for model in cfg.models:
        if model == "weakness":
            auc_floor = float(gates_section["weakness"]["auc_floor"])
            cand = weakness_candidate(WEAKNESS_DIR, auc_floor=auc_floor)
            cand.fields["eval_data"]["sha256"] = file_sha(FEATURES_TEST)
        else:
            cand = generator_candidate(
                VARIANTS_DIR,
                _read_json(QUANTIZE_METRICS),
                draft=_read_json(GENERATOR_FP32_DIR / "manifest.draft.json"),
                training_config=_read_json(GENERATOR_TRAINING_CONFIG),
                floors=gates_section["generator"].get("floors", {}),
                eval_data={
                    "file": "outputs/text/test.jsonl",
                    "sha256": file_sha(TEXT_TEST),
                    "sample": params_hash(
                        {
                            k: quantize_section.get(k)
                            for k in ("eval_samples", "seed", "max_new_tokens")
                        }
                    ),
                },
            )
        result = package_candidate(cand, ARTIFACTS_ROOT)
        result["gates"] = cand.fields.get("gates", [])
        result["variant"] = cand.fields.get("variant")
        if model == "weakness":  # why fp32 ships: no operator int8 quantization acts on
            result["quantization"] = cand.fields.get("quantization")
        if cfg.register and result["version"] is not None:
            result["registry_version"] = register_version(
                Path(result["path"]), experiment=cfg.experiment
            )
        report[model] = result
    atomic_write_json(METRICS_FILE, report)


if __name__ == "__main__":
    setup_logging()
    main()
