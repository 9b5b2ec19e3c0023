"""The weakness model as the backend loads it: calibration and action levels inside the graph.

The packaged ``model.onnx`` returns LightGBM's raw probability; serving calibrates it with
``serving.weakness_post.apply_calibration`` (one map, or one map per request *view*) and picks
the action level with ``action_levels``. The backend runs a plain ``session.run``, so this module
appends the same arithmetic to the graph, in float64 like numpy:

- ``platt``: ``1 / (1 + exp(-(a * log(q / (1 - q)) + b)))`` with ``q = clip(p, 1e-12, 1 - 1e-12)``;
- ``isotonic``: ``np.interp`` through the breakpoints (clipped outside them);
- ``identity``.

Per-view calibration (``calibration.json`` ``"views"``) becomes an input ``view_index`` (int64,
[N] or [1]): the position of the row's view in the metadata list ``calibration_views``; -1 (the
default) or any index outside the list takes the top-level map, as ``apply_calibration`` does
for ``views=None`` or an unlisted view.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from serving.onnx_files import WEAKNESS_BACKEND_FILE
from serving.weakness_post import validate_calibration, validate_thresholds

if TYPE_CHECKING:
    import onnx

WEAKNESS_FILE = WEAKNESS_BACKEND_FILE
VIEW_INPUT = "view_index"
PROBABILITY = "weakness_probability"
MIN_OPSET = 15
_EPS = 1e-12  # serving.weakness_post's clip before the logit

OUTPUT_DOC = {
    "label": "int64 [N]: 1 when the calibrated probability is >= 0.5",
    "probabilities": "float32 [N, 2]: [1 - p, p], p = calibrated P(fail) (the converter's layout)",
    PROBABILITY: "float64 [N]: calibrated probability of failing the next assessment, in [0, 1] "
    "(what the HTTP app returns)",
    "action_level": "int64 [N]: index into metadata action_labels (level i covers "
    "[threshold i-1, threshold i))",
}


class WeaknessGraphError(ValueError):
    """The artifact's graph or calibration cannot be folded into one backend graph."""


