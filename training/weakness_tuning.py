"""Optuna search and the final fit of the weakness model (search -> refit -> calibrate -> score).

Validation is time-aware: every trial trains on (a row subsample of) the train split and is
scored on the val split, which holds later assessments; rows are never split at random.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from serving.weakness_post import action_level_index, apply_calibration
from training.weakness import (
    Split,
    WeaknessConfig,
    fit_calibration,
    global_importance,
    predict_raw,
    train_booster,
)
from training.weakness_metrics import (
    binary_metrics,
    calibration_table,
    nan_to_none,
    pr_table,
    roc_table,
)

if TYPE_CHECKING:
    import lightgbm as lgb
    import optuna
    import pandas as pd

logger = logging.getLogger(__name__)

# Called after each trial with (trial number, params, val AUC, best iteration, seconds).
TrialCallback = Callable[[int, dict[str, Any], float, int, float], None]
# Rows used for the global SHAP importance (pred_contrib is ~10x slower than predict).
_SHAP_ROWS = 20_000


def subsample_rows(n: int, max_rows: int, seed: int) -> np.ndarray:
    """Sorted indices of at most ``max_rows`` rows drawn without replacement (seeded)."""
    if n <= max_rows:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=max_rows, replace=False))


def suggest(trial: optuna.Trial, cfg: WeaknessConfig) -> dict[str, Any]:
    """Trial params: the search space over the fixed ``base`` values."""
    params: dict[str, Any] = dict(cfg.base)
    for name, dim in cfg.tuning.space.items():
        if dim.kind == "int":
            params[name] = trial.suggest_int(name, int(dim.low), int(dim.high), log=dim.log)
        else:
            params[name] = trial.suggest_float(name, dim.low, dim.high, log=dim.log)
    return params


def tune(
    train: Split,
    val: Split,
    names: Sequence[str],
    cfg: WeaknessConfig,
    on_trial: TrialCallback | None = None,
) -> tuple[dict[str, Any], optuna.Study | None]:
    """Seeded TPE search; returns the best params (``base`` when there are no trials)."""
    if cfg.tuning.n_trials == 0 or not cfg.tuning.space:
        return dict(cfg.base), None
    import optuna
    from sklearn.metrics import roc_auc_score

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    idx = subsample_rows(len(train.y), cfg.tuning.max_train_rows, cfg.seed)
    X_tr, y_tr = train.X[idx], train.y[idx]
    logger.info(
        "tuning on %d of %d train rows, %d trials", idx.size, len(train.y), cfg.tuning.n_trials
    )

    def objective(trial: optuna.Trial) -> float:
        params = suggest(trial, cfg)
        t0 = time.perf_counter()
        booster = train_booster(
            (X_tr, y_tr),
            (val.X, val.y),
            params=params,
            feature_names=names,
            **cfg.fit_settings(),
        )
        auc = float(roc_auc_score(val.y, predict_raw(booster, val.X)))
        seconds = time.perf_counter() - t0
        trial.set_user_attr("best_iteration", int(booster.best_iteration))
        trial.set_user_attr("seconds", seconds)
        logger.info(
            "trial %d: val auc %.4f (%d rounds, %.1fs)",
            trial.number,
            auc,
            booster.best_iteration,
            seconds,
        )
        if on_trial is not None:
            on_trial(trial.number, params, auc, int(booster.best_iteration), seconds)
        return auc

    sampler = optuna.samplers.TPESampler(seed=cfg.seed)
    study = optuna.create_study(direction="maximize", sampler=sampler, study_name="weakness")
    study.optimize(objective, n_trials=cfg.tuning.n_trials, timeout=cfg.tuning.timeout_s)
    best = dict(cfg.base)
    best.update(study.best_params)
    return best, study


def trials_table(study: optuna.Study | None) -> list[dict[str, Any]]:
    """One row per trial (number, value, params, best iteration, seconds): an MLflow artifact."""
    if study is None:
        return []
    rows = []
    for t in study.trials:
        row: dict[str, Any] = {"number": t.number, "state": t.state.name, "val_auc": t.value}
        row.update({f"param_{k}": v for k, v in t.params.items()})
        row.update(t.user_attrs)
        rows.append(row)
    return rows


@dataclass
class ViewData:
    """The examples as each request view shows them (`training.weakness_views`).

    ``train_X``: every train row in the view drawn for it (augmentation); ``val``: each view's
    rows of the same ``val_rows`` of the val split (early stopping on all of them together,
    per-view calibration on each); ``test``: each view's rows of every test row.
    """

    names: tuple[str, ...]
    train_X: np.ndarray
    train_view: np.ndarray
    val_rows: np.ndarray
    val: dict[str, np.ndarray]
    test: dict[str, np.ndarray]


@dataclass
class WeaknessResult:
    """Everything the stage writes: model, calibration, metrics, plot tables, study."""

    booster: lgb.Booster
    best_params: dict[str, Any]
    calibration: dict[str, Any]
    metrics: dict[str, Any]
    plots: dict[str, list[dict[str, Any]]]
    study: optuna.Study | None
    test_pred: pd.DataFrame


def fit_weakness(
    train: Split,
    val: Split,
    test: Split,
    names: Sequence[str],
    cfg: WeaknessConfig,
    on_trial: TrialCallback | None = None,
    views: ViewData | None = None,
    train_fn: Callable[..., lgb.Booster] | None = None,
) -> WeaknessResult:
    """Search, refit on the full train split with the best params, calibrate on val, score test.

    ``train_fn``: the final refit (default `train_booster`; ``engine: dask`` passes
    `training.weakness_dask.train_booster_dask` bound to a client). Trials stay local.

    With ``views``, training uses the view-augmented train rows, early stopping and the search
    all views of the val rows, and each view gets its own calibration (``calibration["views"]``)
    and test metrics (``metrics["views"]``); the headline metrics stay those of the full view.
    """
    from sklearn.metrics import roc_auc_score

    fit_train, fit_val = train, val
    if views is not None:
        fit_train = Split(X=views.train_X, y=train.y, meta=train.meta)
        val_y = val.y[views.val_rows]
        fit_val = Split(
            X=np.concatenate([views.val[v] for v in views.names]),
            y=np.tile(val_y, len(views.names)),
            meta=val.meta.iloc[:0],
        )
    best, study = tune(fit_train, fit_val, names, cfg, on_trial)
    t0 = time.perf_counter()
    booster = (train_fn or train_booster)(
        (fit_train.X, fit_train.y),
        (fit_val.X, fit_val.y),
        params=best,
        feature_names=names,
        **cfg.fit_settings(),
    )
    logger.info("final fit: %d rounds in %.1fs", booster.best_iteration, time.perf_counter() - t0)
    p_val = predict_raw(booster, val.X)
    calibration = fit_calibration(p_val, val.y, cfg.calibration)
    view_metrics: dict[str, Any] = {}
    view_plots: dict[str, list[dict[str, Any]]] = {}
    if views is not None:
        # the full view keeps the fit on every val row (the top-level map); the others are
        # fitted on their rows of the val subsample
        calibration["views"] = {
            v: dict(calibration)
            if v == "full"
            else fit_calibration(predict_raw(booster, views.val[v]), val_y, cfg.calibration)
            for v in views.names
        }
        for v in views.names:
            p_v = apply_calibration(predict_raw(booster, views.test[v]), calibration, v)
            view_metrics[v] = {
                **binary_metrics(test.y, p_v, n_bins=cfg.ece_bins),
                "n_test": len(test.y),
                "n_train_rows": int(np.count_nonzero(views.train_view == views.names.index(v))),
            }
            view_plots[v] = calibration_table(test.y, p_v, cfg.ece_bins)
    p_raw = predict_raw(booster, test.X)
    p_cal = apply_calibration(p_raw, calibration, "full" if views is not None else None)

    raw = binary_metrics(test.y, p_raw, n_bins=cfg.ece_bins)
    cal = binary_metrics(test.y, p_cal, n_bins=cfg.ece_bins)
    metrics: dict[str, Any] = {
        # Served probabilities are calibrated, so the headline figures are the calibrated ones.
        "auc": cal["auc"],
        "auc_raw": raw["auc"],
        "pr_auc": cal["pr_auc"],
        "logloss": cal["logloss"],
        "logloss_raw": raw["logloss"],
        "brier": cal["brier"],
        "ece_before": raw["ece"],
        "ece_after": cal["ece"],
        "positive_rate": cal["positive_rate"],
        "n_train": len(train.y),
        "n_val": len(val.y),
        "n_test": len(test.y),
        "best_iteration": int(booster.best_iteration),
        "val_auc": float(roc_auc_score(val.y, p_val)) if 0 < val.y.sum() < val.y.size else None,
        "oracle_auc": None,
        "auc_gap_to_oracle": None,
    }
    if "p_fail_true" in test.meta.columns:
        oracle = test.meta["p_fail_true"].to_numpy(dtype=np.float64)
        ok = np.isfinite(oracle)
        y_ok = test.y[ok]
        if ok.any() and 0 < y_ok.sum() < y_ok.size:
            metrics["oracle_auc"] = float(roc_auc_score(y_ok, oracle[ok]))
            metrics["auc_gap_to_oracle"] = metrics["oracle_auc"] - float(
                roc_auc_score(y_ok, p_cal[ok])
            )
            metrics["oracle_rows"] = int(ok.sum())
    levels = np.bincount(
        action_level_index(p_cal, cfg.action_levels.thresholds),
        minlength=len(cfg.action_levels.labels),
    )
    for label, count in zip(cfg.action_levels.labels, levels, strict=True):
        metrics[f"share_{label}"] = float(count / len(p_cal))
    if view_metrics:
        metrics["views"] = view_metrics

    shap_idx = subsample_rows(len(test.y), _SHAP_ROWS, cfg.seed)
    plots: dict[str, list[dict[str, Any]]] = {
        "roc": roc_table(test.y, p_cal),
        "pr": pr_table(test.y, p_cal),
        "calibration": [
            {**row, "stage": stage}
            for stage, p in (("before", p_raw), ("after", p_cal))
            for row in calibration_table(test.y, p, cfg.ece_bins)
        ],
        "importance": global_importance(booster, test.X[shap_idx], list(names)),
        "views": [{**row, "view": v} for v, rows in view_plots.items() for row in rows],
    }
    test_pred = test.meta.assign(p_raw=p_raw, p_calibrated=p_cal)
    return WeaknessResult(
        booster=booster,
        best_params=best,
        calibration=calibration,
        metrics=nan_to_none(metrics),
        plots=plots,
        study=study,
        test_pred=test_pred,
    )
