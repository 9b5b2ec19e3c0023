"""Calibration apply and action levels: the functions serving and the pipeline share."""

from __future__ import annotations

import numpy as np
import pytest

from serving.weakness_post import (
    CalibrationError,
    ThresholdError,
    action_levels,
    apply_calibration,
    validate_calibration,
)

T = (0.3, 0.5, 0.7)
L = ("none", "review", "practice", "intervene")


@pytest.mark.parametrize(
    ("p", "level"),
    [
        (0.0, "none"),
        (0.2999999, "none"),
        (0.3, "review"),  # lower bound belongs to the higher level
        (0.4999, "review"),
        (0.5, "practice"),
        (0.7, "intervene"),
        (1.0, "intervene"),
    ],
)
def test_action_level_boundaries(p: float, level: str) -> None:
    assert action_levels([p], T, L) == [level]


def test_action_levels_vector_order() -> None:
    assert action_levels(np.array([0.9, 0.1, 0.55]), T, L) == ["intervene", "none", "practice"]


@pytest.mark.parametrize(
    ("thresholds", "labels", "match"),
    [
        ((0.5, 0.3, 0.7), L, "strictly increasing"),
        ((0.3, 0.3, 0.7), L, "strictly increasing"),
        ((0.0, 0.5, 0.7), L, r"in \(0, 1\)"),
        ((0.3, 0.5, 1.0), L, r"in \(0, 1\)"),
        ((0.3, 0.5), L, "labels"),
        ((), ("none",), "at least one"),
        ((0.3, 0.5, 0.7), ("a", "a", "b", "c"), "distinct"),
    ],
)
def test_invalid_thresholds(thresholds: tuple, labels: tuple, match: str) -> None:
    with pytest.raises(ThresholdError, match=match):
        action_levels([0.5], thresholds, labels)


def test_probability_out_of_range_rejected() -> None:
    with pytest.raises(ThresholdError, match="p:"):
        action_levels([1.2], T, L)


def test_isotonic_matches_sklearn() -> None:
    from sklearn.isotonic import IsotonicRegression

    rng = np.random.default_rng(0)
    p = rng.uniform(size=400)
    y = (rng.uniform(size=400) < p**2).astype(float)
    iso = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(p, y)
    cal = {"method": "isotonic", "x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()}
    q = np.concatenate([rng.uniform(-0.1, 1.1, size=300), [0.0, 1.0]])
    np.testing.assert_allclose(apply_calibration(q, cal), iso.predict(q), rtol=0, atol=1e-12)


def test_platt_matches_sklearn_logistic() -> None:
    from sklearn.linear_model import LogisticRegression

    from training.weakness import fit_calibration

    rng = np.random.default_rng(1)
    p = rng.uniform(0.01, 0.99, size=500)
    y = (rng.uniform(size=500) < p).astype(int)
    cal = fit_calibration(p, y, "platt")
    z = np.log(p / (1 - p)).reshape(-1, 1)
    lr = LogisticRegression(C=1e6, max_iter=1000).fit(z, y)
    np.testing.assert_allclose(apply_calibration(p, cal), lr.predict_proba(z)[:, 1], atol=1e-9)


def test_identity_and_shape() -> None:
    p = np.array([[0.1, 0.9]])
    out = apply_calibration(p, {"method": "identity"})
    assert out.shape == (1, 2)
    np.testing.assert_array_equal(out, p)


@pytest.mark.parametrize(
    ("cal", "match"),
    [
        ({"method": "spline"}, "calibration.method"),
        ({"method": "isotonic", "x": [0.1, 0.2]}, "calibration.y"),
        ({"method": "isotonic", "x": [0.2, 0.1], "y": [0.1, 0.2]}, "non-decreasing"),
        ({"method": "isotonic", "x": [0.1, 0.2], "y": [0.3, 0.2]}, "calibration.y"),
        ({"method": "platt", "a": 1.0}, "calibration.b"),
        ({"method": "platt", "a": float("nan"), "b": 0.0}, "finite"),
    ],
)
def test_invalid_calibration(cal: dict, match: str) -> None:
    with pytest.raises(CalibrationError, match=match):
        validate_calibration(cal)
