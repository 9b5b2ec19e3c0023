"""The weakness predictor at serving time: request -> history -> shared features -> ONNX -> levels.

Features come only from :func:`core.online.request_features` (the one definition shared with
the batch stage); calibration and action levels only from :mod:`serving.weakness_post`. This
module just turns the backend's request into the learner's event history (docs/serving.md says
what each field contributes), runs the verified ONNX session and orders the answer.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np

from core.io import read_json
from core.summary import UNASSIGNED_TOPIC, summary_events, view_of
from serving.errors import ArtifactError, RequestError
from serving.onnx_files import WEAKNESS_MODEL_FILE
from serving.schemas import TopicWeakness, WeaknessPredictionInput, WeaknessPredictionOutput
from serving.settings import ServingSettings
from serving.store import ArtifactIdentity, open_verified_artifact
from serving.weakness_post import (
    CalibrationError,
    action_levels,
    apply_calibration,
    validate_calibration,
    validate_thresholds,
)

logger = logging.getLogger(__name__)

MODEL_NAME = "weakness"
__all__ = ["UNASSIGNED_TOPIC", "WeaknessModel", "build_history", "load_weakness"]
_TIMESTAMP = itemgetter("timestamp")
_SCORE = itemgetter("score")
_SPENT = itemgetter("time_spent_s")
_HINTS = itemgetter("hints_used")
_REVISIT = itemgetter("is_revisit")
_ACTIVITY = itemgetter("activity")


@dataclass(frozen=True)
class TopicPrediction:
    topic_id: str
    probability: float
    level: str
    topic_known: bool = True


def _summary_rows(
    request: WeaknessPredictionInput, topics: Sequence[str]
) -> tuple[list[int], list[float], list[int], list[float], list[int], list[float]]:
    """Topic rows of `core.summary.summary_events` for ``topics`` (index into ``topics``)."""
    quiz_by_topic = (
        request.recent_quiz_scores if isinstance(request.recent_quiz_scores, dict) else {}
    )
    counts = request.attempts_per_topic or {}
    codes: list[int] = []
    average: list[float] = []
    count: list[int] = []
    minutes: list[float] = []
    offsets = [0]
    recent: list[float] = []
    nan = math.nan
    for i, topic in enumerate(topics):
        scores = quiz_by_topic.get(topic) or []
        avg = request.average_score_per_topic.get(topic)
        spent = request.time_spent_per_topic_minutes.get(topic)
        if not scores and avg is None and spent is None:
            continue
        codes.append(i)
        average.append(nan if avg is None else float(avg))
        count.append(int(counts.get(topic, 0)))
        minutes.append(nan if spent is None else float(spent))
        recent.extend(scores)
        offsets.append(len(recent))
    return codes, average, count, minutes, offsets, recent


def build_history(
    request: WeaknessPredictionInput, *, now: int, quiz_spacing_s: int
) -> dict[str, list[Any]]:
    """The learner's events implied by a request (columns of the shared event schema).

    Per topic the richest evidence wins: ``recent_attempts`` (real events) > the summary fields,
    which become pseudo-events by `core.summary.summary_events`, the rule training and
    evaluation apply to every example (recent quiz scores spaced ``quiz_spacing_s`` apart > the
    average, repeated ``attempts_per_topic`` times). ``time_spent_per_topic_minutes`` is shared
    equally by the topic's events that carry no ``time_spent_s``; time spent and hints left
    unknown are NaN (the kernel's missing value). A flat ``recent_quiz_scores`` list becomes quiz
    events of a reserved topic that is never predicted, so it moves only the learner-level
    features. Attempt events come first (topics in order), then the summary events.
    """
    topic_col: list[str] = []
    ts_col: list[int] = []
    score_col: list[float] = []
    spent_col: list[float | None] = []
    hints_col: list[float] = []
    revisit_col: list[bool] = []
    activity_col: list[str] = []
    nan = math.nan
    attempts_by_topic = request.recent_attempts or {}
    # Attempts of consecutive topics are split into columns in one C-level map per field over
    # the whole run, not a comprehension per topic and field: this runs on every request. The
    # maps read each model's __dict__ (where pydantic keeps the validated field values): item
    # lookups there cost ~30% less than attribute lookups on the models.
    pending: list[Any] = []
    minutes_spans: list[tuple[float, int, int]] = []  # minutes, first row, end row of a topic
    summary_topics: list[str] = []
    for topic in request.topics():
        attempts = attempts_by_topic.get(topic)
        if not attempts:
            summary_topics.append(topic)
            continue
        first = len(topic_col)
        topic_col.extend([topic] * len(attempts))
        pending.extend(attempts)
        minutes = request.time_spent_per_topic_minutes.get(topic)
        if minutes is not None:
            minutes_spans.append((float(minutes), first, len(topic_col)))
    if pending:
        fields = [a.__dict__ for a in pending]
        ts_col.extend(map(_TIMESTAMP, fields))
        score_col.extend(map(_SCORE, fields))
        spent_col.extend(map(_SPENT, fields))
        hints = list(map(_HINTS, fields))
        hints_col.extend([nan if h is None else h for h in hints] if None in hints else hints)
        revisit_col.extend(map(_REVISIT, fields))
        activity_col.extend(map(_ACTIVITY, fields))
    for minutes, first, end in minutes_spans:
        missing = [i for i in range(first, end) if spent_col[i] is None]
        for i in missing:
            spent_col[i] = minutes * 60.0 / len(missing)
    flat = list(request.recent_quiz_scores) if isinstance(request.recent_quiz_scores, list) else []
    codes, average, count, minutes_list, offsets, recent = _summary_rows(request, summary_topics)
    if codes or flat:
        ev = summary_events(
            now=np.array([now], dtype=np.int64),
            spacing_s=quiz_spacing_s,
            topic_request=np.zeros(len(codes), dtype=np.int64),
            topic_code=np.array(codes, dtype=np.int64),
            average=np.array(average, dtype=np.float64),
            count=np.array(count, dtype=np.int64),
            minutes=np.array(minutes_list, dtype=np.float64),
            recent_offsets=np.array(offsets, dtype=np.int64),
            recent_scores=np.array(recent, dtype=np.float64),
            flat_offsets=np.array([0, len(flat)], dtype=np.int64),
            flat_scores=np.array(flat, dtype=np.float64),
        )
        names = [*summary_topics, UNASSIGNED_TOPIC]  # code -1 picks the last
        n = ev.timestamp.shape[0]
        topic_col.extend([names[c] for c in ev.topic.tolist()])
        ts_col.extend(ev.timestamp.tolist())
        score_col.extend(ev.score.tolist())
        spent_col.extend(ev.time_spent_s.tolist())
        hints_col.extend([nan] * n)
        revisit_col.extend([False] * n)
        activity_col.extend(["quiz"] * n)
    return {
        "topic_id": topic_col,
        "timestamp": ts_col,
        "score": score_col,
        # Unknown time spent / hints stay NaN: the kernel's "missing" value, as in batch.
        "time_spent_s": [nan if v is None else v for v in spent_col]
        if None in spent_col
        else spent_col,
        "hints_used": hints_col,
        "is_revisit": revisit_col,
        "activity": activity_col,
    }


def request_views(request: WeaknessPredictionInput, topics: Sequence[str]) -> list[str]:
    """The view (`core.summary.VIEWS`) of each topic's evidence: picks its calibration."""
    quiz_by_topic = (
        request.recent_quiz_scores if isinstance(request.recent_quiz_scores, dict) else {}
    )
    attempts_by_topic = request.recent_attempts or {}
    counts = request.attempts_per_topic or {}
    has_flat = isinstance(request.recent_quiz_scores, list) and bool(request.recent_quiz_scores)
    views = []
    for topic in topics:
        attempts = attempts_by_topic.get(topic) or []
        views.append(
            view_of(
                has_attempts=bool(attempts),
                attempts_timed=any(a.time_spent_s is not None for a in attempts),
                has_recent=bool(quiz_by_topic.get(topic)),
                has_average=topic in request.average_score_per_topic,
                has_count=topic in counts,
                has_minutes=topic in request.time_spent_per_topic_minutes,
                has_flat=has_flat,
            )
        )
    return views


class WeaknessModel(ArtifactIdentity):
    """A verified weakness artifact with one reused InferenceSession."""

    model_name = MODEL_NAME

    def __init__(
        self,
        *,
        artifact_dir: Path,
        manifest: Mapping[str, Any],
        session: Any,
        spec: Mapping[str, Any],
        calibration: Mapping[str, Any],
        thresholds: Sequence[float],
        labels: Sequence[str],
        settings: ServingSettings,
    ) -> None:
        self.artifact_dir = artifact_dir
        self.manifest = dict(manifest)
        self.session = session
        self.spec = dict(spec)
        self.calibration = dict(calibration)
        self.thresholds = list(thresholds)
        self.labels = list(labels)
        self.settings = settings
        self.input_name = session.get_inputs()[0].name
        names = [o.name for o in session.get_outputs()]
        # The manifest says which output / column is P(fail); older drafts default to
        # onnxmltools' names (zipmap=False: "probabilities", column 1 = the positive class).
        wanted = str(self.manifest.get("probability_output", "probabilities"))
        if wanted not in names:
            raise ArtifactError(f"{artifact_dir}: ONNX outputs {names} lack {wanted!r}")
        self.output_name = wanted
        self.probability_column = int(self.manifest.get("probability_column", 1))
        # Training topics (the peer table's) and the Ludora-id -> training-topic aliases: an
        # aliased topic reads its training topic's peer statistics; its id in the answer stays.
        peer_topics = self.spec["peer"]["topics"]
        self.topics = frozenset(self.manifest.get("topics") or peer_topics)
        aliases = self.manifest.get("topic_aliases") or {}
        if not isinstance(aliases, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in aliases.items()
        ):
            raise ArtifactError(f"{artifact_dir}: manifest topic_aliases must map str -> str")
        self.topic_aliases = dict(aliases)
        if aliases:
            extended = dict(peer_topics)
            for src, dst in aliases.items():
                if dst in peer_topics:
                    extended[src] = peer_topics[dst]
            self.spec = {**self.spec, "peer": {**self.spec["peer"], "topics": extended}}

    def topic_known(self, topic: str) -> bool:
        """The model was trained on this topic (directly or through ``topic_aliases``)."""
        return self.topic_aliases.get(topic, topic) in self.topics

    def predict_features(self, rows: np.ndarray, views: Sequence[str] | None = None) -> np.ndarray:
        """Calibrated failure probabilities (float64) of feature rows in spec order.

        ``views``: the request view of each row (its calibration); None: the full-history one.
        """
        x = np.ascontiguousarray(rows, dtype=np.float32)
        (out,) = self.session.run([self.output_name], {self.input_name: x})
        out = np.asarray(out)
        p_raw = out[:, self.probability_column] if out.ndim == 2 else out.reshape(-1)
        return np.asarray(apply_calibration(p_raw.astype(np.float64), self.calibration, views))

    def predict_history(
        self,
        history: Mapping[str, Sequence[Any]],
        topics: Sequence[str],
        now: int,
        views: Sequence[str] | None = None,
    ) -> list[TopicPrediction]:
        """Probability and action level per topic, from an event history, most at risk first."""
        from core.online import request_features

        try:
            rows = request_features(self.spec, history, list(topics), int(now))
        except ValueError as exc:  # the shared feature code names the offending history field
            raise RequestError("body", str(exc)) from exc
        p = np.clip(self.predict_features(rows, views), 0.0, 1.0)
        levels = action_levels(p, self.thresholds, self.labels)
        preds = [
            TopicPrediction(t, float(pi), lvl, self.topic_known(t))
            for t, pi, lvl in zip(topics, p, levels, strict=True)
        ]
        return sorted(preds, key=lambda r: (-r.probability, r.topic_id))

    def predict(
        self, request: WeaknessPredictionInput, *, now: int | None = None
    ) -> WeaknessPredictionOutput:
        """Answer one backend request (``now``: the request's, else the server clock)."""
        t_now = int(request.now if request.now is not None else (now or time.time()))
        history = build_history(request, now=t_now, quiz_spacing_s=self.settings.quiz_spacing_s)
        if history["timestamp"] and max(history["timestamp"]) > t_now:
            # only attempts can lie after now: find the first one to name it
            for topic, attempts in (request.recent_attempts or {}).items():
                for i, a in enumerate(attempts):
                    if a.timestamp > t_now:
                        raise RequestError(
                            f"recent_attempts[{topic!r}][{i}].timestamp",
                            f"{a.timestamp} is after now={t_now}",
                            loc=("recent_attempts", topic, i, "timestamp"),
                        )
        topics = request.topics()
        preds = self.predict_history(history, topics, t_now, request_views(request, topics))
        return WeaknessPredictionOutput(
            user_id=request.user_id,
            predicted_weaknesses=[
                TopicWeakness(
                    topic_id=p.topic_id,
                    weakness_probability=p.probability,
                    suggested_action_level=p.level,
                    topic_known=p.topic_known,
                )
                for p in preds
            ],
            model_version=self.version,
        )


def _artifact_json(path: Path) -> Any:
    return read_json(path, missing="required artifact file missing", error=ArtifactError)


def load_weakness(ref: str | Path, settings: ServingSettings | None = None) -> WeaknessModel:
    """Resolve ``ref``, verify the artifact (sha256, io names) and open its session once."""
    settings = settings or ServingSettings.from_env()
    artifact_dir, manifest = open_verified_artifact(ref, MODEL_NAME, settings)
    return open_weakness(artifact_dir, manifest, settings)


def open_weakness(
    artifact_dir: Path, manifest: Mapping[str, Any], settings: ServingSettings
) -> WeaknessModel:
    """Read the model files of ``artifact_dir``, check them, open the session once.

    The caller vouches for the files: `load_weakness` verifies a packaged artifact's sha256
    first; batch scoring (`training.scoring`) opens the export directory it declared as a dep.
    """
    import onnxruntime as ort

    from core.spec import validate_spec

    spec = validate_spec(_artifact_json(artifact_dir / "feature_spec.json"))
    calibration = _artifact_json(artifact_dir / "calibration.json")
    try:
        validate_calibration(calibration)
    except CalibrationError as exc:  # name the file: the validator only knows the field
        raise CalibrationError(f"{artifact_dir / 'calibration.json'}: {exc}") from None
    levels = _artifact_json(artifact_dir / "thresholds.json")
    if not isinstance(levels, dict):
        raise ArtifactError(f"{artifact_dir / 'thresholds.json'}: expected an object")
    validate_thresholds(levels.get("thresholds", []), levels.get("labels", []))
    session = ort.InferenceSession(
        str(artifact_dir / WEAKNESS_MODEL_FILE),
        sess_options=settings.ort_session_options(),
        providers=["CPUExecutionProvider"],
    )
    inp = session.get_inputs()[0]
    if inp.name != spec["input_name"]:
        raise ArtifactError(
            f"{artifact_dir / WEAKNESS_MODEL_FILE}: input {inp.name!r} differs from the "
            f"feature spec's input_name {spec['input_name']!r}"
        )
    width = inp.shape[1] if len(inp.shape) == 2 else None
    if isinstance(width, int) and width != len(spec["names"]):
        raise ArtifactError(
            f"{artifact_dir / WEAKNESS_MODEL_FILE}: input width {width} differs from the "
            f"{len(spec['names'])} features of feature_spec.json"
        )
    logger.info("loaded weakness v%s from %s", manifest.get("version"), artifact_dir)
    return WeaknessModel(
        artifact_dir=artifact_dir,
        manifest=manifest,
        session=session,
        spec=spec,
        calibration=calibration,
        thresholds=levels["thresholds"],
        labels=levels["labels"],
        settings=settings,
    )
