"""ONNX export of the weakness booster and the parity gate against the native model.

Input name and width come from the feature spec saved with the model, never from params. The
graph outputs the raw probability; calibration and action levels are applied by serving from the
artifact's own ``calibration.json``/``thresholds.json`` with ``serving.weakness_post``, the same
functions the pipeline used, so the served probability equals the pipeline's.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from export.parity import ParityError
from serving.weakness_post import action_level_index, apply_calibration

if TYPE_CHECKING:
    import lightgbm as lgb
    import onnx
    import pandas as pd

logger = logging.getLogger(__name__)

PROBABILITY_OUTPUT = "probabilities"
LABEL_OUTPUT = "label"


def convert_booster(
    booster: lgb.Booster, spec: Mapping[str, Any], *, target_opset: int
) -> onnx.ModelProto:
    """Convert with onnxmltools (``zipmap=False``): input ``spec.input_name`` [None, n_features]."""
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    names = list(spec["names"])
    if booster.num_feature() != len(names):
        raise ValueError(
            f"feature spec lists {len(names)} features but the booster expects "
            f"{booster.num_feature()}"
        )
    if list(booster.feature_name()) != names:
        raise ValueError("booster feature names differ from the feature spec's order")
    model = convert_lightgbm(
        booster,
        name="weakness",
        initial_types=[(spec["input_name"], FloatTensorType([None, len(names)]))],
        zipmap=False,
        target_opset=target_opset,
    )
    # onnxmltools lists the opsets in set order, which follows Python's hash seed: one order
    # (by domain), so the same booster always exports the same bytes
    ordered = sorted((o.domain, o.version) for o in model.opset_import)
    del model.opset_import[:]
    for domain, version in ordered:
        model.opset_import.add(domain=domain, version=version)
    n_fixed = round_thresholds_down(model, booster)
    logger.info("rounded %d split thresholds down to float32 for exact LightGBM parity", n_fixed)
    outputs = [o.name for o in model.graph.output]
    if PROBABILITY_OUTPUT not in outputs:
        raise ValueError(f"converted graph outputs {outputs}, expected '{PROBABILITY_OUTPUT}'")
    return model


def _split_thresholds(booster: lgb.Booster) -> np.ndarray:
    """Every numerical split threshold (float64) of the booster, from its JSON dump."""
    found: list[float] = []
    stack = [t["tree_structure"] for t in booster.dump_model()["tree_info"]]
    while stack:
        node = stack.pop()
        if "split_index" in node:
            if node.get("decision_type") == "<=":
                found.append(float(node["threshold"]))
            stack.extend((node["left_child"], node["right_child"]))
    return np.asarray(found, dtype=np.float64)


def round_thresholds_down(model: onnx.ModelProto, booster: lgb.Booster) -> int:
    """Make ONNX's float32 ``x <= t`` agree with LightGBM's float64 ``x <= threshold``.

    LightGBM compares a float32 feature (cast to double) with a double threshold; the converter
    stores ``float32(threshold)`` rounded to nearest, which can land *above* the threshold, so a
    value equal to that float32 goes left in ONNX and right in LightGBM (probabilities then differ
    by a whole leaf, ~1e-3). For float32 x, ``x <= t`` equals ``x <= largest float32 <= t``, so we
    store that value instead. Returns how many node thresholds were lowered.
    """
    from onnx import helper

    thr64 = _split_thresholds(booster)
    thr32 = thr64.astype(np.float32)
    rounded_up = set(thr32[thr32.astype(np.float64) > thr64].tolist())
    exact_or_down = set(thr32[thr32.astype(np.float64) <= thr64].tolist())
    ambiguous = rounded_up & exact_or_down
    if ambiguous:
        logger.warning(
            "%d float32 thresholds are shared by splits rounding both ways", len(ambiguous)
        )
    n_fixed = 0
    for node in model.graph.node:
        if not node.op_type.startswith("TreeEnsemble"):
            continue
        attrs = {a.name: a for a in node.attribute}
        if "nodes_values" not in attrs or "nodes_modes" not in attrs:
            continue
        values = np.asarray(attrs["nodes_values"].floats, dtype=np.float32)
        modes = [m.decode() if isinstance(m, bytes) else m for m in attrs["nodes_modes"].strings]
        for i, (v, mode) in enumerate(zip(values.tolist(), modes, strict=True)):
            if mode == "BRANCH_LEQ" and v in rounded_up and v not in ambiguous:
                values[i] = np.nextafter(np.float32(v), np.float32(-np.inf))
                n_fixed += 1
        new = helper.make_attribute("nodes_values", values.tolist())
        attrs["nodes_values"].CopyFrom(new)
    return n_fixed


def opsets(model: onnx.ModelProto) -> dict[str, int]:
    """Opset per domain (``""`` is ai.onnx) as recorded in the model."""
    return {(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import}


def onnx_fail_probability(model_bytes: bytes, X: np.ndarray, input_name: str) -> np.ndarray:
    """Raw P(fail) from the ONNX model with onnxruntime (float32 output, returned as float64)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
    (proba,) = sess.run([PROBABILITY_OUTPUT], {input_name: np.ascontiguousarray(X, np.float32)})
    return np.asarray(proba, dtype=np.float64)[:, 1]


