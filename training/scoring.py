"""Batch scoring: every active learner x topic, as of a cut-off, with the exported ONNX model.

The nightly job behind personalised quests and educator alerts. It answers what serving would
answer for each learner at ``as_of``: features come from the batch kernel
(`features.build.compute_features`) for one assessment query per (learner, topic) at ``as_of``
(a query sees the learner's events strictly before it), and probabilities and levels come from
`serving.weakness.WeaknessModel.predict_features` + `serving.weakness_post.action_levels` on
the model in ``outputs/onnx/weakness`` (the ONNX file serving loads, its calibration and
thresholds), so batch and online cannot disagree.

`score_learners` is pure and works on any set of whole learner histories, so the local engine
calls it per block of learners and the Dask engine per partition; ONNX Runtime runs with the
serving session options (1 intra-op thread), so each row's probability does not depend on the
batch it is in, and both engines write the same scores bit for bit.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np

from data.params import ConfigError, Range
from serving.limits import TIMESTAMP_RANGE
from serving.onnx_files import WEAKNESS_MODEL_FILE

if TYPE_CHECKING:
    import pandas as pd

    from serving.weakness import WeaknessModel

logger = logging.getLogger(__name__)

DAY_S = 86_400
HISTORY_ACTIVITY = "__history__"  # no assessment: history rows update state, never queried
SCORE_COLUMNS: tuple[str, ...] = (
    "user_id",
    "topic_id",
    "as_of",
    "weakness_probability",
    "action_level",
    "model_version",
)
EVENT_COLUMNS: tuple[str, ...] = (
    "user_id",
    "topic_id",
    "timestamp",
    "score",
    "time_spent_s",
    "hints_used",
    "is_revisit",
)


@dataclass(frozen=True)
class ScoreConfig:
    """``params.yaml`` section ``score``."""

    as_of: int | str | None = None  # int seconds, ISO-8601, or None: 1 s after the last event
    active_days: Annotated[int, Range(0, 3650, integer=True, note="0 = every learner")] = 30
    learners_per_file: Annotated[int, Range(1, 10_000_000, integer=True)] = 1000

    def __post_init__(self) -> None:
        if self.as_of is not None:
            parse_as_of(self.as_of, latest=0)


def part_name(i: int) -> str:
    """File name of the i-th score part (both engines write the same parts)."""
    return f"part-{i:05d}.parquet"


def _iso(ts: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_as_of(value: int | str | None, *, latest: int) -> int:
    """The cut-off in seconds: ``value`` as int seconds or ISO-8601, or ``latest + 1``.

    An explicit cut-off must lie in the instants events may carry (serving's timestamp range,
    2000-01-01 .. 2100-01-01 UTC): ``0`` or a year 2200 would score nobody.
    """
    if value is None:
        return int(latest) + 1
    if isinstance(value, int) and not isinstance(value, bool):
        as_of = value
    else:
        from data.simulator import parse_start

        try:
            as_of = parse_start(str(value))
        except ValueError:
            raise ConfigError(
                f"score.as_of: must be null, int seconds or an ISO-8601 instant such as "
                f"2026-06-01T00:00:00Z, got {value!r}"
            ) from None
    lo, hi = TIMESTAMP_RANGE
    if not lo < as_of <= hi:
        raise ConfigError(
            f"score.as_of: must be in ({_iso(lo)}, {_iso(hi)}] (int seconds in ({lo}, {hi}]), "
            f"got {value!r}"
        )
    return as_of


def check_as_of(
    as_of: int, *, first: int, latest: int, active_days: int, n_users: int | None = None
) -> None:
    """Refuse, before any scoring, a cut-off that leaves no learner to score.

    Scoring sees events strictly before ``as_of`` and, with ``active_days > 0``, scores only
    learners with an event in the ``active_days`` before it; outside that window the stage
    used to replace ``outputs/scores`` with zero rows and exit 0.
    """
    window = active_days * DAY_S
    if as_of > first and (active_days == 0 or as_of - window <= latest) and n_users != 0:
        return
    latest_ok = "any later instant" if active_days == 0 else _iso(latest + window)
    if as_of > first and (active_days == 0 or as_of - window <= latest):  # a gap in the events
        raise ConfigError(
            f"score.as_of: {_iso(as_of)} leaves no learner to score: no event in the "
            f"{active_days} days before it (score.active_days); the events span "
            f"{_iso(first)} .. {_iso(latest)}"
        )
    raise ConfigError(
        f"score.as_of: {_iso(as_of)} leaves no learner to score: the events span "
        f"{_iso(first)} .. {_iso(latest)}, so with score.active_days {active_days} the cut-off "
        f"must be after {_iso(first)} and no later than {latest_ok} (null = after the last event)"
    )


@dataclass(frozen=True)
class ExportedModel:
    """What scoring reads from ``outputs/onnx/weakness``: its directory and model sha256."""

    model_dir: str
    sha256: str

    @property
    def version(self) -> str:
        """``weakness@<sha256[:12]>``: the draft has no registry version yet; the sha names it."""
        return f"weakness@{self.sha256[:12]}"


def exported_model(model_dir: Path | str) -> ExportedModel:
    """Check the export directory is complete and name the model by its sha256."""
    from serving.manifest import sha256_file

    model_dir = Path(model_dir)
    for name in (WEAKNESS_MODEL_FILE, "feature_spec.json", "calibration.json", "thresholds.json"):
        if not (model_dir / name).is_file():
            raise FileNotFoundError(
                f"{model_dir / name}: exported weakness model file missing (run export_weakness)"
            )
    return ExportedModel(str(model_dir), sha256_file(model_dir / WEAKNESS_MODEL_FILE))


@functools.cache
def load_model(model_dir: str, sha256: str) -> WeaknessModel:
    """The serving wrapper around the exported files, one session per process (and model).

    ``sha256`` is part of the cache key so a worker never reuses a replaced model.
    """
    from serving.settings import ServingSettings
    from serving.weakness import open_weakness

    root = Path(model_dir)
    draft_path = root / "manifest.draft.json"
    draft = json.loads(draft_path.read_text()) if draft_path.is_file() else {}
    onnx_info = draft.get("onnx") or {}
    manifest = {  # what a packaged manifest would say; named by the model's sha256
        "name": "weakness",
        "version": f"weakness@{sha256[:12]}",
        "probability_output": onnx_info.get("probability_output", "probabilities"),
        "probability_column": onnx_info.get("probability_column", 1),
        "topics": draft.get("topics"),
        "topic_aliases": draft.get("topic_aliases") or {},
    }
    # defaults: 1 intra-op thread, the serving graph options
    return open_weakness(root, manifest, ServingSettings())


def model_topics(model: WeaknessModel) -> list[str]:
    """Topics scored: the model's training topics, sorted."""
    return sorted(model.topics)


