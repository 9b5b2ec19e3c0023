"""Weakness predictor: LightGBM on the feature splits, calibration on val, explanation helpers.

The stage (``pipelines/train_weakness.py``) and ``ludora-ml eval-kt`` share this code: the typed
config built from the ``train_weakness`` params section, the deterministic booster fit with early
stopping, the calibration fit (applied later by ``serving.weakness_post.apply_calibration``) and
the SHAP-style explanations from LightGBM's ``pred_contrib``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from pydantic import AfterValidator, BeforeValidator

from data.params import ConfigError, FieldProblem, Range, range_problem
from serving.weakness_post import ActionLevels, CalibrationError

if TYPE_CHECKING:
    import lightgbm as lgb
    import pandas as pd

logger = logging.getLogger(__name__)

# Columns every example table carries before the features (docs/design.md).
META_COLUMNS: tuple[str, ...] = (
    "user_id",
    "topic_id",
    "timestamp",
    "score",
    "label",
    "p_fail_true",
)
# LightGBM parameter -> (lo, hi, integer, lo_open), from LightGBM's parameter docs: the keys
# `base` may fix and the search may set, and the one range table both are checked against.
LIGHTGBM_RANGES: dict[str, tuple[float | None, float | None, bool, bool]] = {
    "num_leaves": (2, 131_072, True, False),
    "learning_rate": (0.0, None, False, True),
    "min_data_in_leaf": (0, None, True, False),
    "feature_fraction": (0.0, 1.0, False, True),
    "bagging_fraction": (0.0, 1.0, False, True),
    "bagging_freq": (0, None, True, False),
    "lambda_l1": (0.0, None, False, False),
    "lambda_l2": (0.0, None, False, False),
    "min_gain_to_split": (0.0, None, False, False),
    "max_depth": (-1, None, True, False),
    "max_bin": (2, None, True, False),
}
TUNABLE: tuple[str, ...] = tuple(LIGHTGBM_RANGES)
_INT_KEYS = {k for k, (_, _, integer, _) in LIGHTGBM_RANGES.items() if integer}


def _lightgbm_value(key: str, value: Any, at: tuple[str, ...]) -> None:
    if key not in LIGHTGBM_RANGES:
        raise FieldProblem(f"unknown key; allowed: {list(LIGHTGBM_RANGES)}", at=at)
    lo, hi, integer, lo_open = LIGHTGBM_RANGES[key]
    problem = range_problem(value, lo=lo, hi=hi, integer=integer, lo_open=lo_open)
    if problem:
        raise FieldProblem(problem, at=at)


def _check_base(values: Any) -> Any:
    """``train_weakness.base``: known LightGBM keys, each in its range."""
    if not isinstance(values, Mapping):
        raise FieldProblem(f"must be a mapping of LightGBM params, got {values!r}")
    for key, value in values.items():
        _lightgbm_value(key, value, (key,))
    return values


@dataclass(frozen=True)
class SearchDim:
    """One dimension of the Optuna search space (checked by :func:`_check_space`)."""

    low: float
    high: float
    log: bool = False
    kind: Literal["int", "float"] = "float"


def _check_space(values: Any) -> Any:
    """``train_weakness.tuning.space``: known keys, low < high in the key's range -> SearchDim."""
    if not isinstance(values, Mapping):
        raise FieldProblem(f"must be a mapping of search dimensions, got {values!r}")
    dims: dict[str, SearchDim] = {}
    for key, spec in values.items():
        if key not in LIGHTGBM_RANGES:
            raise FieldProblem(f"unknown key; allowed: {list(LIGHTGBM_RANGES)}", at=(key,))
        if not isinstance(spec, Mapping):
            raise FieldProblem(
                f"must be a mapping {{low, high, log, kind}}, got {spec!r}", at=(key,)
            )
        unknown = sorted(set(spec) - {"low", "high", "log", "kind"})
        if unknown:
            raise FieldProblem("unknown key; allowed: [low, high, log, kind]", at=(key, unknown[0]))
        kind = spec.get("kind", "float")
        if kind not in ("int", "float"):
            raise FieldProblem(f"must be one of ['int', 'float'], got {kind!r}", at=(key, "kind"))
        for end in ("low", "high"):
            if end not in spec:
                raise FieldProblem(f"missing required key '{end}'", at=(key,))
            _lightgbm_value(key, spec[end], (key, end))
        if not spec["low"] < spec["high"]:
            raise FieldProblem(
                f"low must be < high, got low={spec['low']} high={spec['high']}", at=(key,)
            )
        log = spec.get("log", False)
        if not isinstance(log, bool):
            raise FieldProblem(f"must be true or false, got {log!r}", at=(key, "log"))
        if log and not spec["low"] > 0:
            raise FieldProblem(f"log scale needs low > 0, got {spec['low']}", at=(key, "low"))
        dims[key] = SearchDim(low=spec["low"], high=spec["high"], log=log, kind=kind)
    return dims