class _Builder:
    """Appends nodes and constants with unique names to one graph."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.graph = graph
        self.n = 0

    def name(self, hint: str) -> str:
        self.n += 1
        return f"bk/{hint}_{self.n}"

    def const(self, value: Any, dtype: Any, hint: str = "c") -> str:
        from onnx import numpy_helper

        name = self.name(hint)
        self.graph.initializer.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], out: str | None = None, **attrs: Any) -> str:
        from onnx import helper

        out = out or self.name(op_type.lower())
        self.graph.node.append(
            helper.make_node(op_type, list(inputs), [out], name=self.name(op_type), **attrs)
        )
        return out


def _platt(b: _Builder, p: str, cal: Mapping[str, Any]) -> str:
    q = b.op("Max", [p, b.const(_EPS, np.float64)])
    q = b.op("Min", [q, b.const(1.0 - _EPS, np.float64)])
    one = b.const(1.0, np.float64)
    logit = b.op("Log", [b.op("Div", [q, b.op("Sub", [one, q])])])
    z = b.op(
        "Add",
        [
            b.op("Mul", [b.const(float(cal["a"]), np.float64), logit]),
            b.const(float(cal["b"]), np.float64),
        ],
    )
    return b.op("Div", [one, b.op("Add", [one, b.op("Exp", [b.op("Neg", [z])])])])


def _isotonic(b: _Builder, p: str, cal: Mapping[str, Any]) -> str:
    """np.interp(p, x, y): segment j = last breakpoint <= p, clipped outside [x0, x_last]."""
    x = np.asarray(cal["x"], dtype=np.float64)
    y = np.asarray(cal["y"], dtype=np.float64)
    if x.size == 1:
        return b.op("Add", [b.op("Mul", [p, b.const(0.0, np.float64)]), b.const(y[0], np.float64)])
    dx = np.diff(x)
    # Zero-width segments are never selected (j is the LAST breakpoint <= p); slope 0 there.
    slope = np.divide(np.diff(y), dx, out=np.zeros_like(dx), where=dx > 0)
    col = b.op("Unsqueeze", [p, b.const([1], np.int64)])
    ge = b.op("Cast", [b.op("GreaterOrEqual", [col, b.const(x[None, :], np.float64)])], to=7)
    count = b.op("ReduceSum", [ge, b.const([1], np.int64)], keepdims=0)
    j = b.op("Sub", [count, b.const(1, np.int64)])
    j = b.op("Max", [b.op("Min", [j, b.const(x.size - 2, np.int64)]), b.const(0, np.int64)])
    xj = b.op("Gather", [b.const(x[:-1], np.float64), j])
    yj = b.op("Gather", [b.const(y[:-1], np.float64), j])
    sj = b.op("Gather", [b.const(slope, np.float64), j])
    inner = b.op("Add", [b.op("Mul", [sj, b.op("Sub", [p, xj])]), yj])
    low = b.op("Less", [p, b.const(x[0], np.float64)])
    high = b.op("GreaterOrEqual", [p, b.const(x[-1], np.float64)])
    out = b.op("Where", [high, b.const(y[-1], np.float64), inner])
    return b.op("Where", [low, b.const(y[0], np.float64), out])


def _one_map(b: _Builder, p: str, cal: Mapping[str, Any]) -> str:
    method = cal["method"]
    if method == "identity":
        return b.op("Identity", [p])
    if method == "platt":
        return _platt(b, p, cal)
    if method == "isotonic":
        return _isotonic(b, p, cal)
    raise WeaknessGraphError(  # validate_calibration refuses these first
        f"calibration.method {method!r} has no in-graph form (platt, isotonic, identity)"
    )


def calibration_views(calibration: Mapping[str, Any]) -> list[str]:
    """The per-view maps' names in ``view_index`` order (empty: one map for every row)."""
    return list((calibration.get("views") or {}).keys())