def active_users(events: pd.DataFrame, *, as_of: int, active_days: int) -> np.ndarray:
    """Sorted ids of learners with an event in [as_of - active_days, as_of) (0: any before)."""
    ts = events["timestamp"].to_numpy()
    mask = ts < as_of
    if active_days > 0:
        mask &= ts >= as_of - active_days * DAY_S
    return np.sort(events.loc[mask, "user_id"].astype(str).unique())


def query_frame(
    events: pd.DataFrame,
    users: Sequence[str] | np.ndarray,
    topics: Sequence[str],
    *,
    as_of: int,
    query: str,
) -> pd.DataFrame:
    """History (events of ``users`` before ``as_of``) then one ``query`` row per user x topic.

    History rows get an activity that is no assessment, so only the query rows are examples;
    queries share the timestamp ``as_of``, so none sees another (the kernel's block rule).
    """
    import pandas as pd

    wanted = events["user_id"].isin(list(users)).to_numpy() & (
        events["timestamp"].to_numpy() < as_of
    )
    cols = [c for c in EVENT_COLUMNS if c in events.columns]
    history = events.loc[wanted, cols].reset_index(drop=True)
    history["activity"] = HISTORY_ACTIVITY
    n_u, n_t = len(users), len(topics)
    queries = pd.DataFrame(
        {
            "user_id": np.repeat(np.asarray(users, dtype=object), n_t),
            "topic_id": np.tile(np.asarray(topics, dtype=object), n_u),
            "timestamp": np.full(n_u * n_t, as_of, dtype=np.int64),
            "score": np.zeros(n_u * n_t),
            "activity": query,
        }
    )
    for name in ("time_spent_s", "hints_used"):
        if name in history.columns:
            queries[name] = np.nan
    if "is_revisit" in history.columns:
        queries["is_revisit"] = False
    frame = pd.concat([history, queries], ignore_index=True)
    frame["user_id"] = frame["user_id"].astype(str)
    frame["topic_id"] = frame["topic_id"].astype(str)
    return frame


