"""Request views of the weakness examples: what serving would compute from each summary shape.

For an example (learner, topic, t) the learner's events before t are summarised the way the
backend summarises them (per topic: average score, attempt count, last quiz scores, minutes
spent; a flat list of the last quiz scores), the summary goes through
`core.summary.summary_events` (the rule serving's `build_history` applies to a request) and
the pseudo-events through the shared batch kernel (`features.build.compute_features`, equal bit
for bit to serving's `core.online.request_features`). So a view's rows are exactly the
feature rows serving builds for that request shape (tested against serving's own code in
tests/training/test_weakness_views.py).

Views (`core.summary.VIEWS`): ``full`` (every attempt: the feature tables themselves),
``full_notime`` (attempts without time spent), ``recent_scores`` (each topic's last
``recent_k`` quiz scores), ``averages_counts`` (average + attempt count per topic),
``averages`` (average only), ``averages_flat`` (averages + the learner's last ``recent_k`` quiz
scores as a flat list); each summary view also ``_time`` (+ minutes spent per topic).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import numpy as np

from core.summary import FULL, MAX_SUMMARY_COUNT, UNASSIGNED_TOPIC, VIEWS, summary_events

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

_TS_BITS = 34  # timestamps < 2**34 s (year 2514) share an int64 key with the group code
_CHUNK = 8_000  # examples per summary look-up
_MAX_EVENTS = 2_000_000  # pseudo-events per kernel call (memory: ~100 bytes each)


@dataclass(frozen=True)
class ViewSettings:
    """How examples are summarised: recent scores per list and the pseudo-event spacing."""

    recent_k: int = 10
    spacing_s: int = 86_400


def check_views(views: Sequence[str], where: str) -> tuple[str, ...]:
    """Views named in params, validated (``full`` first and always present)."""
    unknown = [v for v in views if v not in VIEWS]
    if unknown:
        raise ValueError(f"{where}: unknown view(s) {unknown}; allowed {list(VIEWS)}")
    return (FULL, *[v for v in dict.fromkeys(views) if v != FULL])


class _History:
    """The events sorted for prefix look-ups: per (learner, topic), per learner quizzes."""

    def __init__(self, events: pd.DataFrame, activities: Sequence[str]) -> None:
        import pandas as pd

        self.topics = sorted(set(events["topic_id"].astype(str)))
        self.topic_index = pd.Index(self.topics)
        self.users = pd.Index(pd.unique(events["user_id"].astype(str)))
        u = self.users.get_indexer(events["user_id"].astype(str)).astype(np.int64)
        tc = self.topic_index.get_indexer(events["topic_id"].astype(str)).astype(np.int64)
        ts = events["timestamp"].to_numpy(dtype=np.int64)
        if ts.size and (ts.min() < 0 or ts.max() >= 1 << _TS_BITS):
            raise ValueError(f"events: timestamps must be in [0, 2**{_TS_BITS}) for views")
        self.n_topics = len(self.topics)
        pair = u * self.n_topics + tc
        key = (pair << _TS_BITS) | ts
        order = np.argsort(key, kind="stable")
        self.key = key[order]
        score = events["score"].to_numpy(dtype=np.float64)[order]
        spent = (
            events["time_spent_s"].to_numpy(dtype=np.float64)[order]
            if "time_spent_s" in events.columns
            else np.full(order.size, np.nan)
        )
        self.cum_score = np.concatenate([[0.0], np.cumsum(score)])
        self.cum_spent = np.concatenate([[0.0], np.cumsum(np.nan_to_num(spent))])
        self.cum_spent_n = np.concatenate([[0], np.cumsum(~np.isnan(spent))])
        quiz = events["activity"].isin(list(activities)).to_numpy()
        qorder = order[quiz[order]]
        self.qkey = key[qorder]
        self.qscore = events["score"].to_numpy(dtype=np.float64)[qorder]
        ukey = (u[quiz] << _TS_BITS) | ts[quiz]
        uorder = np.argsort(ukey, kind="stable")
        self.ukey = ukey[uorder]
        self.uscore = events["score"].to_numpy(dtype=np.float64)[quiz][uorder]
        # sources without time spent (NaN, or 0 everywhere as in knowledge-tracing files)
        self.has_time = bool(np.nan_to_num(spent).max(initial=0.0) > 0)


def _last_k(
    keys: np.ndarray, scores: np.ndarray, group: np.ndarray, t: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """CSR offsets and values of the last <= k scores of each group strictly before t."""
    end = np.searchsorted(keys, (group << _TS_BITS) | t, side="left")
    begin = np.searchsorted(keys, group << _TS_BITS, side="left")
    n = np.minimum(end - begin, k)
    offsets = np.concatenate([[0], np.cumsum(n)])
    pos = np.arange(int(offsets[-1])) - np.repeat(offsets[:-1], n) + np.repeat(end - n, n)
    return offsets, scores[pos]


def _summary_matrix(
    hist: _History, users: np.ndarray, t: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per (example, topic): event count, average, minutes spent (NaN: unknown), quiz count."""
    pair = users[:, None] * hist.n_topics + np.arange(hist.n_topics)[None, :]
    begin = np.searchsorted(hist.key, pair << _TS_BITS, side="left")
    end = np.searchsorted(hist.key, (pair << _TS_BITS) | t[:, None], side="left")
    count = end - begin
    with np.errstate(invalid="ignore", divide="ignore"):
        average = (hist.cum_score[end] - hist.cum_score[begin]) / count
        known = hist.cum_spent_n[end] - hist.cum_spent_n[begin]
        minutes = np.where(known > 0, (hist.cum_spent[end] - hist.cum_spent[begin]) / 60.0, np.nan)
    qbegin = np.searchsorted(hist.qkey, pair << _TS_BITS, side="left")
    qend = np.searchsorted(hist.qkey, (pair << _TS_BITS) | t[:, None], side="left")
    return count, average, minutes, qend - qbegin