def build_backend_weakness(
    model: onnx.ModelProto,
    *,
    spec: Mapping[str, Any],
    calibration: Mapping[str, Any],
    thresholds: Sequence[float],
    labels: Sequence[str],
    probability_output: str = "probabilities",
    probability_column: int = 1,
    extra_metadata: Mapping[str, Any] | None = None,
) -> onnx.ModelProto:
    """A copy of ``model`` whose outputs are the calibrated probability and action level."""
    import onnx
    from onnx import TensorProto, helper

    validate_calibration(calibration)
    validate_thresholds(thresholds, labels)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    # onnxmltools records the lowest opset its nodes need (9 for a booster: Cast, Identity and
    # the ai.onnx.ml trees, unchanged since); the appended nodes use opset-13 forms (axes as
    # inputs). The parity gate compares the result with serving on the whole test split.
    for o in out.opset_import:
        if (o.domain or "") == "" and o.version < MIN_OPSET:
            o.version = MIN_OPSET
    if not any((o.domain or "") == "" for o in out.opset_import):
        out.opset_import.append(helper.make_opsetid("", MIN_OPSET))
    g = out.graph
    names = [o.name for o in g.output]
    if probability_output not in names:
        raise WeaknessGraphError(f"weakness model: outputs {names} lack {probability_output!r}")
    feature_names = list(spec["names"])
    width = g.input[0].type.tensor_type.shape.dim[1]
    if width.HasField("dim_value") and int(width.dim_value) != len(feature_names):
        raise WeaknessGraphError(
            f"weakness model: input width {width.dim_value} != {len(feature_names)} features"
        )
    # The converter's outputs become internal edges; the new ones take their public names.
    raw = {n: f"raw/{n}" for n in names}
    for node in g.node:
        node.output[:] = [raw.get(n, n) for n in node.output]
        node.input[:] = [raw.get(n, n) for n in node.input]
    del g.output[:]
    b = _Builder(g)
    p32 = b.op("Gather", [raw[probability_output], b.const(probability_column, np.int64)], axis=1)
    p = b.op("Cast", [p32], to=TensorProto.DOUBLE)
    views = calibration_views(calibration)
    top = _one_map(b, p, calibration)
    if views:
        per = [top] + [_one_map(b, p, calibration["views"][v]) for v in views]
        cols = [b.op("Unsqueeze", [c, b.const([1], np.int64)]) for c in per]
        stacked = b.op("Concat", cols, axis=1)
        idx = b.op("Add", [VIEW_INPUT, b.const(1, np.int64)])
        ok = b.op(
            "And",
            [
                b.op("GreaterOrEqual", [idx, b.const(0, np.int64)]),
                b.op("LessOrEqual", [idx, b.const(len(views), np.int64)]),
            ],
        )
        idx = b.op("Where", [ok, idx, b.const(0, np.int64)])
        n_rows = b.op("Shape", [p])
        shape = b.op("Concat", [n_rows, b.const([1], np.int64)], axis=0)
        idx2 = b.op("Expand", [b.op("Unsqueeze", [idx, b.const([1], np.int64)]), shape])
        picked = b.op("GatherElements", [stacked, idx2], axis=1)
        cal = b.op("Squeeze", [picked, b.const([1], np.int64)])
        g.input.append(helper.make_tensor_value_info(VIEW_INPUT, TensorProto.INT64, ["view_n"]))
        from onnx import numpy_helper

        g.initializer.append(numpy_helper.from_array(np.array([-1], np.int64), VIEW_INPUT))
    else:
        cal = top
    pc = b.op("Max", [b.op("Min", [cal, b.const(1.0, np.float64)]), b.const(0.0, np.float64)])
    b.op("Identity", [pc], PROBABILITY)
    q = b.op("Unsqueeze", [pc, b.const([1], np.int64)])
    pair = b.op("Concat", [b.op("Sub", [b.const(1.0, np.float64), q]), q], axis=1)
    b.op("Cast", [pair], "probabilities", to=TensorProto.FLOAT)
    half = b.op("GreaterOrEqual", [pc, b.const(0.5, np.float64)])
    b.op("Cast", [half], "label", to=TensorProto.INT64)
    t = np.asarray(list(thresholds), dtype=np.float64)[None, :]
    over = b.op("Cast", [b.op("GreaterOrEqual", [q, b.const(t, np.float64)])], to=TensorProto.INT64)
    b.op("ReduceSum", [over, b.const([1], np.int64)], "action_level", keepdims=0)
    g.output.extend(
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 2]),
            helper.make_tensor_value_info(PROBABILITY, TensorProto.DOUBLE, ["N"]),
            helper.make_tensor_value_info("action_level", TensorProto.INT64, ["N"]),
        ]
    )
    meta = {
        "feature_names": json.dumps(feature_names),
        "input_name": g.input[0].name,
        "action_thresholds": json.dumps([float(x) for x in thresholds]),
        "action_labels": json.dumps(list(labels)),
        "calibration": json.dumps(dict(calibration), sort_keys=True),
        "calibration_views": json.dumps(views),
        "outputs": json.dumps(OUTPUT_DOC, sort_keys=True),
        **{
            k: str(v) if isinstance(v, str) else json.dumps(v)
            for k, v in (extra_metadata or {}).items()
        },
    }
    del out.metadata_props[:]
    helper.set_model_props(out, meta)
    onnx.checker.check_model(out)
    return out


def run_backend_weakness(
    session: Any, rows: np.ndarray, view_index: Sequence[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(calibrated probability float64 [N], action level int64 [N]) from the backend graph."""
    feeds: dict[str, Any] = {session.get_inputs()[0].name: np.ascontiguousarray(rows, np.float32)}
    if view_index is not None:
        feeds[VIEW_INPUT] = np.asarray(list(view_index), dtype=np.int64)
    p, level = session.run([PROBABILITY, "action_level"], feeds)
    return np.asarray(p, dtype=np.float64), np.asarray(level, dtype=np.int64)