def score_learners(
    events: pd.DataFrame,
    model: WeaknessModel,
    *,
    as_of: int,
    active_days: int,
    topics: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Scores of the active learners of ``events`` (whole histories) for every topic.

    Rows sorted by (user_id, topic_id); columns `SCORE_COLUMNS`.
    """
    import pandas as pd

    from features.build import compute_features
    from serving.weakness_post import action_levels

    topics = list(topics) if topics is not None else model_topics(model)
    users = active_users(events, as_of=as_of, active_days=active_days)
    if len(users) == 0 or not topics:
        return empty_scores()
    spec = model.spec
    frame = query_frame(
        events, users, topics, as_of=as_of, query=str(spec["assessment_activities"][0])
    )
    rows = compute_features(frame, spec)  # the query rows, in order: users x topics
    p = np.clip(model.predict_features(rows), 0.0, 1.0)
    return pd.DataFrame(
        {
            "user_id": pd.Series(np.repeat(users, len(topics)), dtype="str"),
            "topic_id": pd.Series(
                np.tile(np.asarray(topics, dtype=object), len(users)), dtype="str"
            ),
            "as_of": np.full(len(p), as_of, dtype=np.int64),
            "weakness_probability": p.astype(np.float64),
            "action_level": pd.Series(
                action_levels(p, model.thresholds, model.labels), dtype="str"
            ),
            "model_version": pd.Series([model.version] * len(p), dtype="str"),
        }
    )


def empty_scores() -> pd.DataFrame:
    """A zero-row score table with the right dtypes."""
    import pandas as pd

    return pd.DataFrame(
        {
            "user_id": pd.Series([], dtype="str"),
            "topic_id": pd.Series([], dtype="str"),
            "as_of": np.array([], dtype=np.int64),
            "weakness_probability": np.array([], dtype=np.float64),
            "action_level": pd.Series([], dtype="str"),
            "model_version": pd.Series([], dtype="str"),
        }
    )


def level_counts(scores: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Learners per action level per topic (integers, so engines agree exactly)."""
    counts = scores.groupby(["topic_id", "action_level"], sort=True).size()
    out: dict[str, dict[str, int]] = {}
    for (topic, level), n in counts.items():
        out.setdefault(str(topic), {})[str(level)] = int(n)
    return out


def merge_counts(
    into: dict[str, dict[str, int]], other: Mapping[str, Mapping[str, int]]
) -> dict[str, dict[str, int]]:
    """Add ``other``'s per-topic level counts into ``into`` (returned)."""
    for topic, levels in other.items():
        acc = into.setdefault(topic, {})
        for level, n in levels.items():
            acc[level] = acc.get(level, 0) + int(n)
    return into


def score_summary(
    counts: Mapping[str, Mapping[str, int]],
    *,
    labels: Sequence[str],
    as_of: int,
    model: ExportedModel,
    engine: str,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """metrics/score.json and the rows of plots/score/levels.csv (every topic x level, 0s kept)."""
    topics = sorted(counts)
    levels = {t: {lvl: int(counts[t].get(lvl, 0)) for lvl in labels} for t in topics}
    n_rows = sum(sum(v.values()) for v in levels.values())
    totals = {lvl: sum(levels[t][lvl] for t in topics) for lvl in labels}
    metrics = {
        "as_of": as_of,
        "n_topics": len(topics),
        "n_rows": n_rows,
        "n_learners": n_rows // len(topics) if topics else 0,
        "levels_total": totals,
        "levels": levels,
        "model_version": model.version,
        "model_sha256": model.sha256,
        "engine": engine,
    }
    plot = [
        {"topic_id": t, "level": lvl, "learners": levels[t][lvl]} for t in topics for lvl in labels
    ]
    return metrics, plot
