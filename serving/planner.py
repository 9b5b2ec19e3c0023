"""The role plan of a typed-role request: which role each keyword is asked to play.

A typed-role model writes a skeleton for a topic and a list of roles (``serving.prompt``:
``cookies (food), jar (cont)``). It writes reliable skeletons for the role combinations it was
trained on, so the plan comes from those: ``plans.json`` (written by ``prepare_text`` beside the
tokenizer, shipped in the artifact) holds, per topic, how often each combination of labels was
trained and which words the topic's skeletons write literally ("profit", "wheels"). For a
request, every trained combination that the keywords can fill (a role only by a keyword whose
lexicon classes fit it, ``word`` only by a word the topic writes, ``name`` only by a name) is a
plan; the most trained first, so retries walk down the list. Without any, each keyword asks for
its most specific role (``serving.roles.plan_roles``). Stdlib only.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serving.roles import NAME_LABEL, PLANS_FILE, WORD_LABEL, fits, plan_roles

MAX_PLANS = 16


@dataclass(frozen=True)
class Planner:
    """Trained label combinations and literal words, per topic."""

    combos: Mapping[str, Mapping[tuple[str, ...], int]]
    literals: Mapping[str, frozenset[str]]

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]]) -> Planner:
        """From training records that carry ``roles`` (the label of each keyword)."""
        combos: dict[str, Counter[tuple[str, ...]]] = {}
        literals: dict[str, set[str]] = {}
        for r in records:
            labels = r.get("roles")
            if not labels:
                continue
            combos.setdefault(r["topic"], Counter())[tuple(sorted(labels))] += 1
            for kw, label in zip(r["keywords"], labels, strict=True):
                if label == WORD_LABEL:
                    literals.setdefault(r["topic"], set()).add(_norm(kw))
        return cls(
            {t: dict(c) for t, c in combos.items()},
            {t: frozenset(w) for t, w in literals.items()},
        )

    def to_json(self) -> dict[str, Any]:
        return {
            t: {
                "combos": [[list(k), n] for k, n in sorted(c.items(), key=lambda kv: -kv[1])],
                "literals": sorted(self.literals.get(t, ())),
            }
            for t, c in sorted(self.combos.items())
        }

    @classmethod
    def load(cls, path: Path) -> Planner:
        return cls.load_json(json.loads(Path(path).read_text(encoding="utf-8")))

    @classmethod
    def load_json(cls, doc: Mapping[str, Any]) -> Planner:
        return cls(
            {t: {tuple(k): int(n) for k, n in v["combos"]} for t, v in doc.items()},
            {t: frozenset(v.get("literals", ())) for t, v in doc.items()},
        )

    def _can(self, topic: str, noun: Any, label: str) -> bool:
        if label == NAME_LABEL:
            return bool(getattr(noun, "proper", False))
        if label == WORD_LABEL:
            return _norm(noun.keyword) in self.literals.get(topic, frozenset())
        if getattr(noun, "proper", False) or not noun.known:
            return False
        return fits(noun.classes, not noun.mass, label)

    def plans(self, topic: str, nouns: Sequence[Any]) -> list[list[str]]:
        """Label lists (in keyword order) the model was trained on for ``topic``, most trained
        first (at most ``MAX_PLANS``)."""
        k = len(nouns)
        scored: dict[tuple[str, ...], int] = {}
        for combo, count in self.combos.get(topic, {}).items():
            if len(combo) != k:
                continue
            for perm in set(itertools.permutations(combo)):
                if all(self._can(topic, n, lab) for n, lab in zip(nouns, perm, strict=True)):
                    scored[perm] = max(scored.get(perm, 0), count)
        ranked = sorted(scored, key=lambda p: (-scored[p], p))
        return [list(p) for p in ranked[:MAX_PLANS]]

    def plan(self, topic: str, nouns: Sequence[Any], attempt: int = 0) -> list[str]:
        """The labels of decoding attempt ``attempt``: the trained plans in turn, then each
        keyword's most specific role combinations."""
        plans = self.plans(topic, nouns)
        if attempt < len(plans):
            return plans[attempt]
        return plan_roles(nouns, attempt - len(plans))


def _norm(word: str) -> str:
    from serving.realize import noun_forms

    return noun_forms(" ".join(word.split()))[0].lower()


def load_planner(model_dir: Path) -> Planner | None:
    """The planner of a typed-role model directory, None when it has no ``plans.json``."""
    path = Path(model_dir) / PLANS_FILE
    return Planner.load(path) if path.is_file() else None
