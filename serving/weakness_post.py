"""Post-processing of the weakness model's raw probability: calibration and action levels.

Numpy only: the training pipeline, the export parity gate and the serving path all call these
same functions, so the probability a teacher sees is exactly the one the pipeline evaluated.
The calibration is a JSON-able dict stored next to the model (``calibration.json``):

- ``{"method": "isotonic", "x": [...], "y": [...]}``: piecewise-linear map through the isotonic
  fit's breakpoints (``np.interp``, the same rule scikit-learn's ``IsotonicRegression.predict``
  uses with ``out_of_bounds="clip"``);
- ``{"method": "platt", "a": a, "b": b}``: ``sigmoid(a * logit(p) + b)``;
- ``{"method": "identity"}``: no calibration.

Any of them may carry ``"views": {view: <calibration dict without views>}``: one map per request
view (`core.summary.VIEWS`: full history, recent scores, averages with counts, ...), fitted on
that view's validation rows. A row of a listed view uses its map; other rows the top-level one.
The pipeline writes Platt maps throughout: ``{"method": "platt", "a", "b", "views": {"averages":
{"method": "platt", "a", "b"}, ...}}``, so a backend export needs one (a, b) pair per view.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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


def validate_calibration(calibration: Mapping[str, Any], where: str = "calibration") -> None:
    """Raise CalibrationError naming the field when ``calibration`` cannot be applied."""
    if not isinstance(calibration, Mapping):
        raise CalibrationError(f"{where}: expected a mapping, got {type(calibration).__name__}")
    views = calibration.get("views")
    if views is not None:
        if where != "calibration" or not isinstance(views, Mapping):
            raise CalibrationError(f"{where}.views: expected a mapping of view -> calibration")
        for name, sub in views.items():
            if not isinstance(name, str) or not name:
                raise CalibrationError(f"{where}.views: view names must be non-empty strings")
            validate_calibration(sub, f"{where}.views[{name!r}]")
    _validate_one(calibration, where)


def _validate_one(calibration: Mapping[str, Any], where: str) -> None:
    """Check one map's method and parameters."""
    method = calibration.get("method")
    if method not in CALIBRATION_METHODS:
        raise CalibrationError(f"{where}.method: {method!r} not one of {list(CALIBRATION_METHODS)}")
    if method == "isotonic":
        for key in ("x", "y"):
            if key not in calibration:
                raise CalibrationError(f"{where}.{key}: missing for method 'isotonic'")
        x = np.asarray(calibration["x"], dtype=np.float64)
        y = np.asarray(calibration["y"], dtype=np.float64)
        if x.ndim != 1 or x.shape != y.shape or x.size < 1:
            raise CalibrationError(
                f"{where}.x/y: need two 1-D lists of the same non-zero length, "
                f"got {x.shape} and {y.shape}"
            )
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            raise CalibrationError(f"{where}.x/y: values must be finite")
        if np.any(np.diff(x) < 0):
            raise CalibrationError(f"{where}.x: breakpoints must be non-decreasing")
        if np.any(np.diff(y) < 0) or y.min() < 0 or y.max() > 1:
            raise CalibrationError(f"{where}.y: must be non-decreasing and in [0, 1]")
    elif method == "platt":
        for key in ("a", "b"):
            value = calibration.get(key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise CalibrationError(f"{where}.{key}: expected a number, got {value!r}")
            if not np.isfinite(value):
                raise CalibrationError(f"{where}.{key}: must be finite, got {value!r}")


def apply_calibration(
    p_raw: Any, calibration: Mapping[str, Any], views: str | Sequence[str] | None = None
) -> np.ndarray:
    """Map raw model probabilities to calibrated ones (float64 array of the same shape).

    ``views``: one view for all rows or one per row; each row uses its view's map when the
    calibration has one, else the top-level map (also when ``views`` is None).
    """
    validate_calibration(calibration)
    per_view = calibration.get("views") or {}
    if views is None or not per_view:
        return _apply_one(p_raw, calibration)
    p = np.asarray(p_raw, dtype=np.float64)
    if isinstance(views, str):
        return _apply_one(p, per_view.get(views, calibration))
    names = np.asarray(list(views), dtype=object)
    if names.shape != p.reshape(-1).shape:
        raise ValueError(f"views: {names.size} given for {p.size} probabilities")
    flat = p.reshape(-1)
    out = _apply_one(flat, calibration)
    for name, sub in per_view.items():
        rows = names == name
        if rows.any():
            out[rows] = _apply_one(flat[rows], sub)
    return out.reshape(p.shape)


def _apply_one(p_raw: Any, calibration: Mapping[str, Any]) -> np.ndarray:
    """One calibration map (the top-level fields of ``calibration``)."""
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


@dataclass(frozen=True)
class ActionLevels:
    """Suggested action levels: ``len(thresholds) + 1`` labels, level i covers [t[i-1], t[i]).

    The one encoding of the levels everywhere they are stored: ``train_weakness.action_levels``
    in params.yaml and the artifact's ``thresholds.json`` are both
    ``{"thresholds": [0.3, 0.5, 0.7], "labels": ["none", "review", "practice", "intervene"]}``.
    The one rule: built from params (``build_config``: pydantic checks the types, then this
    ``__post_init__``) or from an artifact (``ActionLevels.from_json``), never checked elsewhere.
    """

    thresholds: tuple[float, ...]
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        t = np.asarray(list(self.thresholds), dtype=np.float64)
        if t.ndim != 1 or t.size < 1:
            raise ThresholdError(
                f"thresholds: need at least one value, got {list(self.thresholds)}"
            )
        if not np.all(np.isfinite(t)) or t.min() <= 0.0 or t.max() >= 1.0:
            raise ThresholdError(f"thresholds: every value must lie in (0, 1), got {t.tolist()}")
        if np.any(np.diff(t) <= 0):
            raise ThresholdError(f"thresholds: must be strictly increasing, got {t.tolist()}")
        labels = self.labels
        if len(labels) != t.size + 1:
            raise ThresholdError(
                f"labels: need len(thresholds) + 1 = {t.size + 1} labels, got {len(labels)}"
            )
        if len(set(labels)) != len(labels) or not all(isinstance(x, str) and x for x in labels):
            raise ThresholdError(f"labels: must be distinct non-empty strings, got {list(labels)}")

    @classmethod
    def from_json(cls, levels: Any) -> ActionLevels:
        """From the JSON form ``{"thresholds": [...], "labels": [...]}`` (``thresholds.json``)."""
        if not isinstance(levels, Mapping):
            raise ThresholdError(f"expected an object {{thresholds, labels}}, got {levels!r}")
        return cls(tuple(levels.get("thresholds", ())), tuple(levels.get("labels", ())))

    def to_json(self) -> dict[str, list[Any]]:
        """The JSON form (``thresholds.json``)."""
        return {"thresholds": list(self.thresholds), "labels": list(self.labels)}


def validate_thresholds(thresholds: Sequence[float], labels: Sequence[str]) -> None:
    """Raise ThresholdError unless (thresholds, labels) make :class:`ActionLevels`."""
    ActionLevels(tuple(thresholds), tuple(labels))


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
