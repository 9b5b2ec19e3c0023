"""`ludora-ml eval-kt`: the weakness model's code scored on a public knowledge-tracing split.

Train learners and test learners come from two TSV files (`user_id item_id timestamp correct
skill_id`, skill -> topic). Every answer is an assessment; the label is a wrong answer. Features
come from the project's feature code (`features.build.build_examples`) on each learner's own
earlier answers; peer statistics from train learners only. The booster uses the default
`train_weakness` params without a search, with early stopping on a learner-held-out part of the
train learners.

Train rows see peer (and, with ``item_difficulty``, item) statistics computed out-of-fold by
learner, never from their own answers, so the model learns how much to trust them exactly as it
will on unseen test learners.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from serving.weakness_post import apply_calibration
from training.weakness import (
    WeaknessConfig,
    fit_calibration,
    predict_raw,
    train_booster,
)

if TYPE_CHECKING:
    import pandas as pd

    from features.config import FeatureConfig

logger = logging.getLogger(__name__)

PEER_COLUMNS = ("peer_topic_mean", "topic_mean_minus_peer")
ITEM_FEATURES = ("item_peer_success", "item_peer_log_count", "item_minus_topic_peer")


@dataclass(frozen=True)
class KTSettings:
    """Knobs of the evaluation that are not model params (fixed, documented in docs/weakness.md)."""

    n_folds: int = 5
    early_stop_frac: float = 0.1
    item_prior_weight: float = 5.0
    seed: int = 0


def learner_folds(users: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold index per row, constant per learner (seeded permutation of the sorted learner ids)."""
    uniq, inverse = np.unique(users.astype(str), return_inverse=True)
    rng = np.random.default_rng(seed)
    fold_of_user = rng.permutation(uniq.size) % n_folds
    return fold_of_user[inverse]


def smoothed_rate(
    keys_fit: np.ndarray,
    success_fit: np.ndarray,
    keys_query: np.ndarray,
    prior: float | np.ndarray,
    weight: float,
) -> tuple[np.ndarray, np.ndarray]:
    """(sum + w * prior) / (count + w) and count of each query key among the fit rows.

    ``prior`` is one value or one per query row (hierarchical smoothing toward a coarser rate).
    """
    import pandas as pd

    stats = (
        pd.DataFrame({"k": keys_fit, "s": success_fit})
        .groupby("k", sort=False)["s"]
        .agg(["sum", "count"])
    )
    idx = stats.index.get_indexer(keys_query)
    found = idx >= 0
    total = np.zeros(keys_query.size)
    count = np.zeros(keys_query.size)
    total[found] = stats["sum"].to_numpy()[idx[found]]
    count[found] = stats["count"].to_numpy()[idx[found]]
    return (total + weight * prior) / (count + weight), count