def io_description(model: onnx.ModelProto) -> dict[str, list[dict[str, Any]]]:
    """Names, element types and shapes of the graph inputs and outputs (for the manifest)."""
    import onnx

    def describe(values: Any) -> list[dict[str, Any]]:
        rows = []
        for v in values:
            t = v.type.tensor_type
            dims = [
                d.dim_param or (d.dim_value if d.HasField("dim_value") else None)
                for d in t.shape.dim
            ]
            rows.append(
                {
                    "name": v.name,
                    "type": onnx.TensorProto.DataType.Name(t.elem_type).lower(),
                    "shape": [d if d != "" else None for d in dims],
                }
            )
        return rows

    return {"inputs": describe(model.graph.input), "outputs": describe(model.graph.output)}


@dataclass(frozen=True)
class ParityReport:
    """Outcome of the parity check: worst differences and decision flips per threshold."""

    n_rows: int
    max_abs_diff_raw: float
    max_abs_diff_calibrated: float
    flips_per_threshold: dict[str, int]
    level_flips: int

    @property
    def total_flips(self) -> int:
        return int(sum(self.flips_per_threshold.values()))


def parity_check(
    p_native: np.ndarray,
    p_onnx: np.ndarray,
    *,
    calibration: Mapping[str, Any],
    thresholds: Sequence[float],
    meta: pd.DataFrame | None,
    max_abs_diff: float,
    max_flips: int,
    n_worst: int = 5,
) -> ParityReport:
    """Compare native and ONNX probabilities (raw and calibrated) and decisions at every threshold.

    Raises ParityError naming the worst rows (index, user, topic, both probabilities) when the
    largest difference exceeds ``max_abs_diff`` or more than ``max_flips`` decisions flip.
    """
    a = np.asarray(p_native, dtype=np.float64)
    b = np.asarray(p_onnx, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"p_native {a.shape} and p_onnx {b.shape} must be equal-length vectors")
    ca = apply_calibration(a, calibration)
    cb = apply_calibration(b, calibration)
    diff_raw = np.abs(a - b)
    diff_cal = np.abs(ca - cb)
    flips = {f"{t:g}": int(np.count_nonzero((ca >= t) != (cb >= t))) for t in thresholds}
    level_flips = int(
        np.count_nonzero(action_level_index(ca, thresholds) != action_level_index(cb, thresholds))
    )
    report = ParityReport(
        n_rows=int(a.size),
        max_abs_diff_raw=float(diff_raw.max(initial=0.0)),
        max_abs_diff_calibrated=float(diff_cal.max(initial=0.0)),
        flips_per_threshold=flips,
        level_flips=level_flips,
    )
    problems = []
    if report.max_abs_diff_raw > max_abs_diff:
        problems.append(
            f"max |p_onnx - p_native| raw {report.max_abs_diff_raw:.3g} > {max_abs_diff:g}"
        )
    if report.max_abs_diff_calibrated > max_abs_diff:
        problems.append(
            "max |p_onnx - p_native| calibrated "
            f"{report.max_abs_diff_calibrated:.3g} > {max_abs_diff:g}"
        )
    if report.total_flips > max_flips:
        problems.append(f"{report.total_flips} decision flips {flips} > {max_flips}")
    if problems:
        worst = np.argsort(-np.maximum(diff_raw, diff_cal), kind="stable")[:n_worst]
        lines = []
        for i in worst:
            who = ""
            if meta is not None and "user_id" in meta.columns and "topic_id" in meta.columns:
                who = f" user {meta['user_id'].iloc[i]!s} topic {meta['topic_id'].iloc[i]!s}"
            lines.append(
                f"  row {int(i)}{who}: native {a[i]:.8f} onnx {b[i]:.8f} "
                f"(calibrated {ca[i]:.8f} vs {cb[i]:.8f})"
            )
        raise ParityError(
            "ONNX parity gate failed: " + "; ".join(problems) + "\nworst rows:\n" + "\n".join(lines)
        )
    return report