# Every field is required: params.yaml is the one source of the values (a test keeps a default,
# where one exists, equal to params.yaml). Ranges are the fields' validators, checked once when
# `build_config` loads the section.


@dataclass(frozen=True)
class TuningConfig:
    """Optuna TPE search: trial count, row subsample for trials, search space."""

    n_trials: Annotated[int, Range(0, 1000, integer=True)]
    max_train_rows: Annotated[int, Range(100, integer=True)]
    timeout_s: Annotated[float, Range(0, lo_open=True)]
    space: Annotated[dict[str, Any], BeforeValidator(_check_space)]


# Default monotone constraints (feature name -> +1 / -1; others free): more evidence of success
# (a higher score of any kind, more attempts or successes) never raises the failure probability;
# more fails never lowers it. Names absent from a model's features are ignored.
MONOTONE_DEFAULT: dict[str, int] = {
    "topic_n_attempts": -1,
    "topic_mean_score": -1,
    "topic_decayed_mean": -1,
    "topic_decayed_weight": -1,
    "topic_n_fails": 1,
    "topic_n_successes": -1,
    "topic_last_score": -1,
    "topic_last3_mean": -1,
    "topic_last10_mean": -1,
    "learner_n_attempts": -1,
    "learner_mean_score": -1,
    "learner_decayed_mean": -1,
    "topic_mean_minus_peer": -1,
}


def _check_views(names: Any) -> Any:
    from training.weakness_views import check_views

    try:
        return tuple(check_views(list(names), ""))
    except ValueError as exc:
        raise FieldProblem(str(exc).removeprefix(": ")) from None


@dataclass(frozen=True)
class ViewsConfig:
    """Request views the model is trained, calibrated and scored on (docs/weakness.md)."""

    names: Annotated[tuple[str, ...], AfterValidator(_check_views)]
    full_share: Annotated[float, Range(0, 1)]
    recent_k: Annotated[int, Range(1, 100, integer=True)]
    spacing_s: Annotated[int, Range(1, 10**7, integer=True)]
    max_val_rows: Annotated[int, Range(100, integer=True)]


_Count = Annotated[int, Range(1, integer=True)]


@dataclass(frozen=True)
class WeaknessConfig:
    """The ``train_weakness`` params section, validated once at the edge."""

    seed: int
    num_threads: _Count
    imbalance: Literal["none", "balanced", "scale_pos_weight"]
    num_boost_round: Annotated[int, Range(1, 100_000, integer=True)]
    early_stopping_rounds: _Count
    base: Annotated[dict[str, Any], BeforeValidator(_check_base)]
    tuning: TuningConfig
    calibration: Literal["isotonic", "platt", "none"]
    ece_bins: Annotated[int, Range(2, 1000, integer=True)]
    action_levels: ActionLevels
    monotone_method: Literal["basic", "intermediate", "advanced"]
    views: ViewsConfig
    # not in params.yaml: the code's constraints unless a `monotone:` map is given there
    monotone: dict[str, Annotated[int, Range(-1, 1, integer=True, note="-1, 0 or 1")]] = field(
        default_factory=lambda: dict(MONOTONE_DEFAULT)
    )

    def fit_settings(self, *, monotone: bool = True) -> dict[str, Any]:
        """The `train_booster` keywords this section fixes, the same for every fit of a run.

        ``monotone=False`` leaves the constraints out: eval-kt's headline model is fitted without
        them, so its published figure stays comparable with earlier runs.
        """
        out: dict[str, Any] = {
            "imbalance": self.imbalance,
            "seed": self.seed,
            "num_threads": self.num_threads,
            "num_boost_round": self.num_boost_round,
            "early_stopping_rounds": self.early_stopping_rounds,
        }
        if monotone:
            out.update(monotone=self.monotone, monotone_method=self.monotone_method)
        return out


# ----------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Split:
    """One example table as arrays: features (float32), labels (0/1) and the metadata frame."""

    X: np.ndarray
    y: np.ndarray
    meta: pd.DataFrame


