"""Personalised practice: the weakness model picks the topics, the generator writes the problems.

One request (``POST /api/v1/ai/practice-set``, ``serving.backend.practice_set``) and the nightly
batch stage (``pipelines.quests``) share this module:

- :func:`explain` turns the features behind a topic's probability into sentences an educator
  reads ("last 3 scores average 35 %", "no practice for 21 days"), each with its *effect*: how
  much lower the calibrated probability is when that evidence is set to a typical learner's
  (scores at the topic's peer mean, practice a day ago, ...). That is one extra batched ONNX run
  per request (a row per evidence group), exact for this prediction, not an approximation of it.
- :func:`verified_problems` asks a problem source for problems until ``n`` pass the checks a
  teacher needs: an equation that answers the text (the generator's consistency check), an
  operation that fits the topic (``serving.topics.equation_fits_topic``) and a final question.
- :func:`practice_set` joins the two for a learner's weakest topics.

Generator access is through :class:`ProblemSource` (one generated problem per call), so the
HTTP app (``serving.generator.GeneratorModel``), the backend drop-in (its one-file graph) and
the batch stage use the same selection and checks.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from serving import limits
from serving.numbers import format_answer
from serving.prompt import CANONICAL_GRADE_PREFIX
from serving.schemas import (
    PracticeProblem,
    PracticeSetInput,
    PracticeSetOutput,
    PracticeTopic,
    Reason,
)
from serving.topics import canonical_topic, equation_fits_topic

logger = logging.getLogger(__name__)

# Themes used when the learner names none, each a noun that plays a natural role in the topic's
# problems (a speed problem needs something that moves). Tries rotate through a topic's themes:
# one theme alone can pin the generator to one skeleton ("train" -> the same 90 km/h problem).
DEFAULT_THEMES: dict[str, tuple[str, ...]] = {
    "speed": ("car", "boat", "train"),
    "money": ("books", "apples"),
    "time": ("homework",),
    "measurement": ("ribbon",),
    "area and perimeter": ("garden",),
    "fractions": ("pizza", "apples"),
    "percentages": ("marbles",),
}
FALLBACK_THEMES: tuple[str, ...] = ("apples",)
# Generation calls per wanted problem before a topic is returned short (with a note).
TRIES_PER_PROBLEM = 3
HOURS_TYPICAL_GAP = 24.0  # "practised a day ago": the neutral value of the recency evidence
MIN_EFFECT = 0.005  # evidence that moves the probability less than half a point is not a reason


@dataclass(frozen=True)
class Candidate:
    """One generated problem as a source returns it (answer None when it did not check out)."""

    text: str
    equation: str | None
    answer: float | None
    seed: int


@dataclass(frozen=True)
class ProblemRequest:
    """What a :class:`ProblemSource` is asked for: one problem about ``topic`` with these
    themes and prompt prefix, drawn with ``seed``; ``deadline``: monotonic s (None: no limit).

    One value rather than keyword parameters, so that every source (the HTTP generator, the
    drop-in's graph, the test templates) reads the same fields and none restates the list.
    """

    topic: str
    keywords: Sequence[str]
    prompt_prefix: str
    seed: int
    deadline: float | None


class ProblemSource(Protocol):
    """One generated problem for a :class:`ProblemRequest`."""

    def __call__(self, request: ProblemRequest) -> Candidate: ...


def service_source(generator: Any) -> ProblemSource:
    """A :class:`ProblemSource` over ``serving.generator.GeneratorModel.generate`` (the HTTP
    word-problem endpoint's own policy: seeded samples, retries, checks)."""

    def generate(request: ProblemRequest) -> Candidate:
        res = generator.generate(
            topic=request.topic,
            keywords=list(request.keywords),
            prompt_prefix=request.prompt_prefix,
            max_length=limits.DEFAULT_MAX_LENGTH,
            seed=request.seed,
            deadline=request.deadline,
        )
        ok = res.consistent and res.answer is not None and res.equation
        return Candidate(
            text=res.generated_problem_text,
            equation=res.equation if ok else None,
            answer=res.answer if ok else None,
            seed=request.seed,
        )

    return generate


def grade_prefix(grade: int | None) -> str:
    """The prompt prefix that fits a problem's numbers to ``grade`` (empty: any grade)."""
    return "" if grade is None else CANONICAL_GRADE_PREFIX.format(grade=int(grade))


def themes_for(topic: str, keywords: Sequence[str], attempt: int = 0) -> list[str]:
    """The learner's themes, else the topic's default theme for this attempt (in rotation)."""
    if keywords:
        return list(keywords)
    themes = DEFAULT_THEMES.get(topic, FALLBACK_THEMES)
    return [themes[attempt % len(themes)]]


def problem_seed(base: int, *parts: object) -> int:
    """A seed for one problem, stable across processes (crc32, not Python's salted hash)."""
    key = "\x1f".join(str(p) for p in (base, *parts)).encode()
    return zlib.crc32(key) % (limits.SEED_RANGE[1] + 1)


def verify(topic: str, cand: Candidate) -> PracticeProblem | None:
    """The problem when a teacher could hand it out as written, else None: the equation
    answers the text, its operation fits the topic, and the text ends with its question."""
    if cand.answer is None or not cand.equation or not math.isfinite(cand.answer):
        return None
    text = cand.text.strip()
    if not text.endswith("?") or not equation_fits_topic(topic, cand.equation, text):
        return None
    return PracticeProblem(
        text=text,
        equation=cand.equation,
        answer=float(cand.answer),
        answer_text=format_answer(cand.answer, text),
        seed=cand.seed,
    )


def verified_problems(
    source: ProblemSource,
    *,
    topic: str,
    n: int,
    keywords: Sequence[str],
    grade: int | None,
    base_seed: int,
    deadline: float | None = None,
    max_tries: int | None = None,
) -> list[PracticeProblem]:
    """Up to ``n`` distinct verified problems about ``topic`` (fewer when tries or time run
    out); the k-th try uses ``problem_seed(base_seed, topic, grade, k)``, so the same inputs
    give the same problems."""
    out: list[PracticeProblem] = []
    seen: set[str] = set()
    prefix = grade_prefix(grade)
    tries = TRIES_PER_PROBLEM * n if max_tries is None else max_tries
    for k in range(tries):
        if len(out) >= n or (deadline is not None and k > 0 and time.monotonic() >= deadline):
            break
        seed = problem_seed(base_seed, topic, grade, k)
        request = ProblemRequest(
            topic=topic,
            keywords=themes_for(topic, keywords, k),
            prompt_prefix=prefix,
            seed=seed,
            deadline=deadline,
        )
        cand = source(request)
        problem = verify(topic, cand)
        if problem is not None and problem.text not in seen:
            seen.add(problem.text)
            out.append(problem)
    return out


# ----------------------------------------------------------------------------- reasons


def _pct(x: float) -> str:
    return f"{100.0 * x:.0f} %"


def _duration(hours: float) -> str:
    if hours >= 48.0:
        return f"{hours / 24.0:.0f} days"
    if hours >= 2.0:
        return f"{hours:.0f} hours"
    return "under 2 hours"


@dataclass(frozen=True)
class _Evidence:
    """A group of features an educator reads as one fact, and its typical value."""

    name: str
    features: tuple[str, ...]
    neutral: Callable[[Mapping[str, float]], Mapping[str, float]]
    # (features, the row's request view) -> the sentence, None when it says nothing here
    text: Callable[[Mapping[str, float], str], str | None]


def _summary_only(view: str) -> bool:
    """The topic's evidence is an average (pseudo-events), not real attempts: no "last scores"
    and no fail count to speak of, and an attempt count only when the request sent one."""
    return view.startswith("averages")


def _recent_text(k: int) -> Callable[[Mapping[str, float], str], str | None]:
    def text(f: Mapping[str, float], view: str) -> str | None:
        if _summary_only(view):
            return None
        x = f.get(f"topic_last{k}_mean", math.nan)
        n = f.get("topic_n_attempts", math.nan)
        if not math.isfinite(x):
            return None
        shown = k if not math.isfinite(n) else int(min(k, n))
        if shown <= 1:
            return f"last score {_pct(x)}"
        return f"last {shown} scores average {_pct(x)}"

    return text


def _average_text(f: Mapping[str, float], view: str) -> str | None:
    mean, peer = f.get("topic_mean_score", math.nan), f.get("peer_topic_mean", math.nan)
    n, fails = f.get("topic_n_attempts", math.nan), f.get("topic_n_fails", math.nan)
    if not math.isfinite(mean):
        return None
    text = f"average {_pct(mean)}"
    summary = _summary_only(view)
    if math.isfinite(n) and n > 0 and (not summary or "counts" in view):
        text += f" over {int(n)} attempt{'s' if n != 1 else ''}"
        if math.isfinite(fails) and fails > 0 and not summary:
            text += f" ({int(fails)} failed)"
    if math.isfinite(peer):
        text += f"; other learners average {_pct(peer)}"
    return text


def _recency_text(f: Mapping[str, float], view: str) -> str | None:
    hours = f.get("topic_hours_since_last", math.nan)
    if not math.isfinite(hours):
        return None
    return f"no practice for {_duration(hours)}"


def _learner_text(f: Mapping[str, float], view: str) -> str | None:
    x = f.get("learner_mean_score", math.nan)
    return None if not math.isfinite(x) else f"overall average {_pct(x)} across topics"


def _hints_text(f: Mapping[str, float], view: str) -> str | None:
    x = f.get("topic_mean_hints", math.nan)
    return None if not math.isfinite(x) or x <= 0 else f"uses {x:.1f} hints per attempt"


def _evidence(spec: Mapping[str, Any]) -> list[_Evidence]:
    """The evidence groups the model's features allow (a spec without a feature skips it)."""
    k = int(min(spec.get("rolling_windows") or [3]))
    recent = tuple(
        n for n in (f"topic_last{k}_mean", "topic_last_score") if n in spec["names"]
    ) + tuple(f"topic_last{w}_mean" for w in spec.get("rolling_windows", ()) if w != k)
    prior = float(spec["peer"]["prior_mean"])

    def at_peer(names: Sequence[str]) -> Callable[[Mapping[str, float]], Mapping[str, float]]:
        def neutral(f: Mapping[str, float]) -> Mapping[str, float]:
            out = {n: f.get("peer_topic_mean", prior) for n in names}
            if "topic_mean_minus_peer" in names:
                out["topic_mean_minus_peer"] = 0.0
            return out

        return neutral

    groups = [
        _Evidence("recent_scores", recent, at_peer(recent), _recent_text(k)),
        _Evidence(
            "average_score",
            ("topic_mean_score", "topic_decayed_mean", "topic_mean_minus_peer"),
            at_peer(("topic_mean_score", "topic_decayed_mean", "topic_mean_minus_peer")),
            _average_text,
        ),
        _Evidence(
            "recency",
            ("topic_hours_since_last",),
            lambda f: {"topic_hours_since_last": HOURS_TYPICAL_GAP},
            _recency_text,
        ),
        _Evidence(
            "learner_level",
            ("learner_mean_score", "learner_decayed_mean"),
            lambda f: {"learner_mean_score": prior, "learner_decayed_mean": prior},
            _learner_text,
        ),
        _Evidence("hints", ("topic_mean_hints",), lambda f: {"topic_mean_hints": 0.0}, _hints_text),
    ]
    names = set(spec["names"])
    return [g for g in groups if g.features and set(g.features) <= names]


def explain_rows(
    predict: Callable[[np.ndarray, Sequence[str] | None], np.ndarray],
    spec: Mapping[str, Any],
    rows: np.ndarray,
    views: Sequence[str] | None,
    *,
    known: Sequence[bool] | None = None,
    max_reasons: int = 3,
) -> list[list[Reason]]:
    """Reasons for each feature row: evidence groups whose typical value lowers the
    probability, largest effect first (one batched ``predict`` for all rows and groups).

    ``known[i]`` False: the model has no statistics of row i's topic, so its peer mean is the
    all-topic prior; the text then makes no "other learners" comparison for that topic."""
    names = list(spec["names"])
    index = {n: i for i, n in enumerate(names)}
    groups = _evidence(spec)
    n = rows.shape[0]
    if n == 0:
        return []
    feats = [dict(zip(names, map(float, r), strict=True)) for r in rows]
    row_views = ["full"] * n if views is None else list(views)
    shown = [
        f if known is None or known[i] else {**f, "peer_topic_mean": math.nan}
        for i, f in enumerate(feats)
    ]
    batch = [rows]
    applicable: list[list[bool]] = []
    for g in groups:
        pert = np.array(rows, dtype=np.float32, copy=True)
        usable = []
        for i, f in enumerate(feats):
            ok = g.text(shown[i], row_views[i]) is not None and all(
                math.isfinite(f[c]) for c in g.features
            )
            usable.append(ok)
            if ok:
                for name, value in g.neutral(f).items():
                    pert[i, index[name]] = value
        applicable.append(usable)
        batch.append(pert)
    all_views = None if views is None else list(views) * (len(groups) + 1)
    p = np.asarray(predict(np.concatenate(batch, axis=0), all_views), dtype=np.float64)
    base = p[:n]
    out: list[list[Reason]] = []
    for i, f in enumerate(feats):
        found: list[Reason] = []
        for j, g in enumerate(groups):
            if not applicable[j][i]:
                continue
            effect = float(base[i] - p[(j + 1) * n + i])
            text = g.text(shown[i], row_views[i])
            if effect >= MIN_EFFECT and text is not None:
                found.append(Reason(text=text, feature=g.name, effect=round(effect, 4)))
        found.sort(key=lambda r: -(r.effect or 0.0))
        found = found[:max_reasons]
        if (
            not math.isfinite(f.get("topic_n_attempts", math.nan))
            or f.get("topic_n_attempts", 0.0) <= 0
        ):
            found.append(
                Reason(
                    text="no attempts in this topic yet: the estimate rests on the learner's "
                    "overall level and other learners' scores",
                    feature="no_history",
                )
            )
        if not found:
            found.append(
                Reason(
                    text="close to a typical learner on every signal the model uses",
                    feature="typical",
                )
            )
        out.append(found)
    return out


def explain(
    model: Any, request: PracticeSetInput, topics: Sequence[str], now: int
) -> dict[str, list[Reason]]:
    """Reasons for ``topics`` of one request (``model``: a ``serving.weakness.WeaknessModel``)."""
    from core.online import request_features
    from serving.weakness import build_history, request_views

    if not topics:
        return {}
    history = build_history(request, now=now, quiz_spacing_s=model.settings.quiz_spacing_s)
    rows = request_features(model.spec, history, list(topics), int(now))
    views = request_views(request, topics)
    known = [bool(model.topic_known(t)) for t in topics]
    reasons = explain_rows(model.predict_features, model.spec, rows, views, known=known)
    return dict(zip(topics, reasons, strict=True))


# ----------------------------------------------------------------------------- the set


def practice_set(
    request: PracticeSetInput,
    *,
    weakness: Any,
    source: ProblemSource,
    generator_topics: Sequence[str],
    generator_version: str,
    now: int | None = None,
    deadline: float | None = None,
) -> PracticeSetOutput:
    """The learner's ``n_topics`` weakest topics, each with reasons and verified problems.

    A topic the generator does not serve (after its synonyms) is listed with a note and no
    problems; a topic whose problems did not all verify in time says how many it got.
    """
    t_now = int(request.now if request.now is not None else (now or time.time()))
    pred = weakness.predict(request, now=t_now)
    chosen = pred.predicted_weaknesses[: request.n_topics]
    reasons = explain(weakness, request, [w.topic_id for w in chosen], t_now)
    base = secrets.randbelow(limits.SEED_RANGE[1] + 1) if request.seed is None else request.seed
    out: list[PracticeTopic] = []
    for w in chosen:
        topic = canonical_topic(w.topic_id, generator_topics)
        item = PracticeTopic(
            topic_id=w.topic_id,
            weakness_probability=w.weakness_probability,
            suggested_action_level=w.suggested_action_level,
            topic_known=w.topic_known,
            reasons=reasons[w.topic_id],
            generator_topic=topic,
        )
        if topic is None:
            item.note = (
                f"no generated problems: the generator has no topic {w.topic_id!r} (supported: "
                f"{', '.join(generator_topics)}); recommend the topic's own content"
            )
        else:
            item.problems = verified_problems(
                source,
                topic=topic,
                n=request.problems_per_topic,
                keywords=request.keywords,
                grade=request.grade,
                base_seed=problem_seed(base, request.user_id),
                deadline=deadline,
            )
            if len(item.problems) < request.problems_per_topic:
                item.note = (
                    f"{len(item.problems)} of {request.problems_per_topic} problems verified "
                    "(answer, topic and question checked) within the request's tries and time"
                )
        out.append(item)
    return PracticeSetOutput(
        user_id=request.user_id,
        grade=request.grade,
        topics=out,
        weakness_model_version=pred.model_version,
        generator_model_version=generator_version,
    )
