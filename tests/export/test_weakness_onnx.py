"""ONNX export of the weakness booster: exact parity, and the gate failing on an altered model."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from export.parity import ParityError
from export.weakness_onnx import convert_booster, onnx_fail_probability, parity_check
from tests.fixtures.weakness import NAMES, fit_booster, make_frame
from training.weakness import predict_raw

SPEC = {"input_name": "features", "names": NAMES}
PLATT = {"method": "platt", "a": 1.0, "b": 0.0}


def _gate(
    native: np.ndarray,
    onnx: np.ndarray,
    meta: pd.DataFrame,
    *,
    calibration: dict[str, Any] = PLATT,
    max_flips: int = 0,
    **kw: Any,
) -> Any:
    """``parity_check`` at the export stage's thresholds and a 1e-5 raw-probability bound."""
    return parity_check(
        native,
        onnx,
        calibration=calibration,
        thresholds=[0.3, 0.5, 0.7],
        meta=meta,
        max_abs_diff=1e-5,
        max_flips=max_flips,
        **kw,
    )


@pytest.fixture(scope="module")
def booster_and_test():
    tr, va, te = make_frame(2000, 1), make_frame(500, 2), make_frame(800, 3)
    booster = fit_booster(
        (tr[NAMES].to_numpy(np.float32), tr["label"].to_numpy()),
        (va[NAMES].to_numpy(np.float32), va["label"].to_numpy()),
        NAMES,
        params={"num_leaves": 15, "learning_rate": 0.1},
        rounds=40,
        stop=40,
        seed=0,
    )
    return booster, te


def test_onnx_matches_native(booster_and_test) -> None:
    booster, te = booster_and_test
    X = te[NAMES].to_numpy(np.float32)
    model = convert_booster(booster, SPEC, target_opset=15)
    assert model.graph.input[0].name == "features"
    p_onnx = onnx_fail_probability(model.SerializeToString(), X, "features")
    report = _gate(predict_raw(booster, X), p_onnx, te)
    assert report.max_abs_diff_raw < 1e-6
    assert report.total_flips == 0


def test_parity_gate_fails_on_altered_leaf(booster_and_test) -> None:
    booster, te = booster_and_test
    X = te[NAMES].to_numpy(np.float32)
    model = convert_booster(booster, SPEC, target_opset=15)
    node = next(n for n in model.graph.node if n.op_type.startswith("TreeEnsemble"))
    weights = next(a for a in node.attribute if a.name == "class_weights")
    p_native = predict_raw(booster, X)
    # perturb the leaf most rows fall into so the damage is visible on the test split
    weights.floats[0] += 3.0
    p_onnx = onnx_fail_probability(model.SerializeToString(), X, "features")
    changed = np.flatnonzero(np.abs(p_onnx - p_native) > 1e-3)
    assert changed.size > 0
    with pytest.raises(ParityError) as err:
        _gate(p_native, p_onnx, te, n_worst=3)
    msg = str(err.value)
    worst = int(np.argmax(np.abs(p_onnx - p_native)))
    assert f"row {worst} user {te['user_id'].iloc[worst]} topic {te['topic_id'].iloc[worst]}" in msg
    assert f"{p_native[worst]:.8f}" in msg and f"{p_onnx[worst]:.8f}" in msg
    assert "max |p_onnx - p_native| raw" in msg


def test_flips_counted_per_threshold() -> None:
    meta = pd.DataFrame({"user_id": ["a", "b", "c"], "topic_id": ["x", "y", "z"]})
    native = np.array([0.29999999, 0.6, 0.8])
    onnx = np.array([0.30000001, 0.6, 0.8])
    ident = {"method": "identity"}
    with pytest.raises(ParityError, match=r"1 decision flips .*'0.3': 1") as err:
        _gate(native, onnx, meta, calibration=ident)
    assert "row 0 user a topic x" in str(err.value)
    report = _gate(native, onnx, meta, calibration=ident, max_flips=1)
    assert report.flips_per_threshold == {"0.3": 1, "0.5": 0, "0.7": 0}
    assert report.level_flips == 1


def test_spec_width_mismatch_rejected(booster_and_test) -> None:
    booster, _ = booster_and_test
    with pytest.raises(ValueError, match="feature spec lists 4 features"):
        convert_booster(booster, {"input_name": "features", "names": NAMES[:4]}, target_opset=15)


def test_the_same_booster_exports_the_same_bytes(booster_and_test, tmp_path) -> None:
    """onnxmltools does not list the opsets in a stable order ("" then "ai.onnx.ml" in one
    process, the other way round in another; seen after a refactor of a stage's imports, which
    packaged the same model as a new version). Opsets come sorted by domain, and fresh
    interpreters that import differently give the same bytes."""
    import os
    import subprocess
    import sys

    booster, _ = booster_and_test
    model = convert_booster(booster, SPEC, target_opset=15)
    assert [o.domain for o in model.opset_import] == sorted(o.domain for o in model.opset_import)
    path = tmp_path / "model.txt"
    booster.save_model(str(path))
    code = (
        "{first}import json, sys, lightgbm as lgb\n"
        "from export.weakness_onnx import convert_booster\n"
        f"b = lgb.Booster(model_file={str(path)!r})\n"
        f"spec = json.loads({json.dumps(json.dumps(SPEC))})\n"
        "sys.stdout.buffer.write(convert_booster(b, spec, target_opset=15).SerializeToString())\n"
    )
    blobs = {
        subprocess.run(
            [sys.executable, "-c", code.replace("{first}", first)],
            capture_output=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for first, seed in (("", "1"), ("import onnxruntime\n", "2"), ("import skl2onnx\n", "3"))
    }
    assert len(blobs) == 1