def split_from_frame(df: pd.DataFrame, names: Sequence[str], where: str) -> Split:
    """Check an example table against the spec's feature names and turn it into arrays."""
    missing = [c for c in ("label", *names) if c not in df.columns]
    if missing:
        raise ValueError(f"{where}: missing column(s) {missing[:10]} (feature spec order)")
    if len(df) == 0:
        raise ValueError(f"{where}: no rows")
    y = df["label"].to_numpy()
    bad = np.flatnonzero(~np.isin(y, (0, 1)))
    if bad.size:
        raise ValueError(
            f"{where}: column 'label' must be 0 or 1; rows {bad[:5].tolist()} hold "
            f"{y[bad[:5]].tolist()}"
        )
    X = df[list(names)].to_numpy(dtype=np.float32)
    inf_rows = np.flatnonzero(np.isinf(X).any(axis=1))
    if inf_rows.size:
        col = int(np.flatnonzero(np.isinf(X[inf_rows[0]]))[0])
        raise ValueError(
            f"{where}: row {int(inf_rows[0])} column '{names[col]}' is infinite "
            f"({inf_rows.size} rows); features must be finite or NaN"
        )
    meta_cols = [c for c in META_COLUMNS if c in df.columns]
    return Split(X=X, y=y.astype(np.int8), meta=df[meta_cols].reset_index(drop=True))


def load_split(path: Path | str, names: Sequence[str]) -> Split:
    """Read one Parquet example table (``outputs/features/<split>.parquet``)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: example table not found (run the features stage)")
    return split_from_frame(pd.read_parquet(path), names, str(path))


# ----------------------------------------------------------------------------- training


def monotone_vector(monotone: Mapping[str, int], names: Sequence[str]) -> list[int]:
    """LightGBM's ``monotone_constraints`` in feature order (0 for unconstrained features)."""
    return [int(monotone.get(str(n), 0)) for n in names]


def lgb_params(
    overrides: Mapping[str, Any], *, seed: int, num_threads: int, scale_pos_weight: float | None
) -> dict[str, Any]:
    """Full LightGBM parameter dict: deterministic, col-wise, quiet, plus the tuned values."""
    params: dict[str, Any] = {
        "objective": "binary",
        "metric": ["binary_logloss", "auc"],
        "first_metric_only": True,
        "verbosity": -1,
        "seed": seed,
        "deterministic": True,
        "force_col_wise": True,
        "num_threads": num_threads,
    }
    for key, value in overrides.items():
        params[key] = round(value) if key in _INT_KEYS else float(value)
    if params.get("bagging_fraction", 1.0) < 1.0 and "bagging_freq" not in params:
        params["bagging_freq"] = 1
    if scale_pos_weight is not None:
        params["scale_pos_weight"] = scale_pos_weight
    return params


def class_weights(y: np.ndarray, imbalance: str) -> tuple[np.ndarray | None, float | None]:
    """Sample weights (``balanced``) or ``scale_pos_weight`` from the train labels."""
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    if imbalance == "none" or n_pos == 0 or n_neg == 0:
        return None, None
    if imbalance == "balanced":
        w = np.where(y == 1, y.size / (2.0 * n_pos), y.size / (2.0 * n_neg))
        return w.astype(np.float64), None
    if imbalance == "scale_pos_weight":
        return None, n_neg / n_pos
    raise ConfigError(f"train_weakness.imbalance: {imbalance!r} not one of none/balanced/...")


def fit_setup(
    y_train: np.ndarray,
    *,
    params: Mapping[str, Any],
    feature_names: Sequence[str],
    imbalance: str,
    seed: int,
    num_threads: int,
    monotone: Mapping[str, int] | None = None,
    monotone_method: str = "intermediate",
) -> tuple[dict[str, Any], np.ndarray | None, list[str]]:
    """(LightGBM params, sample weights, feature names) of the final fit, shared by the local
    and the Dask fit so both engines train with the same settings."""
    weight, spw = class_weights(y_train, imbalance)
    full = lgb_params(params, seed=seed, num_threads=num_threads, scale_pos_weight=spw)
    names = [str(n) for n in feature_names]
    constraints = monotone_vector(monotone or {}, names)
    if any(constraints):
        full["monotone_constraints"] = constraints
        full["monotone_constraints_method"] = monotone_method
    return full, weight, names


