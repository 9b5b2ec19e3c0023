"""The authored skeleton bank: typed-role word-problem skeletons, one YAML file per topic.

A skeleton is a problem written once with every noun a teacher might vary as a typed role, every
quantity as a named number and its equation over those names::

    - text: "A {cont} held {a} {food:pl}. {name} took out {b} of them. How many {food:pl} are
             left in the {cont}?"
      equation: "{a} - {b}"

Placeholders (``serving.roles``): ``{thing}`` / ``{thing:pl}`` (a role, singular / plural),
``{thing2}`` (a second, different noun of that role), ``{name}`` ``{name2}`` ``{name3}``,
pronouns ``{he}`` ``{him}`` ``{his}`` (of ``{name}``; ``{He}`` at a sentence start) and
``{he2}`` ... (of ``{name2}``), and numbers: a lower-case letter, optionally with a digit
(``{a}``, ``{n}``, ``{d}``, ``{p2}``). Digits written in the text ("4 wheels") stay literal and
count as numbers of the text. ``$`` before a number is money, ``%`` after one a percentage,
``{n}/{d}`` a fraction (``serving.numbers`` draws values by what each number counts).

:func:`to_target` turns a skeleton into the decoder's text: role tokens (``<food:pl>``), ``<num>``
for every named number, and the equation over ``n<i>`` (the i-th number of the text). The
realizer (``serving.realize``) renders it back for a request. ``python -m
data.word_problems.skeletons FILE...`` checks files (placeholders, equations, that numbers can be
drawn with a whole positive answer at every grade).
"""

from __future__ import annotations

import logging
import random
import re
import string
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from serving.arithmetic import numbers_in
from serving.numbers import NUM_TOKEN
from serving.roles import MAX_INSTANCES, MAX_NAMES, ROLE_BY_NAME

logger = logging.getLogger(__name__)

SKELETON_DIR = Path(__file__).with_name("skeletons")
_NUMBER_FIELD = re.compile(r"^[a-z][0-9]?$")
_ROLE_FIELD = re.compile(r"^(?P<role>[a-z]+?)(?P<inst>[2-9]?)(?P<pl>:pl)?$")
_NAME_FIELD = re.compile(r"^name(?P<inst>[2-9]?)$")
_PRONOUN_FIELD = re.compile(r"^(?P<p>[Hh]e|[Hh]im|[Hh]is)(?P<inst>[2-9]?)$")


class SkeletonError(ValueError):
    """A skeleton that cannot be used: named with its file and position."""


@dataclass(frozen=True)
class Skeleton:
    """One authored skeleton, parsed."""

    topic: str
    text: str
    equation: str
    source: str  # "file.yaml#index"

    @property
    def target_text(self) -> str:
        return to_target(self)[0]

    @property
    def slot_equation(self) -> str:
        return to_target(self)[1]


def _token_of(field: str, where: str) -> str:
    """The decoded-text token of one non-number placeholder."""
    m = _NAME_FIELD.match(field)
    if m:
        if int(m.group("inst") or 1) > MAX_NAMES:
            raise SkeletonError(f"{where}: at most {MAX_NAMES} names")
        return f"<{field}>"
    m = _PRONOUN_FIELD.match(field)
    if m:
        if int(m.group("inst") or 1) > 2:
            raise SkeletonError(f"{where}: pronouns exist for name and name2 only")
        return f"<{field.lower()}>"
    m = _ROLE_FIELD.match(field)
    if m and m.group("role") in ROLE_BY_NAME:
        if int(m.group("inst") or 1) > MAX_INSTANCES:
            raise SkeletonError(f"{where}: at most {MAX_INSTANCES} instances of a role")
        return f"<{field}>"
    raise SkeletonError(
        f"{where}: unknown placeholder {{{field}}}; allowed: a number (a lower-case letter), "
        f"name/name2/name3, he/him/his (2), or a role {sorted(ROLE_BY_NAME)} with optional "
        "instance 2 and ':pl'"
    )


def to_target(sk: Skeleton) -> tuple[str, str]:
    """(decoded-text skeleton, equation over ``n<i>``) of an authored skeleton."""
    where = sk.source
    pieces: list[str] = []
    place: dict[str, int] = {}
    pos = 0
    try:
        parsed = list(string.Formatter().parse(sk.text))
    except ValueError as exc:
        raise SkeletonError(f"{where}: bad braces in text: {exc}") from exc
    for literal, field, spec, _conv in parsed:
        pieces.append(literal)
        pos += len(numbers_in(literal))
        if field is None:
            continue
        full = f"{field}:{spec}" if spec else field
        if _NUMBER_FIELD.match(field) and not spec:
            if field in place:
                raise SkeletonError(f"{where}: number {{{field}}} appears twice in the text")
            pos += 1
            place[field] = pos
            pieces.append(NUM_TOKEN)
        else:
            pieces.append(_token_of(full, where))
    text = re.sub(r"\s+", " ", "".join(pieces)).strip()
    try:
        eq_fields = [f for _, f, _, _ in string.Formatter().parse(sk.equation) if f is not None]
    except ValueError as exc:
        raise SkeletonError(f"{where}: bad braces in equation: {exc}") from exc
    missing = [f for f in eq_fields if f not in place]
    if missing:
        raise SkeletonError(f"{where}: equation uses {missing} not in the text")
    unused = [f for f in place if f not in eq_fields]
    if unused:
        raise SkeletonError(f"{where}: numbers {unused} of the text are not in the equation")
    equation = sk.equation.format(**{k: f"n{i}" for k, i in place.items()})
    if not text.rstrip().endswith("?"):
        raise SkeletonError(f"{where}: the text must end with its question ('?')")
    return text, re.sub(r"\s+", " ", equation).strip()


