"""The embedded word-problem corpus: school-maths templates, deterministic for a seed.

Each topic has a number sampler (constraints that keep answers whole and positive, scaled by a
difficulty level) and at least six sentence shapes. A shape is a text template, an equation
template over the same number slots, and the slots that are its keywords. Counted nouns are
pre-rendered with :func:`count` so the text is grammatical ("1 apple", "3 apples"). The answer is
always computed by ``serving.arithmetic.evaluate`` from the equation, so every record is
consistent by construction (and the tests check it again).

The declarative part (noun vocabularies, grade wordings, every topic's shapes) lives in
``templates.yaml`` next to this module, so a teacher can edit a sentence without touching code;
the samplers stay here as code. The file is read and checked once, at import: a bad file stops
the import with one line naming the file, the entry and the field (:class:`TemplateDataError`).

``prompt_prefix`` selects the difficulty: ``"For a grade N class:"`` (N = 2..5, or another
wording of :data:`PREFIX_STYLES`) scales the numbers; the empty prefix draws a level at random.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BeforeValidator

from data.params import ConfigError, FieldProblem, build_config
from serving.arithmetic import evaluate
from serving.numbers import format_number
from serving.roles import NAMES  # one list of first names for templates and typed roles

TEMPLATE_FILE = Path(__file__).with_name("templates.yaml")

# ----------------------------------------------------------------------------- vocabulary


@dataclass(frozen=True)
class Noun:
    """A countable noun with its plural (irregular plurals are written out)."""

    one: str
    many: str


def _noun_from_word(value: object) -> object:
    """A bare word in the data file is a noun with the regular plural (+s).

    A mapping is passed on, so pydantic validates ``{one, many}`` (an irregular plural written
    out) as the dataclass it is, naming a missing or unknown key; anything else is neither form.
    """
    if isinstance(value, str):
        return Noun(value, value + "s")
    if isinstance(value, Mapping | Noun):
        return value
    raise FieldProblem(f"must be a word or a mapping {{one, many}}, got {value!r}")


# A noun as the data file writes it: ``"jar"`` or ``{one: "box", many: "boxes"}``. Module-level
# (not inline in the hints) because pydantic resolves the postponed annotations by name.
NounEntry = Annotated[Noun, BeforeValidator(_noun_from_word)]


N_LEVELS = 4  # difficulty levels the samplers scale over (one a grade of GRADES)


def count(n: float, noun: Noun) -> str:
    """``"1 apple"``, ``"3 apples"``: the number with the noun in agreement."""
    return f"{fmt(n)} {noun.one if n == 1 else noun.many}"


fmt = format_number  # numbers as a pupil writes them (the serving number slots write the same)


# ----------------------------------------------------------------------------- shapes


@dataclass(frozen=True)
class Shape:
    """One sentence shape: text and equation templates, keyword slots (or literal words)."""

    text: str
    equation: str
    keywords: tuple[str, ...]


Sampler = Callable[[random.Random, int], dict[str, float]]


def _r(rng: random.Random, lo: int, hi: int) -> int:
    return rng.randint(lo, max(lo, hi))


def _addition(rng: random.Random, lv: int) -> dict[str, float]:
    hi = (10, 20, 50, 200)[lv]
    return {"a": _r(rng, 2, hi), "b": _r(rng, 2, hi), "c": _r(rng, 2, hi)}


def _subtraction(rng: random.Random, lv: int) -> dict[str, float]:
    hi = (6, 15, 40, 150)[lv]
    b, c = _r(rng, 1, hi), _r(rng, 1, hi)
    return {"a": b + c + _r(rng, 1, hi), "b": b, "c": c}


def _multiplication(rng: random.Random, lv: int) -> dict[str, float]:
    hi = (5, 8, 10, 12)[lv]
    return {"a": _r(rng, 2, hi), "b": _r(rng, 2, hi + 3 * lv)}


def _division(rng: random.Random, lv: int) -> dict[str, float]:
    b = _r(rng, 2, (5, 6, 10, 12)[lv])
    q = _r(rng, 2, (5, 8, 10, 15)[lv])
    return {"a": b * q, "b": b, "q": q}


def _fractions(rng: random.Random, lv: int) -> dict[str, float]:
    d = rng.choice(((2, 3, 4), (2, 3, 4, 5), (2, 3, 4, 5, 6, 8), (3, 4, 5, 6, 8, 10))[lv])
    n = rng.choice([k for k in range(1, d) if math.gcd(k, d) == 1])  # 2/3, never 4/6
    a = d * _r(rng, 2, (3, 5, 8, 12)[lv])
    b = _r(rng, 1, a - 1)
    return {"a": a, "n": n, "d": d, "b": b}


def _percentages(rng: random.Random, lv: int) -> dict[str, float]:
    p = rng.choice(
        ((10, 50), (10, 20, 25, 50), (5, 10, 20, 25, 50, 75), (5, 15, 30, 40, 60, 80))[lv]
    )
    a = 20 * _r(rng, 1, (3, 5, 10, 30)[lv])
    return {"a": a, "p": p, "b": a * p // 100}


def _speed(rng: random.Random, lv: int) -> dict[str, float]:
    s = _r(rng, 3, (10, 20, 40, 90)[lv])
    t = _r(rng, 1, (3, 4, 6, 8)[lv])
    t2 = _r(rng, 2, (4, 5, 8, 10)[lv])
    return {"s": s, "t": t, "t2": t2, "d": s * t}


def _money(rng: random.Random, lv: int) -> dict[str, float]:
    hi = (5, 10, 20, 50)[lv]
    q = float(_r(rng, 1, hi))
    p = q + _r(rng, 1, hi)  # p > q: "how much more does the first cost" stays positive
    if lv == 3 and rng.random() < 0.5:
        p += 0.5
    a, b = _r(rng, 2, 6), _r(rng, 2, 6)
    w = _r(rng, 2, 10)
    return {
        "p": p,
        "q": q,
        "a": a,
        "b": b,
        "m": a * p + _r(rng, 1, 2 * hi),
        "w": w,
        "pw": p * w,
        "e": 2 * _r(rng, 2, 5 * hi),
    }


def _measurement(rng: random.Random, lv: int) -> dict[str, float]:
    hi = (10, 30, 80, 300)[lv]
    b = _r(rng, 1, hi)
    k = _r(rng, 2, (4, 6, 9, 12)[lv])
    q = _r(rng, 2, (5, 10, 20, 40)[lv])
    return {"a": b + _r(rng, 1, hi), "b": b, "k": k, "q": q, "kq": k * q}


def _area(rng: random.Random, lv: int) -> dict[str, float]:
    hi = (6, 12, 25, 60)[lv]
    length, width = _r(rng, 2, hi), _r(rng, 2, hi)
    return {"l": length, "w": width, "s": _r(rng, 2, hi), "A": length * width}


def _time(rng: random.Random, lv: int) -> dict[str, float]:
    hi = (20, 45, 90, 180)[lv]
    b = _r(rng, 5, hi)
    return {
        "a": b + _r(rng, 5, hi),
        "b": b,
        "m": _r(rng, 5, (20, 30, 45, 60)[lv]),
        "d": _r(rng, 2, (5, 7, 10, 14)[lv]),
        "h": _r(rng, 1, 9),
        "k": _r(rng, 2, (4, 6, 8, 12)[lv]),
    }


def _add_sub(rng: random.Random, lv: int) -> dict[str, float]:
    hi = (8, 15, 40, 150)[lv]
    a, b = _r(rng, 2, hi), _r(rng, 2, hi)
    return {"a": a, "b": b, "c": _r(rng, 1, a + b - 1)}


def _mul_div(rng: random.Random, lv: int) -> dict[str, float]:
    hi = (5, 8, 10, 12)[lv]
    a, q = _r(rng, 2, hi), _r(rng, 2, hi)
    c = _r(rng, 2, min(a, (4, 5, 6, 10)[lv]))  # c <= a: "the objects from c of the a boxes"
    return {"a": a, "b": c * q, "c": c, "ab": a * c * q}


def _mixed(rng: random.Random, lv: int) -> dict[str, float]:
    hi = (5, 8, 10, 12)[lv]
    a, b = _r(rng, 2, hi), _r(rng, 2, hi + 3 * lv)
    return {
        "a": a,
        "b": b,
        "c": _r(rng, 1, a * b - 1),
        "d": _r(rng, 2, (10, 20, 50, 100)[lv]),
        "m": a * b + _r(rng, 1, 4 * hi),  # money left stays positive
    }


def _sampler_by_name(name: object) -> Sampler:
    """The sampler the data file names: samplers are code, so the file refers to them by name."""
    if isinstance(name, str) and name in SAMPLERS:
        return SAMPLERS[name]
    raise FieldProblem(f"unknown sampler {name!r}; allowed: {list(SAMPLERS)}")


# A sampler as the data file writes it, its name in SAMPLERS; code passes the function itself.
SamplerByName = Annotated[Sampler, BeforeValidator(_sampler_by_name)]


@dataclass(frozen=True)
class Topic:
    """A school-maths topic: its sampler and its sentence shapes."""

    name: str
    sampler: SamplerByName
    shapes: tuple[Shape, ...]


SAMPLERS: dict[str, Sampler] = {
    "addition": _addition,
    "subtraction": _subtraction,
    "multiplication": _multiplication,
    "division": _division,
    "fractions": _fractions,
    "percentages": _percentages,
    "speed": _speed,
    "money": _money,
    "measurement": _measurement,
    "area": _area,
    "time": _time,
    "add_sub": _add_sub,
    "mul_div": _mul_div,
    "mixed": _mixed,
}


# ----------------------------------------------------------------------------- generation


@dataclass(frozen=True)
class TemplateProblem:
    """One generated problem, before it becomes a corpus record."""

    topic: str
    keywords: tuple[str, ...]
    prompt_prefix: str
    problem: str
    equation: str
    answer: float
    # The problem with each sampled quantity as the number slot ``<num>`` (literal digits of the
    # shape stay), and the equation over the text's numbers as slots ``n<i>``
    # (serving.numbers draws the values at serving time, so the answer follows from the text).
    skeleton: str = ""
    slot_equation: str = ""


def _slots(
    rng: random.Random, numbers: dict[str, float], data: TemplateData | None = None
) -> dict[str, str]:
    """Every value a shape may use: names, pronouns, nouns, numbers and counted nouns.

    ``data`` defaults to the embedded file's (:data:`DATA`); the loader passes the file it checks.
    """
    d = DATA if data is None else data
    (name, he, him, his), n2, n3 = rng.sample(NAMES, 3)
    obj = rng.choice(d.objects)
    cont = rng.choice(d.containers)
    item, item2 = rng.sample(d.items, 2)
    slots = {
        "name": name,
        "name2": n2[0],
        "name3": n3[0],
        "he": he,
        "He": he.capitalize(),
        "him": him,
        "his": his,
        "obj": obj.one,
        "objs": obj.many,
        "cont": cont.one,
        "conts": cont.many,
        "item": item.one,
        "items": item.many,
        "item2": item2.one,
        "veh": rng.choice(d.vehicles),
        **{key: rng.choice(words) for key, words in d.words.items()},
    }
    article = "an" if slots["subject"][0] in "aeiou" else "a"  # "an art test"
    slots["a_subject"] = f"{article} {slots['subject']}"
    slots["A_subject"] = f"{article.capitalize()} {slots['subject']}"
    cup = rng.choice(d.cups)
    slots["cup"], slots["cups"] = cup.one, cup.many
    nouns = {"obj": obj, "cont": cont, "item": item, **d.counted}
    for key, value in numbers.items():
        slots[key] = fmt(value)
        for noun_key, noun in nouns.items():
            slots[f"{key}_{noun_key}"] = count(value, noun)
    return slots


def render(shape: Shape, slots: dict[str, str]) -> tuple[str, str, tuple[str, ...]]:
    """Text, equation and keywords of a shape for the given slot values."""
    text = shape.text.format(**slots)
    equation = shape.equation.format(**slots)
    keywords = tuple(slots.get(k, k) for k in shape.keywords)
    return text, equation, keywords


def render_skeleton(
    shape: Shape,
    slots: dict[str, str],
    numbers: dict[str, float],
    counted: dict[str, Noun] | None = None,
) -> tuple[str, str]:
    """(skeleton, slot equation) of a shape: every sampled quantity of the text is ``<num>``
    (a counted noun in the plural: the realizer makes "1 apples" singular), and the equation
    names each quantity by its place among the text's numbers, ``n<i>``, literal digits of the
    shape counted too ("has 4 sides that are each <num> cm" -> ``4 * n2``).

    Built from the shape, not by matching values, so equal values ("2 m long and 2 m wide",
    perimeter ``2 * (2 + 2)``) never mix a quantity up with a constant. Raises ValueError for a
    shape whose equation uses a quantity the text does not state, or states one twice.
    ``counted`` defaults to :data:`COUNTED` (the loader passes the file's own while checking it).
    """
    import string

    from serving.arithmetic import numbers_in
    from serving.numbers import NUM_TOKEN

    plurals = {"obj": slots["objs"], "cont": slots["conts"], "item": slots["items"]}
    plurals.update({k: noun.many for k, noun in (COUNTED if counted is None else counted).items()})
    masked = dict(slots)
    place: dict[str, int] = {}
    pos = 0
    for literal, field, _spec, _conv in string.Formatter().parse(shape.text):
        pos += len(numbers_in(literal))
        if field is None:
            continue
        key, _, noun_key = field.partition("_")
        if key in numbers and (not noun_key or noun_key in plurals):
            pos += 1
            if key in place:
                raise ValueError(f"shape states {key!r} twice: {shape.text!r}")
            place[key] = pos
    for key in numbers:
        masked[key] = NUM_TOKEN
        for noun_key, plural in plurals.items():
            masked[f"{key}_{noun_key}"] = f"{NUM_TOKEN} {plural}"
    skeleton = shape.text.format(**masked)
    try:
        slot_equation = shape.equation.format(**{k: f"n{i}" for k, i in place.items()})
    except KeyError as exc:
        raise ValueError(f"equation uses {exc} not stated in {shape.text!r}") from exc
    return skeleton, slot_equation


# ----------------------------------------------------------------------------- the data file


class TemplateDataError(ValueError):
    """A template data file that cannot be used: one line naming the file, entry and field."""


@dataclass(frozen=True)
class TemplateData:
    """The declarative part of the corpus, as the generator uses it.

    Also the schema of ``templates.yaml`` (unknown or missing keys are errors): the file's
    shorthands, a bare word for a regular noun and a sampler by its name, are resolved by the
    field types while the file is validated, so the schema is written once and cannot drift.
    """

    prefix_styles: tuple[str, ...]
    grades: tuple[int, ...]
    objects: tuple[NounEntry, ...]
    containers: tuple[NounEntry, ...]
    items: tuple[NounEntry, ...]
    vehicles: tuple[str, ...]
    words: dict[str, tuple[str, ...]]
    cups: tuple[NounEntry, ...]
    counted: dict[str, NounEntry]
    topics: tuple[Topic, ...]


def _check_shape(shape: Shape, sampler: Sampler, data: TemplateData, where: str) -> None:
    """Render a shape once with throw-away slots: a bad placeholder fails at load, not mid-run."""
    rng = random.Random(0)
    numbers = sampler(rng, 0)
    slots = _slots(rng, numbers, data)
    for field, template in (("text", shape.text), ("equation", shape.equation)):
        try:
            template.format(**slots)
        except (KeyError, IndexError, ValueError) as exc:
            raise TemplateDataError(
                f"{where}.{field}: unknown placeholder or bad braces: {exc}"
            ) from None
    try:
        render_skeleton(shape, slots, numbers, data.counted)
    except ValueError as exc:
        raise TemplateDataError(f"{where}.equation: {exc}") from None


def load_template_data(path: Path = TEMPLATE_FILE) -> TemplateData:
    """Read and check a template data file; :class:`TemplateDataError` (one line) when invalid."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise TemplateDataError(f"{path}: cannot read: {exc}".replace("\n", " ")) from None
    try:
        data = build_config(TemplateData, doc, "")
    except ConfigError as exc:
        raise TemplateDataError(f"{path}: {str(exc).lstrip('.')}") from None
    if len(data.grades) != N_LEVELS:
        raise TemplateDataError(
            f"{path}: grades: {N_LEVELS} grades needed (one a sampler level), got {data.grades}"
        )
    for i, topic in enumerate(data.topics):
        where = f"{path}: topics[{i}]"
        if not topic.shapes:
            raise TemplateDataError(f"{where}.shapes: at least one shape needed")
        if topic.name in (t.name for t in data.topics[:i]):
            raise TemplateDataError(f"{where}.name: topic {topic.name!r} appears twice")
    if "subject" not in data.words:
        raise TemplateDataError(f"{path}: words: missing 'subject' (its article is rendered)")
    for i, topic in enumerate(data.topics):
        for j, shape in enumerate(topic.shapes):
            _check_shape(shape, topic.sampler, data, f"{path}: topics[{i}].shapes[{j}]")
    return data


DATA = load_template_data()
PREFIX_STYLES: tuple[str, ...] = DATA.prefix_styles
GRADES: tuple[int, ...] = DATA.grades
PREFIXES: tuple[str, ...] = ("", *(s.format(g=g) for s in PREFIX_STYLES for g in GRADES))
OBJECTS: tuple[Noun, ...] = DATA.objects
CONTAINERS: tuple[Noun, ...] = DATA.containers
ITEMS: tuple[Noun, ...] = DATA.items
VEHICLES: tuple[str, ...] = DATA.vehicles
WORDS: dict[str, tuple[str, ...]] = DATA.words
CUPS: tuple[Noun, ...] = DATA.cups
COUNTED: dict[str, Noun] = DATA.counted
TOPICS: tuple[Topic, ...] = DATA.topics
TOPIC_NAMES: tuple[str, ...] = tuple(t.name for t in TOPICS)


def level_of_prefix(prefix: str, rng: random.Random) -> int:
    """Difficulty level 0..3 of a prefix (grade 2..5, any wording); the empty prefix draws one."""
    for style in PREFIX_STYLES:
        for level, grade in enumerate(GRADES):
            if prefix == style.format(g=grade):
                return level
    return rng.randrange(N_LEVELS)


def generate_templates(
    *, n: int, seed: int, topics: tuple[str, ...] = TOPIC_NAMES, max_tries_factor: int = 20
) -> list[TemplateProblem]:
    """``n`` distinct template problems, balanced over ``topics``, deterministic for ``seed``.

    Raises ValueError when ``topics`` names an unknown topic or ``n`` distinct problems cannot be
    drawn (the vocabulary is far larger than any sensible ``n``, so this signals a bad config).
    """
    by_name = {t.name: t for t in TOPICS}
    unknown = [t for t in topics if t not in by_name]
    if unknown:
        raise ValueError(f"unknown template topic(s) {unknown}; allowed: {list(by_name)}")
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[TemplateProblem] = []
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > max_tries_factor * max(n, 1):
            raise ValueError(f"could only draw {len(out)} distinct problems of {n} requested")
        topic = by_name[topics[len(out) % len(topics)]]
        shape = rng.choice(topic.shapes)
        # the empty prefix as often as each grade (it was 1 in 5 before the wordings)
        grade = rng.randrange(len(GRADES) + 1)
        prefix = rng.choice(PREFIX_STYLES).format(g=GRADES[grade - 1]) if grade else ""
        level = level_of_prefix(prefix, rng)
        numbers = topic.sampler(rng, level)
        slots = _slots(rng, numbers)
        text, equation, keywords = render(shape, slots)
        if text in seen:
            continue
        seen.add(text)
        skeleton, slot_equation = render_skeleton(shape, slots, numbers)
        out.append(
            TemplateProblem(
                topic=topic.name,
                keywords=keywords,
                prompt_prefix=prefix,
                problem=text,
                equation=equation,
                answer=evaluate(equation),
                skeleton=skeleton,
                slot_equation=slot_equation,
            )
        )
    return out