def train_booster(
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    *,
    params: Mapping[str, Any],
    feature_names: Sequence[str],
    imbalance: str,
    seed: int,
    num_threads: int,
    num_boost_round: int,
    early_stopping_rounds: int,
    monotone: Mapping[str, int] | None = None,
    monotone_method: str = "intermediate",
) -> lgb.Booster:
    """Fit a booster on ``train`` with early stopping on ``val`` (later in time).

    ``monotone``: feature name -> +1 / -1 constraint (LightGBM ``monotone_constraints``).
    """
    import lightgbm as lgb

    X_tr, y_tr = train
    X_va, y_va = val
    full, weight, names = fit_setup(
        y_tr,
        params=params,
        feature_names=feature_names,
        imbalance=imbalance,
        seed=seed,
        num_threads=num_threads,
        monotone=monotone,
        monotone_method=monotone_method,
    )
    dtrain = lgb.Dataset(
        X_tr, label=y_tr, weight=weight, feature_name=names, free_raw_data=True, params=full
    )
    dval = lgb.Dataset(X_va, label=y_va, reference=dtrain, feature_name=names)
    booster = lgb.train(
        full,
        dtrain,
        num_boost_round=num_boost_round,
        valid_sets=[dval],
        valid_names=["val"],
        callbacks=[lgb.early_stopping(early_stopping_rounds, verbose=False)],
    )
    return booster


def predict_raw(booster: lgb.Booster, X: np.ndarray) -> np.ndarray:
    """Uncalibrated probability of a fail at the best iteration (float64)."""
    return np.asarray(booster.predict(X, num_iteration=booster.best_iteration), dtype=np.float64)


# ----------------------------------------------------------------------------- calibration


def fit_calibration(p_raw: np.ndarray, y: np.ndarray, method: str) -> dict[str, Any]:
    """Fit the calibration map on held-out predictions; returns the JSON-able dict.

    Platt (the default) is smooth and strictly increasing: it keeps the ranking (AUC), fixes the
    logit shift that class weighting introduces, and keeps the ONNX parity gate meaningful on
    calibrated probabilities (float32 noise of ~1e-7 stays ~1e-7). Isotonic is piecewise linear
    between the fit's block ends; its ramps between adjacent blocks can be steep enough to blow a
    1e-7 raw difference up to ~1e-4 (measured), so it is opt-in.
    """
    p = np.asarray(p_raw, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if method == "none":
        return {"method": "identity"}
    if y.min() == y.max():
        raise CalibrationError("calibration: validation labels are all one class")
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)
        return {
            "method": "isotonic",
            "x": [float(v) for v in iso.X_thresholds_],
            "y": [float(v) for v in iso.y_thresholds_],
            "n_fit": int(p.size),
        }
    if method == "platt":
        from sklearn.linear_model import LogisticRegression

        q = np.clip(p, 1e-12, 1 - 1e-12)
        z = np.log(q / (1 - q)).reshape(-1, 1)
        lr = LogisticRegression(C=1e6, max_iter=1000).fit(z, y)
        return {
            "method": "platt",
            "a": float(lr.coef_[0, 0]),
            "b": float(lr.intercept_[0]),
            "n_fit": int(p.size),
        }
    raise ConfigError(f"train_weakness.calibration: {method!r} not one of isotonic/platt/none")


# ----------------------------------------------------------------------------- explanation


def shap_values(booster: lgb.Booster, X: np.ndarray) -> np.ndarray:
    """Per-row feature contributions in log-odds (last column = bias), from ``pred_contrib``."""
    return np.asarray(
        booster.predict(X, num_iteration=booster.best_iteration, pred_contrib=True),
        dtype=np.float64,
    )


def global_importance(
    booster: lgb.Booster, X: np.ndarray, names: Sequence[str]
) -> list[dict[str, Any]]:
    """Mean |SHAP| per feature, largest first (the global importance plot's data)."""
    contrib = shap_values(booster, X)[:, : len(names)]
    mean_abs = np.abs(contrib).mean(axis=0)
    order = np.argsort(-mean_abs, kind="stable")
    return [{"feature": names[i], "mean_abs_shap": float(mean_abs[i])} for i in order]


def explain(
    booster: lgb.Booster, x_row: np.ndarray, names: Sequence[str], top_k: int = 5
) -> list[tuple[str, float]]:
    """The ``top_k`` features that pushed this prediction most (log-odds contribution, signed)."""
    x = np.asarray(x_row, dtype=np.float32).reshape(1, -1)
    if x.shape[1] != len(names):
        raise ValueError(f"x_row: expected {len(names)} features, got {x.shape[1]}")
    contrib = shap_values(booster, x)[0, : len(names)]
    order = np.argsort(-np.abs(contrib), kind="stable")[: max(top_k, 0)]
    return [(str(names[i]), float(contrib[i])) for i in order]


def as_dict(cfg: Any) -> dict[str, Any]:
    """A config dataclass as plain JSON-able data (tuples to lists, nested dataclasses)."""
    return dataclasses.asdict(cfg)
