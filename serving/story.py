"""One coherent story: render a decoded typed-role skeleton for a request.

The model writes a skeleton (``serving.roles``): ``A <cont> held <num> <food:pl>. <name> took
out <num> of them. How many <food:pl> are left in the <cont>?``. :func:`bind` decides which
requested keyword plays which role, only where the keyword's class (``serving.lexicon``) fits;
a keyword the text already names literally ("profit", "change") is used as written; every other
role gets an everyday noun from its pool, names a person drawn once, pronouns agree. A keyword
with no fitting role is reported with why (``unused``), never forced. Stdlib + inflect only.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from serving.lexicon import NounInfo
from serving.realize import (
    _capitalize_sentences,
    _count_cue,
    _fix_articles,
    _fix_unit_counts,
    _prev_token,
    article_for,
    fix_spacing,
    noun_forms,
)
from serving.roles import (
    NAME_TOKEN,
    NAMES,
    PRONOUN_TOKEN,
    ROLE_BY_NAME,
    ROLE_TOKEN,
    Instance,
    fits,
    instances,
    names_used,
)

_TOKEN_OR_TEXT = re.compile(r"<[a-z]+[0-9]?(?::pl)?>")


@dataclass(frozen=True)
class Binding:
    """A keyword bound to a role instance (``role`` ``literal`` when the text names it)."""

    keyword: str
    role: str
    index: int


@dataclass(frozen=True)
class Story:
    """A rendered problem text, who plays what, and the keywords that found no role."""

    text: str
    bindings: tuple[Binding, ...]
    unused: tuple[tuple[str, str], ...]  # (keyword, reason)


def literal_text(skeleton: str) -> str:
    """The skeleton without its tokens (what it says in words)."""
    return _TOKEN_OR_TEXT.sub(" ", skeleton)


def names_literally(skeleton: str, keyword: str) -> bool:
    """Whether the skeleton's own words contain ``keyword`` (any inflection, any case)."""
    text = literal_text(skeleton).lower()
    sing, plural = noun_forms(keyword)
    for form in {sing.lower(), plural.lower(), keyword.lower()}:
        if re.search(rf"(?<![\w-]){re.escape(form)}(?![\w-])", text):
            return True
    return False


def _specificity(role: str) -> int:
    return -len(ROLE_BY_NAME[role].accepts)


def bind(skeleton: str, nouns: Sequence[NounInfo]) -> tuple[list[Binding], list[tuple[str, str]]]:
    """(bindings, unused) of ``keywords`` on ``skeleton`` (see the module doc).

    Among all assignments the one binding the most keywords wins, then the one using the most
    specific roles (a bakery as a store rather than a place), then the keywords' order.
    """
    insts = list(instances(skeleton))
    n_names = len(names_used(skeleton))
    bindings: list[Binding] = []
    pending: list[tuple[str, NounInfo]] = []
    unused: list[tuple[str, str]] = []
    name_slots = list(range(1, n_names + 1))
    for info in nouns:
        kw = info.keyword
        if names_literally(skeleton, kw):
            bindings.append(Binding(kw, "literal", 0))
        elif info.proper:
            if name_slots:
                bindings.append(Binding(kw, "name", name_slots.pop(0)))
            else:
                unused.append((kw, "a person's name, and this problem has no person to name"))
        elif not info.known:
            unused.append((kw, "not a noun the lexicon knows"))
        else:
            pending.append((kw, info))
    best: tuple[tuple[int, int], list[Binding]] = ((0, 0), [])
    options: list[list[Instance | None]] = []
    for _kw, info in pending:
        ok: list[Instance | None] = [
            i for i in insts if fits(info.classes, None if info.proper else not info.mass, i.role)
        ]
        options.append([*ok, None])
    for choice in itertools.product(*options) if pending else [()]:
        chosen = [c for c in choice if c is not None]
        if len({c.key for c in chosen}) < len(chosen):
            continue
        score = (len(chosen), sum(_specificity(c.role) for c in chosen))
        if score > best[0] or (not best[1] and chosen):
            best = (
                score,
                [
                    Binding(kw, c.role, c.index)
                    for (kw, _i), c in zip(pending, choice, strict=True)
                    if c is not None
                ],
            )
    bound = {b.keyword for b in best[1]}
    for kw, info in pending:
        if kw not in bound:
            kind = info.primary.replace("_", " ")
            unused.append(
                (kw, f"{article_for(kind)} {kind} noun, and no role of this problem takes one")
            )
    return bindings + best[1], unused


def _role_forms(word: str, mass: bool) -> tuple[str, str]:
    sing, plural = noun_forms(word)
    return (sing, sing) if mass else (sing, plural)


