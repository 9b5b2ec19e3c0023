"""Summary requests -> pseudo-events: the one rule serving and training/evaluation share.

The backend often sends a summary (per-topic averages, attempt counts, recent quiz scores, a flat
list of recent scores, minutes spent) instead of the learner's attempts. `summary_events` turns
many such summaries at once (one "request" each) into event columns of the shared schema, which
the shared kernel then turns into features: serving calls it for one request
(`serving.weakness.build_history`), training and evaluation for every example of a split
(`training.weakness_views`), so the model is trained and scored on exactly what serving computes.

Rules, per (request, topic), oldest event first:
- recent scores (when given): one quiz event each, ``spacing_s`` apart, the last one ``spacing_s``
  before ``now``;
- else an average: ``count`` events (clipped to ``MAX_SUMMARY_COUNT``; 1 when the count is
  unknown) with that score, all ``spacing_s`` before ``now``;
- minutes spent are shared equally as ``time_spent_s`` by the topic's events (NaN when absent);
- a flat recent-score list becomes events of ``UNASSIGNED_TOPIC`` (code -1): never predicted,
  it moves only the learner-level features.

numpy only: reachable from serving.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# A topic's average over more attempts than this counts as this many events: bounds the work per
# request (64 topics x 200 events) while keeping counts well past where the model saturates.
MAX_SUMMARY_COUNT = 200
# Reserved topic of the flat (topic-less) recent scores; topic ids starting with "__" are refused.
UNASSIGNED_TOPIC = "__unassigned__"

# Request views: which summary fields a topic's evidence came from. The model is trained on all
# of them and calibrated per view (calibration.json "views").
FULL = "full"
VIEWS: tuple[str, ...] = (
    "full",
    "full_notime",
    "recent_scores",
    "recent_scores_time",
    "averages_counts",
    "averages_counts_time",
    "averages",
    "averages_time",
    "averages_flat",
    "averages_flat_time",
)


@dataclass(frozen=True)
class SummaryEvents:
    """Event columns (one row per pseudo-event), requests in order, topics in input order."""

    request: np.ndarray  # int64, the request index
    topic: np.ndarray  # int64, the topic code; -1 = UNASSIGNED_TOPIC
    timestamp: np.ndarray  # int64 seconds
    score: np.ndarray  # float64
    time_spent_s: np.ndarray  # float64, NaN = unknown


def _csr_lengths(offsets: np.ndarray, n: int, where: str) -> np.ndarray:
    offsets = np.asarray(offsets, dtype=np.int64)
    if offsets.shape != (n + 1,) or offsets[0] != 0 or np.any(np.diff(offsets) < 0):
        raise ValueError(f"{where}: offsets must be {n + 1} non-decreasing values from 0")
    return np.diff(offsets)


def summary_events(
    *,
    now: np.ndarray,
    spacing_s: int,
    topic_request: np.ndarray,
    topic_code: np.ndarray,
    average: np.ndarray,
    count: np.ndarray,
    minutes: np.ndarray,
    recent_offsets: np.ndarray,
    recent_scores: np.ndarray,
    flat_offsets: np.ndarray,
    flat_scores: np.ndarray,
) -> SummaryEvents:
    """Pseudo-events of many summaries (module docstring: the rules).

    ``now``: int64 per request. Topic rows (one per (request, topic) with summary evidence, grouped
    by request in request order): ``topic_request``, ``topic_code``, ``average`` (NaN: none),
    ``count`` (attempts behind the average; 0: unknown), ``minutes`` (NaN: none), and the topic's
    recent scores ``recent_scores[recent_offsets[i]:recent_offsets[i + 1]]`` (oldest first; when
    non-empty they win over the average). Flat scores of request r:
    ``flat_scores[flat_offsets[r]:flat_offsets[r + 1]]``. Events come request by request: the
    request's topic rows in order, then its flat scores.
    """
    now = np.asarray(now, dtype=np.int64)
    n_req = now.shape[0]
    req = np.asarray(topic_request, dtype=np.int64)
    n_top = req.shape[0]
    if n_top and (np.any(np.diff(req) < 0) or req[0] < 0 or req[-1] >= n_req):
        raise ValueError("topic_request: must be non-decreasing request indices")
    n_recent = _csr_lengths(recent_offsets, n_top, "recent_offsets")
    n_flat = _csr_lengths(flat_offsets, n_req, "flat_offsets")
    average = np.asarray(average, dtype=np.float64)
    count = np.asarray(count, dtype=np.int64)
    has_avg = ~np.isnan(average)
    n_avg = np.where(has_avg, np.clip(count, 1, MAX_SUMMARY_COUNT), 0)
    n_events = np.where(n_recent > 0, n_recent, n_avg)  # recent scores win over the average
    minutes = np.asarray(minutes, dtype=np.float64)
    spent_each = minutes * 60.0 / np.maximum(n_events, 1)

    # topic events: within a topic row, position i of n (oldest first)
    t_req = req.repeat(n_events)
    t_pos = np.arange(int(n_events.sum())) - np.repeat(np.cumsum(n_events) - n_events, n_events)
    t_n = n_events.repeat(n_events)
    t_recent = (n_recent > 0).repeat(n_events)
    steps = np.where(t_recent, t_n - t_pos, 1)
    t_ts = now[t_req] - steps * np.int64(spacing_s)
    recent_at = np.asarray(recent_offsets, dtype=np.int64)[:-1].repeat(n_events) + t_pos
    rec = np.asarray(recent_scores, dtype=np.float64)
    t_score = average.repeat(n_events)
    if rec.size:
        t_score[t_recent] = rec[recent_at[t_recent]]
    t_spent = spent_each.repeat(n_events)
    t_topic = np.asarray(topic_code, dtype=np.int64).repeat(n_events)

    # flat events of each request, oldest first
    f_req = np.arange(n_req).repeat(n_flat)
    f_pos = np.arange(int(n_flat.sum())) - np.repeat(np.cumsum(n_flat) - n_flat, n_flat)
    f_ts = now[f_req] - (n_flat.repeat(n_flat) - f_pos) * np.int64(spacing_s)

    # merge: per request its topic events then its flat events (stable sort by request)
    request = np.concatenate([t_req, f_req])
    block = np.concatenate([np.zeros(t_req.size, np.int8), np.ones(f_req.size, np.int8)])
    order = np.lexsort((block, request))
    return SummaryEvents(
        request=request[order],
        topic=np.concatenate([t_topic, np.full(f_req.size, -1, np.int64)])[order],
        timestamp=np.concatenate([t_ts, f_ts])[order],
        score=np.concatenate([t_score, np.asarray(flat_scores, dtype=np.float64)])[order],
        time_spent_s=np.concatenate([t_spent, np.full(f_req.size, np.nan)])[order],
    )


def view_of(
    *,
    has_attempts: bool,
    attempts_timed: bool,
    has_recent: bool,
    has_average: bool,
    has_count: bool,
    has_minutes: bool,
    has_flat: bool,
) -> str:
    """The view a topic's evidence belongs to (the calibration serving applies to it).

    Richest evidence first, as in `summary_events`: attempts, recent scores, average (with a
    count, else with a flat list, else alone). A topic with no evidence of its own is scored as
    the averages view it is closest to (its features are the empty-topic row).
    """
    timed = "_time" if has_minutes else ""
    if has_attempts:
        return FULL if attempts_timed or has_minutes else "full_notime"
    if has_recent:
        return f"recent_scores{timed}"
    if has_average and has_count:
        return f"averages_counts{timed}"
    if has_flat:
        return f"averages_flat{timed}"
    return f"averages{timed}"


def topic_codes(topics: Sequence[str]) -> dict[str, int]:
    """Codes of distinct topics in sorted order (the order serving lists a request's topics)."""
    return {t: i for i, t in enumerate(sorted(set(topics)))}
