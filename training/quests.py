"""Nightly quests: a bank of verified problems per (topic, grade), drawn per learner.

The bank is generated once per run (``serving.practice.verified_problems``: the practice-set
endpoint's own checks) and every learner's quest is drawn from it for the learner's weakest
topics in the nightly scores: generating per learner would cost ~40 ms a problem for ~25k
problems; drawing costs microseconds. A draw depends only on (seed, learner, topic, bank), never
on partitioning, so the local and Dask engines write the same rows.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np

from data.params import Range, require
from serving import limits

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

# The two tables the stage writes (docs/data_schema.md), column -> pandas dtype: one contract
# for the column order and the types a backend reads ("str": pandas' string dtype).
BANK_COLUMNS: dict[str, str] = {
    "problem_id": "str",
    "topic_id": "str",
    "grade": "int64",
    "text": "str",
    "equation": "str",
    "answer": "float64",
    "answer_text": "str",
    "seed": "int64",
}
QUEST_COLUMNS: dict[str, str] = {
    "user_id": "str",
    "rank": "int64",  # 1 = the learner's weakest topic with a bank
    "topic_id": "str",
    "weakness_probability": "float64",
    "action_level": "str",
    "grade": "int64",
    "slot": "int64",  # the problem's position within the topic
    "problem_id": "str",
}
_Grade = Annotated[int, Range(limits.GRADE_RANGE[0], limits.GRADE_RANGE[1], integer=True)]


@dataclass(frozen=True)
class QuestsConfig:
    """``params.yaml`` section ``quests``."""

    topics_per_learner: Annotated[int, Range(1, 20, integer=True)] = 3
    problems_per_topic: Annotated[int, Range(1, 20, integer=True)] = 3
    bank_size: Annotated[int, Range(1, 1000, integer=True)] = 12  # per (topic, grade)
    grades: tuple[_Grade, ...] = (4,)  # grades the bank covers
    # the learners' grade: the events carry none, so every learner gets this one
    default_grade: _Grade = 4
    keywords: tuple[str, ...] = ()  # themes of the bank's problems; () = each topic's default
    seed: Annotated[int, Range(0, limits.SEED_RANGE[1], integer=True)] = 0
    tries_per_problem: Annotated[int, Range(1, 20, integer=True)] = 3  # generator calls

    def __post_init__(self) -> None:
        require(len(self.grades) > 0, "quests.grades", "must list at least one grade")
        require(
            self.default_grade in self.grades,
            "quests.default_grade",
            f"must be one of quests.grades {list(self.grades)}, got {self.default_grade}",
        )
        require(
            self.problems_per_topic <= self.bank_size,
            "quests.problems_per_topic",
            f"must be <= quests.bank_size ({self.bank_size}), got {self.problems_per_topic}",
        )
        for i, word in enumerate(self.keywords):
            require(
                bool(word.strip()) and not any(c in word for c in ",:<>"),
                f"quests.keywords[{i}]",
                f"must be a non-blank word without ',', ':', '<' or '>', got {word!r}",
            )


def problem_id(topic: str, grade: int, index: int) -> str:
    """A bank problem's id: readable and stable (``fractions/g4/007``)."""
    return f"{topic}/g{grade}/{index:03d}"


def build_bank(
    source: Any,
    topics: Sequence[str],
    cfg: QuestsConfig,
    *,
    progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None,
) -> pd.DataFrame:
    """Up to ``cfg.bank_size`` verified problems per (topic, grade of ``cfg.grades``) from
    ``source`` (a ``serving.practice.ProblemSource``); columns :data:`BANK_COLUMNS`, sorted by
    problem_id.

    Takes the validated section whole, so the bank sees exactly the values whose combination
    ``QuestsConfig`` checked (grades, keywords, sizes), not a caller's copy of each.
    """
    import pandas as pd

    from serving.practice import verified_problems

    pairs = [(t, g) for t in topics for g in cfg.grades]
    rows: list[dict[str, Any]] = []
    for topic, grade in progress(pairs) if progress else pairs:
        problems = verified_problems(
            source,
            topic=topic,
            n=cfg.bank_size,
            keywords=cfg.keywords,
            grade=grade,
            base_seed=cfg.seed,
            max_tries=cfg.tries_per_problem * cfg.bank_size,
        )
        if len(problems) < cfg.bank_size:
            logger.warning(
                "bank %s grade %d: %d of %d problems verified",
                topic,
                grade,
                len(problems),
                cfg.bank_size,
            )
        for i, p in enumerate(problems):
            rows.append(
                {
                    "problem_id": problem_id(topic, grade, i),
                    "topic_id": topic,
                    "grade": int(grade),
                    "text": p.text,
                    "equation": p.equation,
                    "answer": float(p.answer),
                    "answer_text": p.answer_text,
                    "seed": int(p.seed),
                }
            )
    return pd.DataFrame(rows, columns=list(BANK_COLUMNS)).astype(BANK_COLUMNS)