def _event_estimate(
    view: str, hist: _History, users: np.ndarray, t: np.ndarray, settings: ViewSettings
) -> np.ndarray:
    """Pseudo-events each example's request makes in this view (an upper bound)."""
    count, _, _, n_quiz = _summary_matrix(hist, users, t)
    if view.startswith("recent_scores"):
        return np.minimum(n_quiz, settings.recent_k).sum(axis=1)
    if view.startswith("averages_counts"):
        return np.minimum(count, MAX_SUMMARY_COUNT).sum(axis=1)
    return (count > 0).sum(axis=1) + settings.recent_k


def _view_events(
    view: str,
    hist: _History,
    users: np.ndarray,
    t: np.ndarray,
    settings: ViewSettings,
) -> Any:
    """`summary_events` of the requests this view sends for the examples (users, t)."""
    count, average, minutes, n_quiz = _summary_matrix(hist, users, t)
    timed = view.endswith("_time")
    if view.startswith("recent_scores"):
        ex, topic = np.nonzero(n_quiz > 0)
        pair = users[ex] * hist.n_topics + topic
        recent_offsets, recent = _last_k(hist.qkey, hist.qscore, pair, t[ex], settings.recent_k)
        avg = np.full(ex.size, np.nan)
        cnt = np.zeros(ex.size, dtype=np.int64)
    else:
        ex, topic = np.nonzero(count > 0)
        avg = average[ex, topic]
        cnt = (
            count[ex, topic] if view.startswith("averages_counts") else np.zeros(ex.size, np.int64)
        )
        recent_offsets, recent = np.zeros(ex.size + 1, dtype=np.int64), np.zeros(0)
    if view.startswith("averages_flat"):
        flat_offsets, flat = _last_k(hist.ukey, hist.uscore, users, t, settings.recent_k)
    else:
        flat_offsets, flat = np.zeros(t.size + 1, dtype=np.int64), np.zeros(0)
    return summary_events(
        now=t,
        spacing_s=settings.spacing_s,
        topic_request=ex,
        topic_code=topic,
        average=avg,
        count=cnt,
        minutes=minutes[ex, topic] if timed else np.full(ex.size, np.nan),
        recent_offsets=recent_offsets,
        recent_scores=recent,
        flat_offsets=flat_offsets,
        flat_scores=flat,
    )


def _features_of_events(
    ev: Any,
    hist: _History,
    target_topic: np.ndarray,
    t: np.ndarray,
    spec: Mapping[str, Any],
) -> np.ndarray:
    """Shared batch kernel on the pseudo-events, one query per example at its time t."""
    import pandas as pd

    from features.build import compute_features

    names = [*hist.topics, UNASSIGNED_TOPIC]
    n_ev, n_q = ev.request.shape[0], t.shape[0]
    topic_codes = np.concatenate([np.where(ev.topic < 0, len(names) - 1, ev.topic), target_topic])
    query_activity = spec["assessment_activities"][0]
    frame = pd.DataFrame(
        {
            "user_id": np.concatenate([ev.request, np.arange(n_q)]),
            "topic_id": pd.Categorical.from_codes(topic_codes, categories=names),
            "timestamp": np.concatenate([ev.timestamp, t]),
            # pseudo-events are not examples; the query rows are (features see only before t)
            "activity": pd.Categorical.from_codes(
                np.concatenate([np.zeros(n_ev, np.int8), np.ones(n_q, np.int8)]),
                categories=["summary", query_activity],
            ),
            "score": np.concatenate([ev.score, np.zeros(n_q)]),
            "time_spent_s": np.concatenate([ev.time_spent_s, np.full(n_q, np.nan)]),
            "hints_used": np.full(n_ev + n_q, np.nan),
            "is_revisit": np.zeros(n_ev + n_q, dtype=bool),
        }
    )
    return compute_features(frame, spec)


