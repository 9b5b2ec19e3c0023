"""Post-processing of the weakness model's raw probability: calibration and action levels.

Numpy only: the training pipeline, the export parity gate and the serving path all call these
same functions, so the probability a teacher sees is exactly the one the pipeline evaluated.
The calibration is a JSON-able dict stored next to the model (``calibration.json``):

- ``{"method": "isotonic", "x": [...], "y": [...]}``: piecewise-linear map through the isotonic
  fit's breakpoints (``np.interp``, the same rule scikit-learn's ``IsotonicRegression.predict``
  uses with ``out_of_bounds="clip"``);
- ``{"method": "platt", "a": a, "b": b}``: ``sigmoid(a * logit(p) + b)``;
- ``{"method": "identity"}``: no calibration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

CALIBRATION_METHODS: tuple[str, ...] = ("isotonic", "platt", "identity")
# Clip before logit so p in {0, 1} stays finite (raw LightGBM probabilities never reach 0/1
# in float64, but ONNX float32 outputs can).
_EPS = 1e-12


class CalibrationError(ValueError):
    """A calibration dict is malformed (unknown method, bad breakpoints, non-finite values)."""


class ThresholdError(ValueError):
    """Action thresholds or labels are invalid."""


def validate_calibration(calibration: Mapping[str, Any]) -> None:
    """Raise CalibrationError naming the field when ``calibration`` cannot be applied."""
    if not isinstance(calibration, Mapping):
        raise CalibrationError(f"calibration: expected a mapping, got {type(calibration).__name__}")
    method = calibration.get("method")
    if method not in CALIBRATION_METHODS:
        raise CalibrationError(
            f"calibration.method: {method!r} not one of {list(CALIBRATION_METHODS)}"
        )
    if method == "isotonic":
        for key in ("x", "y"):
            if key not in calibration:
                raise CalibrationError(f"calibration.{key}: missing for method 'isotonic'")
        x = np.asarray(calibration["x"], dtype=np.float64)
        y = np.asarray(calibration["y"], dtype=np.float64)
        if x.ndim != 1 or x.shape != y.shape or x.size < 1:
            raise CalibrationError(
                f"calibration.x/y: need two 1-D lists of the same non-zero length, "
                f"got {x.shape} and {y.shape}"
            )
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            raise CalibrationError("calibration.x/y: values must be finite")
        if np.any(np.diff(x) < 0):
            raise CalibrationError("calibration.x: breakpoints must be non-decreasing")
        if np.any(np.diff(y) < 0) or y.min() < 0 or y.max() > 1:
            raise CalibrationError("calibration.y: must be non-decreasing and in [0, 1]")
    elif method == "platt":
        for key in ("a", "b"):
            value = calibration.get(key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise CalibrationError(f"calibration.{key}: expected a number, got {value!r}")
            if not np.isfinite(value):
                raise CalibrationError(f"calibration.{key}: must be finite, got {value!r}")


def apply_calibration(p_raw: Any, calibration: Mapping[str, Any]) -> np.ndarray:
    """Map raw model probabilities to calibrated ones (float64 array of the same shape)."""
    validate_calibration(calibration)
    p = np.asarray(p_raw, dtype=np.float64)
    method = calibration["method"]
    if method == "identity":
        return p.copy()
    if method == "isotonic":
        x = np.asarray(calibration["x"], dtype=np.float64)
        y = np.asarray(calibration["y"], dtype=np.float64)
        return np.interp(p, x, y)
    a = float(calibration["a"])
    b = float(calibration["b"])
    q = np.clip(p, _EPS, 1.0 - _EPS)
    z = a * np.log(q / (1.0 - q)) + b
    return 1.0 / (1.0 + np.exp(-z))


def validate_thresholds(thresholds: Sequence[float], labels: Sequence[str]) -> None:
    """Thresholds strictly increasing in (0, 1) and exactly one more label than thresholds."""
    t = np.asarray(list(thresholds), dtype=np.float64)
    if t.ndim != 1 or t.size < 1:
        raise ThresholdError(f"thresholds: need at least one value, got {list(thresholds)}")
    if not np.all(np.isfinite(t)) or t.min() <= 0.0 or t.max() >= 1.0:
        raise ThresholdError(f"thresholds: every value must lie in (0, 1), got {t.tolist()}")
    if np.any(np.diff(t) <= 0):
        raise ThresholdError(f"thresholds: must be strictly increasing, got {t.tolist()}")
    if len(labels) != t.size + 1:
        raise ThresholdError(
            f"labels: need len(thresholds) + 1 = {t.size + 1} labels, got {len(labels)}"
        )
    if len(set(labels)) != len(labels) or not all(isinstance(x, str) and x for x in labels):
        raise ThresholdError(f"labels: must be distinct non-empty strings, got {list(labels)}")


def action_level_index(p: Any, thresholds: Sequence[float]) -> np.ndarray:
    """Index of the level of each probability: level i covers [t[i-1], t[i]) (lower bound in)."""
    t = np.asarray(list(thresholds), dtype=np.float64)
    return np.searchsorted(t, np.asarray(p, dtype=np.float64), side="right")


def action_levels(p: Any, thresholds: Sequence[float], labels: Sequence[str]) -> list[str]:
    """Suggested action level of each probability, e.g. none < 0.3 <= review < 0.5 <= ..."""
    validate_thresholds(thresholds, labels)
    arr = np.asarray(p, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(arr)) or arr.min(initial=0.0) < 0 or arr.max(initial=0.0) > 1:
        raise ThresholdError("p: probabilities must be finite and in [0, 1]")
    return [labels[i] for i in action_level_index(arr, thresholds)]