def render_story(skeleton: str, nouns: Sequence[NounInfo], *, seed: int = 0) -> Story:
    """The skeleton with every role, name and pronoun rendered (numbers already filled);
    ``nouns`` are the request's keywords as the lexicon knows them (``serving.lexicon``)."""
    rng = random.Random(seed)
    keywords = [n.keyword for n in nouns]
    by_kw = {n.keyword: n for n in nouns}
    bindings, unused = bind(skeleton, nouns)
    forms: dict[str, tuple[str, str]] = {}
    used_heads: set[str] = set()
    for b in bindings:
        if b.role in ("literal", "name"):
            continue
        info = by_kw[b.keyword]
        key = Instance(b.role, b.index).key
        forms[key] = _role_forms(b.keyword, info.mass)
        used_heads.add(noun_forms(b.keyword)[0].lower().rsplit(" ", 1)[-1])
    for kw in keywords:
        used_heads.add(noun_forms(kw)[0].lower().rsplit(" ", 1)[-1])
    for inst in instances(skeleton):
        if inst.key in forms:
            continue
        pool = [
            p for p in ROLE_BY_NAME[inst.role].pool if p[0].rsplit(" ", 1)[-1] not in used_heads
        ]
        one, many = rng.choice(pool or list(ROLE_BY_NAME[inst.role].pool))
        used_heads.add(one.rsplit(" ", 1)[-1])
        forms[inst.key] = (one, many)
    people = list(NAMES)
    rng.shuffle(people)
    given = {b.index: b.keyword for b in bindings if b.role == "name"}
    chosen: dict[int, tuple[str, str, str, str]] = {}
    for idx in names_used(skeleton):
        if idx in given:
            # a teacher's name: pronouns by the pool's gender when the name is in it
            # (a name the pool does not know is repeated: "Alex ... Alex's", never "they has")
            match = next((p for p in NAMES if p[0].lower() == given[idx].lower()), None)
            name = given[idx]
            chosen[idx] = (name, *(match[1:] if match else (name, name, f"{name}'s")))
        else:
            taken = {c[0] for c in chosen.values()} | set(given.values())
            chosen[idx] = next(p for p in people if p[0] not in taken)

    def role_sub(m: re.Match[str]) -> str:
        key = m.group("role") + (m.group("inst") or "")
        sing, plural = forms[key]
        cue = _count_cue(_prev_token(m.string, m.start()))
        if cue is None:
            return plural if m.group("pl") else sing
        return sing if cue == "sing" else plural

    text = ROLE_TOKEN.sub(role_sub, " ".join(skeleton.split()))
    text = NAME_TOKEN.sub(lambda m: chosen[int(m.group("inst") or 1)][0], text)
    pron_at = {"he": 1, "him": 2, "his": 3}
    text = PRONOUN_TOKEN.sub(
        lambda m: chosen[int(m.group("inst") or 1)][pron_at[m.group("p")]], text
    )
    text = _capitalize_sentences(_fix_unit_counts(_fix_articles(fix_spacing(text))))
    return Story(text, tuple(bindings), tuple(unused))


def render_typed_output(
    decoded: str,
    keywords: Sequence[str],
    *,
    topic: str = "",
    prompt_prefix: str = "",
    seed: int = 0,
    nouns: Sequence[NounInfo],
) -> Any:
    """``serving.realize.render_output`` for a typed-role model: number values first (seeded,
    for the topic and grade), then roles, names and pronouns (:func:`render_story`), then the
    equation's number slots. One post-processing for evaluation, serving and the drop-in;
    ``nouns`` are the request's keywords as the lexicon knows them, in request order."""
    from serving.numbers import fill_numbers
    from serving.prompt import TARGET_SEP, parse_target
    from serving.realize import RenderedProblem, leftover_tokens, unresolved_slots

    problem_raw, sep, rest = decoded.partition(TARGET_SEP)
    equation_raw = rest.partition(TARGET_SEP)[0].strip() if sep else ""
    filled = fill_numbers(
        problem_raw, equation_raw or None, topic=topic, prompt_prefix=prompt_prefix, seed=seed
    )
    story = render_story(filled, nouns, seed=seed)
    joined = f"{story.text} {TARGET_SEP} {rest}" if sep else story.text
    problem_text, equation = parse_target(joined)
    return RenderedProblem(
        problem_text=problem_text,
        equation_text=equation,
        complete=problem_text.endswith("?"),
        unresolved_slots=unresolved_slots(problem_text) + leftover_tokens(problem_text),
        bindings=story.bindings,
        keywords_unused=story.unused,
        skeleton=" ".join(problem_raw.split()),
    )


def render_any(
    decoded: str,
    keywords: Sequence[str],
    *,
    topic: str = "",
    prompt_prefix: str = "",
    seed: int = 0,
    nouns: Sequence[NounInfo] | None = None,
) -> Any:
    """The typed render when ``nouns`` are given (a typed-role model), else the keyword-slot
    ``serving.realize.render_output``."""
    from serving.realize import render_output

    if nouns is None:
        return render_output(decoded, keywords, topic=topic, prompt_prefix=prompt_prefix, seed=seed)
    return render_typed_output(
        decoded, keywords, topic=topic, prompt_prefix=prompt_prefix, seed=seed, nouns=nouns
    )


# ----------------------------------------------------------------------------- checks

_SENTENCE = re.compile(r"(?<=[.?!])\s+")
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
    parts = [p for p in _SENTENCE.split(" ".join(skeleton.split())) if p]
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

    for sentence in _SENTENCE.split(text):
        if keyword_present(keyword, sentence) and (
            _DIGIT.search(sentence) or sentence.rstrip().endswith("?") or "," in sentence
        ):
            return True
    return False


def _bound_naturally(skeleton: str, b: Binding) -> bool:
    """A role-bound keyword's first sentence carries a number, the question, or another
    person or thing of the story (the setting): never a sentence that only names it."""
    key = Instance(b.role, b.index).key
    for sentence in _SENTENCE.split(" ".join(skeleton.split())):
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
        if b.role not in ("literal", "name")
        else keyword_natural(rendered.problem_text, b.keyword)
        for b in rendered.bindings
    )
    fit = not rendered.unresolved_slots and all(
        b.role in ("literal", "name")
        or fits(by_kw[b.keyword].classes, not by_kw[b.keyword].mass, b.role)
        for b in rendered.bindings
    )
    return StoryChecks(
        role_fit=fit,
        entity_consistency=bool(rendered.skeleton) and entity_consistent(rendered.skeleton),
        keyword_natural=natural,
        keywords_unused=tuple(rendered.keywords_unused),
    )