def _bucket(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """Bucket index as text; NaN (no history) gets its own bucket 'n'."""
    out = np.digitize(np.nan_to_num(values, nan=-1e9), edges).astype(str)
    return np.where(np.isnan(values), "n", out)


def state_keys(ex: pd.DataFrame) -> dict[str, np.ndarray]:
    """Keys (topic + coarse learning state from the kernel's features) for peer state rates.

    PFA fits per-skill learning rates; here the same skill-specific learning curve comes from
    peers: how often other learners succeed on this topic after this many attempts, after
    this recent record, after this long away. The states are buckets of kernel features.
    """
    topic = ex["topic_id"].astype(str).to_numpy()
    n = _bucket(ex["topic_n_attempts"].to_numpy(dtype=np.float64), [1, 2, 3, 4, 6, 9, 14, 21, 31])
    last = _bucket(ex["topic_last_score"].to_numpy(dtype=np.float64), [0.5])
    last3 = _bucket(ex["topic_last3_mean"].to_numpy(dtype=np.float64), [0.17, 0.5, 0.84])
    last10 = _bucket(ex["topic_last10_mean"].to_numpy(dtype=np.float64), [0.1, 0.3, 0.5, 0.7, 0.9])
    gap = _bucket(ex["kt_topic_answers_since_last"].to_numpy(dtype=np.float64), [1.5, 5, 30, 200])
    level = _bucket(ex["learner_mean_score"].to_numpy(dtype=np.float64), [0.4, 0.55, 0.7, 0.85])
    return {
        "peer_state_success": _join(topic, n, last, last3),
        "peer_state_gap_success": _join(topic, n, gap),
        "peer_state_recent_success": _join(topic, last, last3, last10),
        "peer_state_level_success": _join(topic, level, n),
        # curricula order skills: how peers do on this topic right after the previous one
        "peer_transition_success": _join(topic, previous_topic(ex).astype(str)),
    }


def _join(*parts: np.ndarray) -> np.ndarray:
    """Row-wise 'a|b|c' keys from equal-length string arrays."""
    out = parts[0].astype(object)
    for part in parts[1:]:
        out = out + "|" + part.astype(object)
    return out


def _peer_columns(topic_mean: np.ndarray, peer: np.ndarray) -> dict[str, np.ndarray]:
    """The two shared peer features from a peer mean (same arithmetic as core.kernel)."""
    return {"peer_topic_mean": peer, "topic_mean_minus_peer": topic_mean - peer}


def add_peer_and_item_features(
    train: pd.DataFrame,
    test: pd.DataFrame,
    train_events: pd.DataFrame,
    *,
    peer_weight: float,
    item_difficulty: bool,
    settings: KTSettings,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Out-of-fold peer (and item) statistics on train rows; full-train statistics on test rows.

    ``train`` rows align with ``train_events`` (every KT answer is an example).
    """
    import pandas as pd

    users = train_events["user_id"].to_numpy().astype(str)
    topics = train_events["topic_id"].to_numpy().astype(str)
    items = train_events["item_id"].to_numpy().astype(str)
    score = train_events["score"].to_numpy(dtype=np.float64)
    folds = learner_folds(users, settings.n_folds, settings.seed)
    prior_all = float(score.mean())

    oof_peer = np.empty(len(train))
    oof_item = np.empty(len(train))
    oof_item_n = np.empty(len(train))
    for f in range(settings.n_folds):
        q = folds == f
        fit = ~q
        prior = float(score[fit].mean())
        oof_peer[q], _ = smoothed_rate(topics[fit], score[fit], topics[q], prior, peer_weight)
        if item_difficulty:
            oof_item[q], oof_item_n[q] = smoothed_rate(
                items[fit], score[fit], items[q], prior, settings.item_prior_weight
            )
    test_topics = test["topic_id"].to_numpy().astype(str)
    test_peer, _ = smoothed_rate(topics, score, test_topics, prior_all, peer_weight)

    train = train.copy()
    test = test.copy()
    for frame, peer in ((train, oof_peer), (test, test_peer)):
        tm = frame["topic_mean_score"].to_numpy(dtype=np.float64)
        for name, col in _peer_columns(tm, peer).items():
            frame[name] = col.astype(np.float32)

    # peers' success rate in the same learning state on the same topic (out-of-fold on train)
    keys_tr = state_keys(train)
    keys_te = state_keys(test)
    for name in keys_tr:
        oof = np.empty(len(train))
        for f in range(settings.n_folds):
            q = folds == f
            oof[q], _ = smoothed_rate(
                keys_tr[name][~q], score[~q], keys_tr[name][q], oof_peer[q], peer_weight
            )
        train[name] = oof.astype(np.float32)
        test[name] = smoothed_rate(keys_tr[name], score, keys_te[name], test_peer, peer_weight)[
            0
        ].astype(np.float32)
    train = pd.concat([train, residual_features(train, "peer_state_success")], axis=1)
    test = pd.concat([test, residual_features(test, "peer_state_success")], axis=1)
    if item_difficulty:
        test_items = test["item_id"].to_numpy().astype(str)
        test_item, test_item_n = smoothed_rate(
            items, score, test_items, prior_all, settings.item_prior_weight
        )
        for frame, rate, n in ((train, oof_item, oof_item_n), (test, test_item, test_item_n)):
            frame["item_peer_success"] = rate.astype(np.float32)
            frame["item_peer_log_count"] = np.log1p(n).astype(np.float32)
            frame["item_minus_topic_peer"] = (
                rate - frame["peer_topic_mean"].to_numpy(dtype=np.float64)
            ).astype(np.float32)
    return train, test


def _kernel_block(
    group_code: np.ndarray,
    step: np.ndarray,
    score: np.ndarray,
    windows: tuple[int, ...],
    half_life_steps: float,
    pass_mark: float,
) -> np.ndarray:
    """All kernel columns for every answer, grouped by ``group_code``, time = answer step."""
    from core.kernel import group_starts, kernel_columns, run_kernel

    order = np.lexsort((step, group_code))
    code_sorted = group_code[order]
    change = np.ones(order.size, dtype=bool)
    change[1:] = code_sorted[1:] != code_sorted[:-1]
    n = order.size
    out = run_kernel(
        starts=group_starts(change),
        ts=step[order],
        score=score[order],
        time_spent=np.full(n, np.nan),
        hints=np.full(n, np.nan),
        revisit=np.zeros(n, dtype=bool),
        contributes=np.ones(n, dtype=bool),
        is_query=np.ones(n, dtype=bool),
        windows=windows,
        rate=float(np.log(2.0) / half_life_steps),
        pass_mark=pass_mark,
        n_cols=len(kernel_columns(windows)),
    )
    back = np.empty(n, dtype=np.int64)
    back[order] = np.arange(n)
    return out[back]


# Kernel columns that carry information on 0/1 quiz data (time spent, hints, re-visits do not).
_KT_KERNEL_KEEP = (
    "n_attempts",
    "mean_score",
    "decayed_mean",
    "n_fails",
    "last_score",
    "hours_since_last",
)


# duplicates of shared features (same counts) or constant (the learner's previous answer is
# always one step back)
_DUP = {"kt_topic_n_attempts", "kt_learner_n_attempts", "kt_learner_hours_since_last"}


def answer_step(user_code: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """The learner's answer count as a clock: dense rank of the timestamp (ties stay together)."""
    import pandas as pd

    return (
        pd.DataFrame({"u": user_code, "t": ts})
        .groupby("u")["t"]
        .rank(method="dense")
        .to_numpy(dtype=np.int64)
    )


def previous_topic(ex: pd.DataFrame) -> np.ndarray:
    """Topic of the learner's previous answer ('' for the first), rows in ``ex`` order."""
    users = ex["user_id"].astype(str).to_numpy()
    topics = ex["topic_id"].astype(str).to_numpy().astype(object)
    order = np.lexsort((ex["timestamp"].to_numpy(dtype=np.int64), users))
    prev_sorted = np.empty(order.size, dtype=object)
    if order.size:
        prev_sorted[0] = ""
        prev_sorted[1:] = topics[order[:-1]]
        first = np.ones(order.size, dtype=bool)
        first[1:] = users[order[1:]] != users[order[:-1]]
        prev_sorted[first] = ""
    out = np.empty(order.size, dtype=object)
    out[order] = prev_sorted
    return out


def residual_features(ex: pd.DataFrame, expected_col: str) -> pd.DataFrame:
    """The learner's running mean of (score - peers' expected success), from the shared kernel.

    An ability estimate that accounts for which topics and states the learner met: per learner
    (half-life 10 answers, last 5/20/50) and per (learner, topic) (half-life 3, last 3/10).
    """
    import pandas as pd

    from core.kernel import kernel_columns

    user_code, _ = pd.factorize(ex["user_id"])
    topic_code, topics = pd.factorize(ex["topic_id"])
    step = answer_step(user_code, ex["timestamp"].to_numpy(dtype=np.int64))
    resid = ex["score"].to_numpy(dtype=np.float64) - ex[expected_col].to_numpy(dtype=np.float64)
    out: dict[str, np.ndarray] = {}
    blocks = (
        ("resid_learner_", user_code.astype(np.int64), (5, 20, 50), 10.0),
        (
            "resid_topic_",
            user_code.astype(np.int64) * max(len(topics), 1) + topic_code,
            (3, 10),
            3.0,
        ),
    )
    for prefix, code, windows, half_life in blocks:
        # pass_mark -10 so the (unused) fail count never triggers on residuals in [-1, 1]
        block = _kernel_block(code, step, resid, windows, half_life, -10.0)
        for j, name in enumerate(kernel_columns(windows)):
            if name in ("mean_score", "decayed_mean") or name.startswith("last"):
                out[prefix + name] = block[:, j].astype(np.float32)
    return pd.DataFrame(out, index=ex.index)


def kt_sequence_features(events: pd.DataFrame, pass_mark: float) -> pd.DataFrame:
    """Extra KT features from the shared kernel with the learner's answer count as the clock.

    KT files have no real time (or irregular time), so recency is measured in answers: a
    decayed mean with a half-life of a few answers and longer rolling windows, per learner
    (across skills) and per (learner, skill). ``hours_since_last`` becomes "answers since the
    learner last worked on this skill".
    """
    import pandas as pd

    from core.kernel import kernel_columns

    user_code, _ = pd.factorize(events["user_id"])
    topic_code, topics = pd.factorize(events["topic_id"])
    step = answer_step(user_code, events["timestamp"].to_numpy(dtype=np.int64))
    score = events["score"].to_numpy(dtype=np.float64)
    out: dict[str, np.ndarray] = {}
    blocks = (
        ("kt_learner_", user_code.astype(np.int64), (5, 20, 50), 5.0),
        ("kt_topic_", user_code.astype(np.int64) * max(len(topics), 1) + topic_code, (5, 20), 3.0),
    )
    for prefix, code, windows, half_life in blocks:
        cols = kernel_columns(windows)
        block = _kernel_block(code, step, score, windows, half_life, pass_mark)
        for j, name in enumerate(cols):
            if (name in _KT_KERNEL_KEEP or name.startswith("last")) and prefix + name not in _DUP:
                # hours_since_last is (step gap) / 3600 here: rescale to answers
                scale = 3600.0 if name == "hours_since_last" else 1.0
                label = "answers_since_last" if name == "hours_since_last" else name
                out[prefix + label] = (block[:, j] * scale).astype(np.float32)
    return pd.DataFrame(out)


def _examples(events: pd.DataFrame, feat_cfg: FeatureConfig, peer: dict[str, Any]) -> pd.DataFrame:
    """Shared feature code on KT events; keeps item_id (every KT row is one example, same order)."""
    import pandas as pd

    from features.build import build_examples

    ex = build_examples(events, None, cfg=feat_cfg, peer=peer)
    if len(ex) != len(events):
        raise ValueError(
            f"eval-kt: expected one example per answer, got {len(ex)} for {len(events)} answers "
            f"(are all activities '{feat_cfg.assessment_activities}'?)"
        )
    ex["item_id"] = events["item_id"].astype(str).to_numpy()
    extra = kt_sequence_features(events, feat_cfg.pass_mark)
    return pd.concat([ex, extra], axis=1)


def eval_kt(
    train_path: Path | str,
    test_path: Path | str,
    *,
    cfg: WeaknessConfig,
    feat_cfg: FeatureConfig,
    item_difficulty: bool = False,
    settings: KTSettings | None = None,
    reader: Callable[[Path], pd.DataFrame] | None = None,
) -> dict[str, Any]:
    """Train on the train learners, score every answer of the test learners; returns the metrics."""
    from sklearn.metrics import log_loss, roc_auc_score

    from features.build import spec_from_config
    from features.peer import compute_peer_table

    settings = settings or KTSettings(seed=cfg.seed)
    if reader is None:
        from data.sources import read_kt_tsv

        reader = read_kt_tsv
    t0 = time.perf_counter()
    ev_tr = reader(Path(train_path)).reset_index(drop=True)
    ev_te = reader(Path(test_path)).reset_index(drop=True)
    overlap = set(ev_tr["user_id"].astype(str)) & set(ev_te["user_id"].astype(str))
    if overlap:
        raise ValueError(
            f"{test_path}: learners {sorted(overlap)[:5]} also appear in {train_path}; "
            "test learners must be unseen"
        )
    peer = compute_peer_table(ev_tr, prior_weight=feat_cfg.peer_prior_weight)
    ex_tr = _examples(ev_tr, feat_cfg, peer)
    ex_te = _examples(ev_te, feat_cfg, peer)
    shared = (ex_tr.copy(), ex_te.copy())  # the shared features alone, for the summary views
    ex_tr, ex_te = add_peer_and_item_features(
        ex_tr,
        ex_te,
        ev_tr,
        peer_weight=feat_cfg.peer_prior_weight,
        item_difficulty=item_difficulty,
        settings=settings,
    )
    t_features = time.perf_counter() - t0
    meta = {"user_id", "topic_id", "timestamp", "score", "label", "p_fail_true", "item_id"}
    names = [c for c in ex_tr.columns if c not in meta]

    # early stopping on a learner-held-out part of the train learners (never the test learners)
    users = ex_tr["user_id"].to_numpy().astype(str)
    uniq = np.unique(users)
    rng = np.random.default_rng(settings.seed)
    n_es = max(1, round(settings.early_stop_frac * uniq.size))
    es_users = set(rng.choice(uniq, size=n_es, replace=False).tolist())
    is_es = np.isin(users, list(es_users))
    X = ex_tr[names].to_numpy(dtype=np.float32)
    y = ex_tr["label"].to_numpy(dtype=np.int8)
    booster = train_booster(
        (X[~is_es], y[~is_es]),
        (X[is_es], y[is_es]),
        params=cfg.base,
        feature_names=names,
        **cfg.fit_settings(monotone=False),
    )
    calibration = fit_calibration(predict_raw(booster, X[is_es]), y[is_es], cfg.calibration)
    X_te = ex_te[names].to_numpy(dtype=np.float32)
    y_te = ex_te["label"].to_numpy(dtype=np.int8)
    p_te = apply_calibration(predict_raw(booster, X_te), calibration)
    seconds = time.perf_counter() - t0
    result = {
        "auc": float(roc_auc_score(y_te, p_te)),
        "logloss": float(log_loss(y_te, np.clip(p_te, 1e-15, 1 - 1e-15), labels=[0, 1])),
        "n_train": len(y),
        "n_test": len(y_te),
        "n_train_learners": int(uniq.size),
        "n_test_learners": int(ex_te["user_id"].nunique()),
        "n_features": len(names),
        "features": names,
        "item_difficulty": bool(item_difficulty),
        "best_iteration": int(booster.best_iteration),
        "calibration": calibration["method"],
        "test_fail_rate": float(y_te.mean()),
        "seconds_features": round(t_features, 2),
        "seconds_total": round(seconds, 2),
    }
    logger.info(
        "eval-kt: auc %.4f logloss %.4f in %.1fs", result["auc"], result["logloss"], seconds
    )
    if cfg.views.names != ("full",):
        t1 = time.perf_counter()
        result["views"] = summary_views(
            ev_tr, ev_te, shared, spec_from_config(feat_cfg, peer), cfg, es_users, settings.seed
        )
        result["seconds_views"] = round(time.perf_counter() - t1, 2)
    return result


def summary_views(
    ev_tr: pd.DataFrame,
    ev_te: pd.DataFrame,
    examples: tuple[pd.DataFrame, pd.DataFrame],
    spec: dict[str, Any],
    cfg: WeaknessConfig,
    es_users: set[str],
    seed: int,
) -> dict[str, Any]:
    """The request views on the KT split: what the weakness model gets from summaries.

    A second booster on the shared features only (summaries cannot carry the KT sequence
    features), trained on view-augmented train rows exactly as `train_weakness` does (peer
    topic means in-sample), calibrated per view on the early-stopping learners and scored per
    view on every test answer: AUC, log loss, ECE.
    """
    from training.weakness_metrics import binary_metrics
    from training.weakness_views import (
        ViewBuilder,
        ViewSettings,
        all_views,
        assign_views,
        augmented_rows,
    )

    ex_tr, ex_te = examples
    names = list(spec["names"])
    vs = ViewSettings(recent_k=cfg.views.recent_k, spacing_s=cfg.views.spacing_s)
    b_tr = ViewBuilder(ev_tr, spec, vs)
    b_te = ViewBuilder(ev_te, spec, vs)
    views = b_tr.available(cfg.views.names)
    X_tr = ex_tr[names].to_numpy(dtype=np.float32)
    y_tr = ex_tr["label"].to_numpy(dtype=np.int8)
    which = assign_views(len(y_tr), views, cfg.views.full_share, seed)
    X_aug = augmented_rows(b_tr, X_tr, ex_tr, views, which)
    is_es = ex_tr["user_id"].astype(str).isin(es_users).to_numpy()
    es_keys = ex_tr[is_es].reset_index(drop=True)
    X_es = all_views(b_tr, X_tr[is_es], es_keys, views)
    booster = train_booster(
        (X_aug[~is_es], y_tr[~is_es]),
        (np.concatenate([X_es[v] for v in views]), np.tile(y_tr[is_es], len(views))),
        params=cfg.base,
        feature_names=names,
        **cfg.fit_settings(),
    )
    y_te = ex_te["label"].to_numpy(dtype=np.int8)
    X_te = all_views(b_te, ex_te[names].to_numpy(dtype=np.float32), ex_te, views)
    out: dict[str, Any] = {}
    for v in views:
        cal = fit_calibration(predict_raw(booster, X_es[v]), y_tr[is_es], cfg.calibration)
        p = apply_calibration(predict_raw(booster, X_te[v]), cal)
        m = binary_metrics(y_te, p, n_bins=cfg.ece_bins)
        out[v] = {k: m[k] for k in ("auc", "logloss", "ece", "brier")}
        logger.info("eval-kt view %s: auc %.4f ece %.4f", v, m["auc"], m["ece"])
    return out