def _full_notime(events: pd.DataFrame, spec: Mapping[str, Any], keys: pd.DataFrame) -> np.ndarray:
    """Full-history features with every attempt's time spent unknown, rows in ``keys`` order."""
    from features.build import compute_features

    x = compute_features(events.assign(time_spent_s=np.nan), spec)
    is_query = events["activity"].isin(spec["assessment_activities"]).to_numpy()
    rows = events.loc[is_query, ["user_id", "topic_id", "timestamp"]].reset_index(drop=True)
    rows = rows.astype({"user_id": str, "topic_id": str}).assign(_row=np.arange(len(rows)))
    rows = rows.drop_duplicates(["user_id", "topic_id", "timestamp"])  # ties: equal features
    want = keys[["user_id", "topic_id", "timestamp"]].astype({"user_id": str, "topic_id": str})
    at = want.merge(rows, how="left", on=["user_id", "topic_id", "timestamp"])["_row"]
    if at.isna().any():
        bad = int(np.flatnonzero(at.isna().to_numpy())[0])
        raise ValueError(f"views: example row {bad} has no assessment event in the events")
    return x[at.to_numpy(dtype=np.int64)]


class ViewBuilder:
    """Builds view feature rows for example keys from one event table (shared across splits)."""

    def __init__(
        self, events: pd.DataFrame, spec: Mapping[str, Any], settings: ViewSettings
    ) -> None:
        self.events = events.reset_index(drop=True)
        self.spec = spec
        self.settings = settings
        self.hist = _History(self.events, spec["assessment_activities"])

    def available(self, views: Sequence[str]) -> tuple[str, ...]:
        """The views this data can express: time views need events with time spent."""
        if self.hist.has_time:
            return tuple(views)
        return tuple(v for v in views if not v.endswith("_time") and v != "full_notime")

    def build(self, view: str, keys: pd.DataFrame) -> np.ndarray:
        """Feature rows (float32, spec order) of ``keys`` (user_id, topic_id, timestamp)."""
        if view == FULL:
            raise ValueError("views: the full view is the feature table itself")
        if view not in VIEWS:
            raise ValueError(f"views: unknown view {view!r}; allowed {list(VIEWS)}")
        t0 = time.perf_counter()
        if view == "full_notime":
            out = _full_notime(self.events, self.spec, keys)
        else:
            out = self._summary_view(view, keys)
        logger.info("view %s: %d rows in %.1fs", view, len(keys), time.perf_counter() - t0)
        return out

    def _summary_view(self, view: str, keys: pd.DataFrame) -> np.ndarray:
        hist = self.hist
        users = hist.users.get_indexer(keys["user_id"].astype(str)).astype(np.int64)
        topics = hist.topic_index.get_indexer(keys["topic_id"].astype(str)).astype(np.int64)
        if (users < 0).any() or (topics < 0).any():
            raise ValueError("views: example learners/topics must appear in the events")
        t = keys["timestamp"].to_numpy(dtype=np.int64)
        out = np.empty((len(keys), len(self.spec["names"])), dtype=np.float32)
        for lo in range(0, len(keys), _CHUNK):
            hi = min(lo + _CHUNK, len(keys))
            # long histories (knowledge-tracing data) make many pseudo-events: cut the chunk so
            # one kernel call holds at most ~_MAX_EVENTS of them
            per_example = _event_estimate(view, hist, users[lo:hi], t[lo:hi], self.settings)
            cuts = np.searchsorted(
                np.cumsum(per_example),
                np.arange(1, 1 + per_example.sum() // _MAX_EVENTS) * _MAX_EVENTS,
            )
            bounds = [lo, *sorted({int(c) + lo for c in cuts if 0 < c < hi - lo}), hi]
            for a, b in pairwise(bounds):
                ev = _view_events(view, hist, users[a:b], t[a:b], self.settings)
                out[a:b] = _features_of_events(ev, hist, topics[a:b], t[a:b], self.spec)
        return out


def assign_views(n: int, views: Sequence[str], full_share: float, seed: int) -> np.ndarray:
    """Seeded view index per training row: ``full`` with ``full_share``, the others uniformly."""
    if len(views) == 1:
        return np.zeros(n, dtype=np.int64)
    p = np.full(len(views), (1.0 - full_share) / (len(views) - 1))
    p[0] = full_share
    return np.random.default_rng(seed).choice(len(views), size=n, p=p)


def augmented_rows(
    builder: ViewBuilder,
    X_full: np.ndarray,
    keys: pd.DataFrame,
    views: Sequence[str],
    which: np.ndarray,
) -> np.ndarray:
    """``X_full`` with every row not assigned to ``full`` replaced by its view's row."""
    X = X_full.copy()
    for i, view in enumerate(views):
        rows = np.flatnonzero(which == i)
        if view != FULL and rows.size:
            X[rows] = builder.build(view, keys.iloc[rows].reset_index(drop=True))
    return X


def all_views(
    builder: ViewBuilder, X_full: np.ndarray, keys: pd.DataFrame, views: Sequence[str]
) -> dict[str, np.ndarray]:
    """Every view's rows of the same examples (``full`` is ``X_full`` itself)."""
    return {v: X_full if v == FULL else builder.build(v, keys) for v in views}
