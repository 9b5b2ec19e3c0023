"""Packaging candidates: the files a model version would hold and the manifest fields about them.

A candidate is gated here (absolute floors plus the upstream stage's gates); the store only
writes candidates whose gates all passed. One gate record format everywhere:
``{"name", "kind", "threshold", "value", "passed"}`` (``quantize.gates.gate``). Drafts written
before the export stage used ``passed`` carried ``"pass"``; :func:`normalize_gates` still reads
them, so old manifests and drafts keep working.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from core.io import read_json
from quantize.gates import all_passed, gate
from serving.manifest import describe_onnx_io
from serving.onnx_files import SEQ2SEQ_FILES, WEAKNESS_MODEL_FILE
from serving.roles import TYPED_FILES

WEAKNESS_FILES = (WEAKNESS_MODEL_FILE, "calibration.json", "thresholds.json", "feature_spec.json")
GENERATOR_FILES = (
    *SEQ2SEQ_FILES,
    "tokenizer.json",
    "generation_config.json",
)
# Operators ONNX Runtime's int8 quantizer acts on; a tree ensemble has none of them.
INT8_QUANTIZABLE_OPS = {"MatMul", "Gemm", "Conv", "Gather", "Attention", "LSTM", "Transpose"}


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


def gate_passed(record: Mapping[str, Any]) -> bool:
    """A gate record's outcome: ``passed`` (current format) or ``pass`` (older drafts)."""
    return bool(record.get("passed", record.get("pass")))


def normalize_gates(gates: Any, prefix: str) -> list[dict[str, Any]]:
    """Upstream gate records in the one format, names prefixed by the stage that set them."""
    return [
        {
            "name": f"{prefix}.{g['name']}",
            "kind": g.get("kind", "ceiling"),
            "threshold": g.get("threshold"),
            "value": g.get("value"),
            "passed": gate_passed(g),
        }
        for g in gates or []
    ]


def failed_gate_names(gates: Sequence[Mapping[str, Any]]) -> list[str]:
    """Names of the gates that did not pass."""
    return [g["name"] for g in gates if not gate_passed(g)]


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
    draft = read_json(onnx_dir / "manifest.draft.json")
    files = tuple(n for n in WEAKNESS_FILES if (onnx_dir / n).is_file())
    for required in (WEAKNESS_MODEL_FILE, "feature_spec.json"):
        if required not in files:
            raise FileNotFoundError(f"{onnx_dir / required}: required weakness file missing")
    onnx_test = (draft.get("metrics") or {}).get("onnx_test") or {}
    metrics = {k: v for k, v in onnx_test.items() if isinstance(v, int | float)}
    gates = [gate("auc_floor", "floor", auc_floor, metrics.get("auc"))]
    gates += normalize_gates(draft.get("gates"), "export")
    spec = read_json(onnx_dir / "feature_spec.json")
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
        "quantization": weakness_quantization_note(onnx_dir / WEAKNESS_MODEL_FILE),
        "mlflow_run_id": draft.get("mlflow_run_id"),
        "git_commit": draft.get("git_commit"),
        "params_hash": draft.get("params_hash"),
        "eval_data": {"file": "outputs/features/test.parquet"},
        # what serving needs to answer summaries: training topics (topic_known), Ludora's topic
        # ids mapped onto them, and the request views the model was trained and calibrated on
        "topics": list(draft.get("topics") or sorted(spec.get("peer", {}).get("topics", {}))),
        "topic_aliases": dict(draft.get("topic_aliases") or {}),
        "views": draft.get("views") or {"names": []},
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
        gates = [gate("quantize.shipped_variant", "floor", 1.0, 0.0)]
        fields: dict[str, Any] = {
            "variant": None,
            "metrics": {},
            "gates": gates,
            "gates_passed": False,
        }
        return Candidate("generator", variants_dir, (), fields)
    metrics = {k: float(v) for k, v in record["metrics"].items()}
    gates = [gate(f"{m}_floor", "floor", t, metrics.get(m)) for m, t in floors.items()]
    gates += normalize_gates(record["gates"], "quantize")
    source = variants_dir / str(shipped)
    files = tuple(
        n for n in (*GENERATOR_FILES, "config.json", *TYPED_FILES) if (source / n).is_file()
    )
    missing = [n for n in GENERATOR_FILES if n not in files]
    if missing:
        raise FileNotFoundError(f"{source}: shipped variant lacks {missing}")
    fields = {
        "variant": shipped,
        "metrics": metrics,
        "gates": gates,
        "gates_passed": all_passed(gates) and gate_passed(record),
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
        # the topics the model was trained on: serving accepts these (and their synonyms) only
        "topics": list(training_config.get("topics") or []),
    }
    return Candidate("generator", source, files, fields)