def bank_index(bank: pd.DataFrame) -> dict[tuple[str, int], list[str]]:
    """(topic, grade) -> its problem ids in bank order."""
    out: dict[tuple[str, int], list[str]] = {}
    for pid, topic, grade in zip(bank["problem_id"], bank["topic_id"], bank["grade"], strict=True):
        out.setdefault((str(topic), int(grade)), []).append(str(pid))
    return out


def _pick(seed: int, user: str, topic: str, n_bank: int, k: int) -> np.ndarray:
    """``k`` distinct bank positions for (user, topic): a seeded permutation (crc32 keyed, so
    the same in every process and on every engine)."""
    key = zlib.crc32(f"{seed}\x1f{user}\x1f{topic}".encode())
    return np.random.default_rng(key).permutation(n_bank)[:k]


def draw_quests(
    scores: pd.DataFrame,
    index: Mapping[tuple[str, int], Sequence[str]],
    cfg: QuestsConfig,
) -> pd.DataFrame:
    """Each learner's quest: the ``cfg.topics_per_learner`` most likely failed topics that have
    a bank at ``cfg.default_grade`` (ties by topic id), ``cfg.problems_per_topic`` distinct
    problems each, picked with ``cfg.seed``.

    ``scores``: rows of the score stage (``user_id, topic_id, weakness_probability,
    action_level``); the rows of a learner must all be in this frame. Columns
    :data:`QUEST_COLUMNS`, sorted by (user_id, rank, slot). The section comes whole, as to
    :func:`build_bank`: the draw reads the same checked values the bank was built from (its
    ``default_grade`` is one of the bank's ``grades``), never a caller's copy of them.
    """
    import pandas as pd

    grade, seed = cfg.default_grade, cfg.seed
    banked = {t for (t, g), ids in index.items() if g == grade and ids}
    sub = scores.loc[scores["topic_id"].isin(banked)]
    sub = sub.sort_values(
        ["user_id", "weakness_probability", "topic_id"],
        ascending=[True, False, True],
        kind="stable",
    )
    sub = sub.assign(rank=sub.groupby("user_id", sort=False).cumcount() + 1)
    sub = sub.loc[sub["rank"] <= cfg.topics_per_learner]
    cols: dict[str, list[Any]] = {c: [] for c in QUEST_COLUMNS}
    for user, rank, topic, p, level in zip(
        sub["user_id"],
        sub["rank"],
        sub["topic_id"],
        sub["weakness_probability"],
        sub["action_level"],
        strict=True,
    ):
        ids = index[(topic, grade)]
        for slot, j in enumerate(_pick(seed, user, topic, len(ids), cfg.problems_per_topic)):
            cols["user_id"].append(user)
            cols["rank"].append(int(rank))
            cols["topic_id"].append(topic)
            cols["weakness_probability"].append(float(p))
            cols["action_level"].append(level)
            cols["grade"].append(int(grade))
            cols["slot"].append(slot)
            cols["problem_id"].append(ids[int(j)])
    return pd.DataFrame(cols, columns=list(QUEST_COLUMNS)).astype(QUEST_COLUMNS)


def topic_learners(quests: pd.DataFrame) -> dict[str, int]:
    """Learners whose quest holds each topic (integers, so engines agree exactly)."""
    counts = quests.drop_duplicates(["user_id", "topic_id"]).groupby("topic_id").size()
    return {str(t): int(n) for t, n in counts.items()}


def merge_topic_counts(into: dict[str, int], other: Mapping[str, int]) -> dict[str, int]:
    """Add ``other``'s per-topic learner counts into ``into`` (returned)."""
    for t, n in other.items():
        into[t] = into.get(t, 0) + int(n)
    return into


class Timer:
    """Wall seconds of a block (``with Timer() as t: ...; t.seconds``)."""

    def __enter__(self) -> Timer:
        self._start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start
