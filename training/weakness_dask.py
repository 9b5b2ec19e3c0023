"""The final weakness fit on Dask (``engine: dask``): `lightgbm.dask.DaskLGBMClassifier`.

Same LightGBM parameters as the local `training.weakness.train_booster` (`lgb_params`, class
weights, monotone constraints); the model comes back as a plain `lightgbm.Booster`
(`.to_local().booster_`), so calibration, metrics, plots, MLflow and the ONNX export run on it
unchanged. Distributed LightGBM (data-parallel tree learner) builds histograms per worker and
merges them, so its trees differ slightly from a single-process fit: the tests state the AUC gap.

Early stopping: lightgbm.dask gives each worker only its own parts of an eval set, so a
stopping callback could stop workers at different rounds. The fit runs ``num_boost_round``
rounds and the best iteration is chosen afterwards, on the whole validation split in this
process, with LightGBM's own rule (the first metric, binary log loss, ``early_stopping_rounds``
rounds without a strict improvement).
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from training.weakness import fit_setup

if TYPE_CHECKING:
    import lightgbm as lgb

logger = logging.getLogger(__name__)


def _log_loss(y: np.ndarray, raw: np.ndarray) -> float:
    """Binary log loss from raw scores, computed as LightGBM's metric does (mean)."""
    p = 1.0 / (1.0 + np.exp(-raw))
    eps = 1e-15
    p = np.clip(p, eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def best_iteration(
    booster: lgb.Booster, X_val: np.ndarray, y_val: np.ndarray, early_stopping_rounds: int
) -> tuple[int, list[float]]:
    """1-based iteration LightGBM's early stopping would keep, and the val losses seen."""
    raw = np.zeros(len(y_val), dtype=np.float64)
    losses: list[float] = []
    best_i, best_loss = 0, math.inf
    y = np.asarray(y_val, dtype=np.float64)
    for i in range(booster.num_trees()):
        raw += np.asarray(
            booster.predict(X_val, start_iteration=i, num_iteration=1, raw_score=True)
        )
        loss = _log_loss(y, raw)
        losses.append(loss)
        if loss < best_loss:
            best_i, best_loss = i, loss
        elif i - best_i >= early_stopping_rounds:
            break
    return best_i + 1, losses


def train_booster_dask(
    client: Any,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    *,
    num_boost_round: int,
    early_stopping_rounds: int,
    n_partitions: int | None = None,
    **settings: Any,
) -> lgb.Booster:
    """`training.weakness.train_booster`'s contract on a Dask cluster (see the module doc).

    ``settings``: the other keywords of `train_booster` (params, feature names, imbalance,
    seed, threads, monotone constraints), turned into LightGBM's parameters by the same
    `training.weakness.fit_setup`, so both engines fit with the same settings.
    ``n_partitions``: chunks of the train rows (default: one per worker); ``num_threads`` is
    per worker.
    """
    import dask.array as da
    from lightgbm.dask import DaskLGBMClassifier

    X_tr, y_tr = train
    X_va, y_va = val
    full, weight, names = fit_setup(y_tr, **settings)
    full.pop("first_metric_only", None)  # metrics are not evaluated during the Dask fit
    full.pop("metric", None)
    full.pop("num_threads", None)  # lightgbm.dask uses each worker's own thread count
    n_workers = max(len(client.scheduler_info().get("workers", {})), 1)
    parts = n_partitions or n_workers
    rows = max(1, math.ceil(len(y_tr) / parts))
    X = da.from_array(np.ascontiguousarray(X_tr, dtype=np.float32), chunks=(rows, X_tr.shape[1]))
    y = da.from_array(np.asarray(y_tr), chunks=(rows,))
    w = None if weight is None else da.from_array(weight, chunks=(rows,))
    t0 = time.perf_counter()
    model = DaskLGBMClassifier(client=client, n_estimators=num_boost_round, **full)
    with warnings.catch_warnings():
        # each worker trains with its own thread count; the sklearn default n_jobs is ignored
        warnings.filterwarnings("ignore", message="Parameter n_jobs will be ignored")
        model.fit(X, y, sample_weight=w, feature_name=names)
    booster = model.to_local().booster_
    best, losses = best_iteration(booster, X_va, y_va, early_stopping_rounds)
    booster.best_iteration = best
    logger.info(
        "dask fit: %d rounds on %d workers in %.1fs; best iteration %d (val logloss %.5f)",
        booster.num_trees(),
        n_workers,
        time.perf_counter() - t0,
        best,
        losses[best - 1] if losses else float("nan"),
    )
    return booster
