"""Metrics and plot tables of the weakness model: AUC, PR-AUC, log loss, Brier, ECE, curves.

Kept apart from training so evaluation code (eval-kt, export, reports) can reuse it without
pulling LightGBM.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def _check_binary(y_true: Any, p: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=np.float64).reshape(-1)
    q = np.asarray(p, dtype=np.float64).reshape(-1)
    if y.shape != q.shape:
        raise ValueError(f"y_true and p differ in length: {y.size} vs {q.size}")
    if y.size == 0:
        raise ValueError("y_true is empty")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("y_true: labels must be 0 or 1")
    if not np.all(np.isfinite(q)) or q.min() < 0 or q.max() > 1:
        raise ValueError("p: probabilities must be finite and in [0, 1]")
    return y, q


def expected_calibration_error(y_true: Any, p: Any, n_bins: int) -> float:
    """ECE with ``n_bins`` equal-width bins on [0, 1]: sum_b n_b/N * |mean(y)_b - mean(p)_b|.

    p == 1.0 falls in the last bin (bins are [i/n, (i+1)/n), the last one closed).
    """
    if n_bins < 1:
        raise ValueError(f"n_bins: must be >= 1, got {n_bins}")
    y, q = _check_binary(y_true, p)
    idx = np.minimum((q * n_bins).astype(np.int64), n_bins - 1)
    # n_b/N * |mean_y - mean_p| == |sum_y - sum_p| / N in every bin
    sum_y = np.bincount(idx, weights=y, minlength=n_bins)
    sum_p = np.bincount(idx, weights=q, minlength=n_bins)
    return float(np.sum(np.abs(sum_y - sum_p)) / y.size)


def calibration_table(y_true: Any, p: Any, n_bins: int) -> list[dict[str, float]]:
    """Per non-empty equal-width bin: mean predicted, observed rate and count (reliability plot)."""
    y, q = _check_binary(y_true, p)
    idx = np.minimum((q * n_bins).astype(np.int64), n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    sum_y = np.bincount(idx, weights=y, minlength=n_bins)
    sum_p = np.bincount(idx, weights=q, minlength=n_bins)
    return [
        {
            "bin": int(b),
            "mean_predicted": float(sum_p[b] / count[b]),
            "observed_rate": float(sum_y[b] / count[b]),
            "count": int(count[b]),
        }
        for b in range(n_bins)
        if count[b] > 0
    ]


def binary_metrics(y_true: Any, p: Any, *, n_bins: int) -> dict[str, float]:
    """AUC, PR-AUC (average precision), log loss, Brier, ECE and the positive rate."""
    from sklearn.metrics import (
        average_precision_score,
        brier_score_loss,
        log_loss,
        roc_auc_score,
    )

    y, q = _check_binary(y_true, p)
    both = 0 < y.sum() < y.size
    return {
        "auc": float(roc_auc_score(y, q)) if both else math.nan,
        "pr_auc": float(average_precision_score(y, q)) if both else math.nan,
        "logloss": float(log_loss(y, np.clip(q, 1e-15, 1 - 1e-15), labels=[0, 1])),
        "brier": float(brier_score_loss(y, q)),
        "ece": expected_calibration_error(y, q, n_bins),
        "positive_rate": float(y.mean()),
    }


def _thin(n: int, max_points: int) -> np.ndarray:
    """Indices of at most ``max_points`` evenly spread points, always keeping both ends."""
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(np.int64))


def roc_table(y_true: Any, p: Any, max_points: int = 300) -> list[dict[str, float]]:
    """ROC curve points (fpr, tpr, threshold), thinned for a DVC plot."""
    from sklearn.metrics import roc_curve

    y, q = _check_binary(y_true, p)
    fpr, tpr, thr = roc_curve(y, q)
    keep = _thin(fpr.size, max_points)
    return [
        {"fpr": float(fpr[i]), "tpr": float(tpr[i]), "threshold": float(min(thr[i], 1.0))}
        for i in keep
    ]


def pr_table(y_true: Any, p: Any, max_points: int = 300) -> list[dict[str, float]]:
    """Precision-recall curve points (recall, precision), thinned for a DVC plot."""
    from sklearn.metrics import precision_recall_curve

    y, q = _check_binary(y_true, p)
    precision, recall, _ = precision_recall_curve(y, q)
    keep = _thin(precision.size, max_points)
    return [{"recall": float(recall[i]), "precision": float(precision[i])} for i in keep]


def nan_to_none(obj: Any) -> Any:
    """Replace NaN floats by None (JSON null) recursively, since metrics files reject NaN."""
    if isinstance(obj, dict):
        return {k: nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [nan_to_none(v) for v in obj]
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return obj