def load_file(path: Path) -> list[Skeleton]:
    """Skeletons of one YAML file: ``{topic: str, skeletons: [{text, equation}, ...]}``."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise SkeletonError(f"{path}:{at} not valid YAML ({getattr(exc, 'problem', exc)})") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("topic"), str):
        raise SkeletonError(f"{path}: expected a mapping with 'topic' and 'skeletons'")
    items = doc.get("skeletons")
    if not isinstance(items, list) or not items:
        raise SkeletonError(f"{path}: 'skeletons' must be a non-empty list")
    out = []
    for i, item in enumerate(items):
        where = f"{path.name}#{i}"
        if not isinstance(item, dict) or not {"text", "equation"} <= set(item):
            raise SkeletonError(f"{where}: each skeleton needs 'text' and 'equation'")
        sk = Skeleton(doc["topic"], str(item["text"]).strip(), str(item["equation"]), where)
        to_target(sk)  # validates
        out.append(sk)
    return out


def load_bank(directory: Path = SKELETON_DIR) -> list[Skeleton]:
    """Every skeleton of ``directory``'s ``*.yaml`` files, in file-name order."""
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise SkeletonError(f"{directory}: no skeleton files (*.yaml)")
    out: list[Skeleton] = []
    for f in files:
        out.extend(load_file(f))
    texts = [s.target_text for s in out]
    dup = {t for t in texts if texts.count(t) > 1}
    if dup:
        raise SkeletonError(f"{directory}: duplicate skeletons {sorted(dup)[:3]}")
    return out


def check_drawable(sk: Skeleton, *, tries: int = 40, seed: int = 0) -> list[str]:
    """Grades at which the number sampler finds no whole, positive answer for ``sk`` (empty
    when every grade works): a skeleton whose equation cannot come out whole is useless."""
    from serving.arithmetic import EquationError, evaluate
    from serving.consistency import check_consistency
    from serving.numbers import SLOT_TOKEN, fill_numbers
    from serving.prompt import render_slots

    text, equation = to_target(sk)
    bad = []
    # the served check must accept the skeleton's own equation (each number of the text used
    # as often as it is written, no constant the text does not say)
    sample = SLOT_TOKEN.sub(" ", fill_numbers(text, equation, topic=sk.topic, seed=seed))
    verdict = check_consistency(sample, render_slots(sample, equation))
    if not verdict.ok and verdict.reason.startswith(("numbers_", "parse_", "no_")):
        bad.append(f"the consistency check refuses its equation ({verdict.reason})")
    for grade in (1, 2, 3, 4, 5, 6):
        ok = 0
        for s in range(tries):
            filled = fill_numbers(
                text, equation, topic=sk.topic, prompt_prefix=f"Grade {grade}:", seed=seed + s
            )
            try:
                value = evaluate(render_slots(SLOT_TOKEN.sub(" ", filled), equation))
            except EquationError:
                continue
            if value > 0 and (value * 100).is_integer():
                ok += 1
        if ok < tries // 2:
            bad.append(f"grade {grade}: {ok}/{tries} draws whole and positive")
    return bad


@dataclass(frozen=True)
class Rendered:
    """A skeleton rendered for one request."""

    skeleton: Skeleton
    text: str
    equation: str
    answer: float
    bindings: tuple[Any, ...]
    unused: tuple[tuple[str, str], ...]


def render_request(
    sk: Skeleton, keywords: Sequence[str], *, prompt_prefix: str, lexicon: Any, seed: int
) -> Rendered:
    """Numbers drawn for the request's grade, roles bound and rendered, the equation rendered
    with the text's numbers and evaluated (``serving.story``, ``serving.numbers``)."""
    from serving.arithmetic import evaluate
    from serving.lexicon import describe
    from serving.prompt import render_slots
    from serving.story import tell

    text, equation = to_target(sk)
    story = tell(
        text,
        equation,
        describe(lexicon, keywords),
        topic=sk.topic,
        prompt_prefix=prompt_prefix,
        seed=seed,
    )
    rendered_eq = render_slots(story.text, equation)
    return Rendered(
        sk, story.text, rendered_eq, evaluate(rendered_eq), story.bindings, story.unused
    )


def choose_skeleton(
    bank: Sequence[Skeleton], topic: str, keywords: Sequence[str], lexicon: Any, rng: random.Random
) -> Skeleton:
    """A skeleton of ``topic`` that gives the most keywords a role (ties drawn with ``rng``):
    the rule-based selector, the baseline the model is measured against."""
    from serving.lexicon import describe
    from serving.story import bind

    nouns = describe(lexicon, keywords)
    cands = [s for s in bank if s.topic == topic]
    if not cands:
        raise SkeletonError(f"no skeleton for topic {topic!r}")
    scored = []
    for sk in cands:
        bindings, _unused = bind(to_target(sk)[0], nouns)
        scored.append((len(bindings), sk))
    top = max(n for n, _ in scored)
    return rng.choice([sk for n, sk in scored if n == top])


def main(argv: Sequence[str] | None = None) -> int:
    """Check skeleton files; print one line per problem; exit 1 if any."""
    args = list(sys.argv[1:] if argv is None else argv) or [
        str(p) for p in sorted(SKELETON_DIR.glob("*.yaml"))
    ]
    problems = 0
    rng = random.Random(0)
    for name in args:
        try:
            skeletons = load_file(Path(name))
        except SkeletonError as exc:
            print(exc)
            problems += 1
            continue
        for sk in skeletons:
            for msg in check_drawable(sk, seed=rng.randrange(10**6)):
                print(f"{sk.source}: {msg}")
                problems += 1
        print(f"{name}: {len(skeletons)} skeletons checked")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
