"""Story checks the served policy retries on: every keyword in a role it can play, every
entity of the question introduced before it, no keyword only in a sentence without maths.

The rubric's raters marked down "How many jars are left in the cookie?" and keywords stuffed
into filler ("The story is about X."); these checks read the decoded skeleton and the bindings
``serving.story`` made, and ``serving.generator`` rejects and retries an output that fails one
(``role_fit``, ``entity_consistency``, ``keyword_natural`` in ``metrics/generator.json``).
Split from ``serving.story``. Stdlib only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from serving.lexicon import NounInfo
from serving.measures import SENTENCE_END
from serving.roles import NAME_TOKEN, PRONOUN_TOKEN, ROLE_TOKEN, Instance, fits
from serving.scenes import SETTING
from serving.story import Binding

_DIGIT = re.compile(r"\d")


def _entities(sentence: str) -> set[str]:
    """Role instances and person indices a skeleton sentence mentions (``cont``, ``name2``)."""
    out = {m.group("role") + (m.group("inst") or "") for m in ROLE_TOKEN.finditer(sentence)}
    out |= {"name" + (m.group("inst") or "") for m in NAME_TOKEN.finditer(sentence)}
    out |= {"name" + (m.group("inst") or "") for m in PRONOUN_TOKEN.finditer(sentence)}
    return out


def entity_consistent(skeleton: str) -> bool:
    """Every person and item of the question was introduced before it (a decoded skeleton,
    numbers filled or not): "How many <food:pl> does <name2> have?" needs both earlier."""
    parts = [p for p in SENTENCE_END.split(" ".join(skeleton.split())) if p]
    if len(parts) < 2:
        return False
    before: set[str] = set()
    for p in parts[:-1]:
        before |= _entities(p)
    return _entities(parts[-1]) <= before


def keyword_natural(text: str, keyword: str) -> bool:
    """The keyword appears in a sentence that carries the maths (a number or the question) or
    sets the scene for it ("At the bake sale, ..."), never only in a filler sentence."""
    from serving.keywords import keyword_present

    for sentence in SENTENCE_END.split(text):
        if keyword_present(keyword, sentence) and (
            _DIGIT.search(sentence) or sentence.rstrip().endswith("?") or "," in sentence
        ):
            return True
    return False


def _bound_naturally(skeleton: str, b: Binding) -> bool:
    """A role-bound keyword's first sentence carries a number, the question, or another
    person or thing of the story (the setting): never a sentence that only names it."""
    key = Instance(b.role, b.index).key
    for sentence in SENTENCE_END.split(" ".join(skeleton.split())):
        ents = _entities(sentence)
        if key in ents:
            return bool(
                _DIGIT.search(sentence)
                or "<num>" in sentence
                or sentence.rstrip().endswith("?")
                or len(ents) > 1
            )
    return False


@dataclass(frozen=True)
class StoryChecks:
    """The rubric-aligned checks of one typed output (``metrics/generator.json``, served policy)."""

    role_fit: bool
    entity_consistency: bool
    keyword_natural: bool
    keywords_unused: tuple[tuple[str, str], ...]

    @property
    def ok(self) -> bool:
        return (
            self.role_fit
            and self.entity_consistency
            and self.keyword_natural
            and not self.keywords_unused
        )


def check_story(rendered: Any, nouns: Sequence[NounInfo]) -> StoryChecks:
    """Role fit (every bound keyword's class fits its role; no token left unrendered), entity
    consistency (the question's people and items were introduced; ``serving.consistency``
    checks that the equation answers it), keyword naturalness, unused keywords."""
    by_kw = {n.keyword: n for n in nouns}
    natural = all(
        _bound_naturally(rendered.skeleton, b)
        if b.role not in ("literal", "name", SETTING)
        else keyword_natural(rendered.problem_text, b.keyword)
        for b in rendered.bindings
    )
    fit = not rendered.unresolved_slots and all(
        b.role in ("literal", "name", SETTING)
        or fits(by_kw[b.keyword].classes, not by_kw[b.keyword].mass, b.role)
        for b in rendered.bindings
    )
    return StoryChecks(
        role_fit=fit,
        entity_consistency=bool(rendered.skeleton) and entity_consistent(rendered.skeleton),
        keyword_natural=natural,
        keywords_unused=tuple(rendered.keywords_unused),
    )
