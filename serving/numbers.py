"""Number slots in the problem text: the model writes ``<num>``, a seeded sampler picks values.

Why: the keyword slots left answer consistency the weakest metric (0.91 on unseen
requests, 0.94 on templates), and every failure was a number the model wrote itself: a
subtraction whose second number is larger ("had 5, gave away 8": a negative answer), a digit
loop ("121212"), a number the equation never uses. Trained targets now write each quantity of
the problem as ``<num>`` (a literal the shape needs, "a square has 4 sides", stays a digit) and
:func:`fill_numbers` draws the values for a decoded text so that its own equation gives a whole,
positive answer (cents for money): the equation's structure is the model's, the arithmetic
never is. Values follow the topic and the grade of the request (the templates' difficulty
levels), and the quantity the slot counts (``%``, ``$``, hours, minutes, a fraction, a factor
of a product). The draw is seeded by the request's seed, so a seeded request is reproducible.

Stdlib only (serving-reachable). The slot numbering is the equation's: ``n<i>`` is the i-th
number of the text once filled (``serving.prompt``), so a literal digit keeps its place.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from serving.arithmetic import EquationError, evaluate, quotients
from serving.currency import SYMBOLS
from serving.grade import (
    Skill,
    asked_denominators,
    asked_skill,
    asked_tables,
    level_of,
    practises,
    stretch_skill,
    stretched,
)
from serving.measures import SENTENCE_END, measures
from serving.measures import Slot as _Slot
from serving.prompt import render_slots
from serving.sizes import plan_sizes
from serving.topics import canonical_topic
from serving.units import MEASURE_RANGES, UNIT_RANGES, _unit, is_unit_word

NUM_TOKEN = "<num>"
"""The number slot of a training target and of decoded text (a tokenizer added token)."""

MAX_TRIES = 400
MAX_SEARCH_SLOTS = 12  # more slots is a degenerate decode (a loop of <num>): one draw, no search
MAX_ANSWER = 1e6

# Literal numbers of the text (as serving.arithmetic.numbers_in reads them) and number slots, in
# text order: together they are what the equation's n<i> count.
# Keyword slots (``<k2s>``) are matched only to be skipped: their digit is not a number.
# Keyword slots and typed-role tokens (``<name2>``, ``<thing2:pl>``, serving.roles) are matched
# only to be skipped: their digit is not a number of the text.
_ITEM = re.compile(
    rf"{re.escape(NUM_TOKEN)}|<[a-z]+\d*s?(?::pl)?>"
    r"|(?<![\d.])(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?!\d*[A-Za-z])"
)
SLOT_TOKEN = re.compile(r"<(?!num>)[a-z]+\d*s?(?::pl)?>")
_SLOT_REF = re.compile(r"(?<![\w.])n\s?(\d+)(?![\w.])")
_WORD = re.compile(r"\s*(?:(?:more|fewer|extra|new|other)\s+(?=[A-Za-z]))?([A-Za-z]+|%)")


@dataclass(frozen=True)
class TopicRange:
    """Upper bounds per difficulty level: a plain quantity, and a factor (of a product, or the
    divisor of a quotient), which stays small as in the templates' samplers."""

    count: tuple[int, int, int, int, int]
    factor: tuple[int, int, int, int, int] = (5, 9, 12, 15, 25)
    step: int = 1  # percentages count in tens, so "10 % of" stays whole


TOPIC_RANGES: dict[str, TopicRange] = {
    "addition": TopicRange((10, 30, 100, 300, 2000), (10, 30, 100, 300, 2000)),
    "subtraction": TopicRange((20, 50, 150, 400, 2000), (20, 50, 150, 400, 2000)),
    "multiplication": TopicRange((20, 48, 100, 150, 400), (5, 9, 12, 20, 40)),
    "division": TopicRange((25, 48, 100, 180, 600), (5, 6, 10, 12, 25)),
    "fractions": TopicRange((12, 25, 48, 120, 240), (6, 8, 12, 15, 20)),
    "percentages": TopicRange((60, 100, 200, 600, 1200), (60, 100, 200, 600, 1200), step=10),
    "speed": TopicRange((30, 80, 240, 720, 900), (5, 6, 10, 12, 15)),
    "money": TopicRange((20, 40, 100, 300, 600), (6, 6, 8, 10, 15)),
    "measurement": TopicRange((20, 60, 160, 600, 1500), (4, 6, 9, 12, 15)),
    "area and perimeter": TopicRange((6, 12, 25, 60, 90), (6, 12, 25, 60, 90)),
    "time": TopicRange((40, 90, 180, 360, 480), (4, 6, 8, 12, 15)),
    "addition and subtraction": TopicRange((16, 40, 120, 400, 2000), (16, 40, 120, 400, 2000)),
    "multiplication and division": TopicRange((25, 64, 100, 150, 400), (5, 9, 12, 20, 30)),
    "mixed operations": TopicRange((25, 64, 120, 150, 400)),
}
DEFAULT_RANGE = TopicRange((20, 50, 100, 200, 500))
PERCENTS: tuple[tuple[int, ...], ...] = (
    (10, 50),
    (10, 20, 25, 50),
    (5, 10, 20, 25, 50, 75),
    (5, 15, 30, 40, 60, 80),
    (5, 15, 35, 45, 65, 85),
)
# a discount, a sale or an amount off: rarely more than half ("an 80% discount" is no shop's)
DISCOUNT_PERCENTS = (10, 20, 25, 30, 40, 50)
DENOMINATORS: tuple[tuple[int, ...], ...] = (
    (2, 3, 4),
    (2, 3, 4, 5),
    (2, 3, 4, 5, 6, 8),
    (3, 4, 5, 6, 8, 10),
    (5, 6, 8, 10, 12),
)
PRICE_HI = (5, 10, 20, 50, 80)
MINUTES_HI = (30, 45, 60, 90, 120)  # how long an activity without a size of its own lasts
FACTOR_LO = (2, 2, 3, 4, 6)  # smallest factor or divisor by level
COUNT_LO = (2, 3, 8, 15, 40)  # smallest plain count by level


def format_number(x: float) -> str:
    """Numbers as a pupil writes them: whole numbers without a decimal point, else 2 decimals
    (the templates write theirs with this too)."""
    if float(x).is_integer():
        return str(int(x))
    return f"{x:.2f}"


def _factor_slots(equation: str | None) -> set[int]:
    """0-based number positions used as a factor (next to ``*``) or as a divisor (after ``/``)."""
    out: set[int] = set()
    if not equation:
        return out
    for m in _SLOT_REF.finditer(equation):
        before = equation[: m.start()].rstrip()[-1:]
        after = equation[m.end() :].lstrip()[:1]
        if before in ("*", "/") or after == "*":
            out.add(int(m.group(1)) - 1)
    return out


# "pays with $<num>", "hands the cashier $<num>": a note or a round amount, not $79
_PAYS_WITH = re.compile(
    r"\b(?:pays?|paid|paying|hands?(?: over)?|gives?)\b(?:\s+(?:the|a|an)\s+\w+)?"
    r"(?:\s+(?:with|using))?(?:\s+an?)?\s*$",
    re.I,
)
_DISCOUNT = re.compile(r"\b(?:discount|off|sale|reduced|cheaper|saves?)\b", re.I)
NOTES = (5, 10, 20, 50, 100)


def _sentence_start(text: str, pos: int) -> int:
    """Where the sentence of ``text`` that holds position ``pos`` starts."""
    return max((m.end() for m in SENTENCE_END.finditer(text, 0, pos)), default=0)


def _sentence_before(text: str, pos: int) -> str:
    """The sentence of ``text`` that holds position ``pos``, up to ``pos``."""
    return text[_sentence_start(text, pos) : pos]


def _sentence_at(text: str, pos: int) -> str:
    """The sentence of ``text`` that holds position ``pos``."""
    end = SENTENCE_END.search(text, pos)
    return text[_sentence_start(text, pos) : end.start() if end else len(text)]


def _slots(text: str, equation: str | None) -> list[_Slot]:
    factors = _factor_slots(equation)
    items = [m for m in _ITEM.finditer(text) if m.group(0) == NUM_TOKEN or m.group(0)[0] != "<"]
    ends = [m.start() for m in SENTENCE_END.finditer(text)]
    out: list[_Slot] = []
    for index, m in enumerate(items):
        if m.group(0) != NUM_TOKEN:
            continue
        after = text[m.end() :]
        before = text[: m.start()].rstrip()
        word_m = _WORD.match(after)
        word = word_m.group(1) if word_m else ""
        if re.match(rf"\s*/\s*{re.escape(NUM_TOKEN)}", after):
            kind = "numerator"
        elif before.endswith("/") and before[:-1].rstrip().endswith(NUM_TOKEN):
            kind = "denominator"
        elif word == "%" or word.lower() in ("percent", "per cent"):
            kind = "discount" if _DISCOUNT.search(_sentence_at(text, m.start())) else "percent"
        elif before.endswith("$"):
            kind = (
                "price"
                if index in factors
                else "note"
                if _PAYS_WITH.search(before[:-1])
                else "money"
            )
        elif _unit(word) in UNIT_RANGES:
            kind = f"unit:{_unit(word)}"
        elif _unit(word) in MEASURE_RANGES and index not in factors:
            kind = f"measure:{_unit(word)}"
        elif word.lower().startswith("minute"):
            kind = "minute"
        else:
            kind = "factor" if index in factors else "count"
        sentence = sum(e <= m.start() for e in ends)
        out.append(
            _Slot(
                m.start(),
                m.end(),
                index,
                kind,
                index in factors,
                measures(after, kind, word, _sentence_before(text, m.start())),
                sentence,
            )
        )
    return out


def _draw(
    slot: _Slot,
    rng_: TopicRange,
    lv: int,
    rng: random.Random,
    den: int,
    part: bool = False,
    size: tuple[int, int] | None = None,
) -> float:
    """One value for ``slot`` at level ``lv``; ``den`` is this draw's fraction denominator;
    ``size`` the plausible range of what it measures (``serving.sizes``), when known."""
    if size is not None and slot.kind in ("count", "factor"):
        # how many of a noun: the grade's range where the noun allows it ("an easy one":
        # 6 pencils in each of 3 cases, not 15 in 12), else the noun's (teams are 2-16)
        lo, hi = _grade_range(slot.kind, rng_, lv, part)
        lo, hi = max(lo, size[0]), min(hi, size[1])
        if lo <= hi:
            return float(rng.randint(lo, hi))
    if size is not None:
        # "in 1 hour" makes a product or a division trivial: a factor is at least 2 if it can be
        lo = max(size[0], 2) if slot.factor and max(size) >= 2 else size[0]
        unit = slot.kind[8:] if slot.kind.startswith("measure:") else slot.measures
        step = MEASURE_RANGES[unit][2] if unit in MEASURE_RANGES else 1
        if step > 1 and max(size) >= step:  # "450 grams of flour", not 437
            return float(rng.randint(-(-lo // step), max(size) // step) * step)
        return float(rng.randint(lo, max(size)))
    kind = slot.kind
    if kind == "percent":
        return float(rng.choice(PERCENTS[lv]))
    if kind == "discount":  # the grade's shares, but at most half off
        return float(rng.choice([p for p in PERCENTS[lv] if p <= 50] or DISCOUNT_PERCENTS))
    if kind == "note":
        return float(rng.choice(NOTES[: 3 + min(lv, 2)]))
    if kind == "denominator":
        return float(den)
    if kind == "numerator":
        return float(rng.choice([k for k in range(1, den) if math.gcd(k, den) == 1]))
    if kind == "price":
        price = float(rng.randint(1, PRICE_HI[lv]))
        return price + 0.5 if lv >= 3 and rng.random() < 0.25 else price
    if kind == "money":
        return float(rng.randint(2, 3 * PRICE_HI[lv]))
    if kind.startswith("unit:"):
        lo, his = UNIT_RANGES[kind[5:]]
        # "in 1 hour" makes a division trivial: a factor or divisor is at least 2
        return float(rng.randint(max(lo, 2) if slot.factor else lo, his[lv]))
    if kind.startswith("measure:"):
        los, his_m, step_m = MEASURE_RANGES[kind[8:]]
        return float(rng.randint(los[lv] // step_m, max(los[lv], his_m[lv]) // step_m) * step_m)
    if kind == "minute":  # an activity of a day: "331 minutes on the charity run" is not
        return float(rng.randint(5, max(5, min(rng_.count[lv], MINUTES_HI[lv]))))
    step = rng_.step if kind == "count" or rng_.step > 1 else 1
    lo, hi = _grade_range(kind, rng_, lv, part, floor=step)
    value = rng.randint(lo // step, max(lo, hi) // step) * step
    return float(value)


def _grade_range(
    kind: str, rng_: TopicRange, lv: int, part: bool, floor: int = 1
) -> tuple[int, int]:
    """The grade's (lo, hi) for a plain count or a factor at level ``lv``, lo at least
    ``floor``: older pupils get numbers that need working out, not single facts (3 x 9 is not
    grade 5); a part of a whole keeps small counts possible."""
    hi = rng_.factor[lv] if kind == "factor" else rng_.count[lv]
    lo = max(2 if part else FACTOR_LO[lv] if kind == "factor" else COUNT_LO[lv], floor)
    return lo, max(hi, lo + 1)


# "Grade 5, decimals": prices to the cent and measures to a tenth or a quarter, added to a
# whole draw; a count, a factor or a divisor stays whole (3.5 boxes is no problem)
_CENTS = (0.25, 0.5, 0.75, 0.2, 0.4, 0.6, 0.8, 0.45, 0.95, 0.15)
_TENTHS = (0.5, 0.2, 0.4, 0.6, 0.8, 0.25, 0.75)
_DECIMAL_MEASURES = frozenset({"measure:m", "measure:km", "measure:kg"})
_MONEY_KINDS = frozenset({"price", "money", "note"})


def _with_decimals(slot: _Slot, value: float, rng: random.Random) -> float:
    """``value`` with a decimal part where a teacher asking for decimals would write one."""
    if slot.kind in ("price", "money"):
        return value + rng.choice(_CENTS)
    if slot.kind in _DECIMAL_MEASURES and not slot.factor:
        return value + rng.choice(_TENTHS)
    return value


def _format_slot(slot: _Slot, value: float) -> str:
    """Money to the cent ($2.50), any other decimal as short as it is (3.5 km)."""
    text = format_number(value)
    if "." in text and slot.kind not in _MONEY_KINDS:
        text = text.rstrip("0").rstrip(".")
    return text


def _asks_count(question: str) -> bool:
    """Whether a question asks how many of a countable thing ("How many boxes"), whose answer
    is whole whatever the prefix asks (not "How many km")."""
    m = _ASKED_UNIT.search(question)
    return m is not None and not is_unit_word(m.group(1))


def _fill_text(text: str, slots: list[_Slot], values: list[float]) -> str:
    out = []
    pos = 0
    for slot, value in zip(slots, values, strict=True):
        out.append(text[pos : slot.start])
        out.append(_format_slot(slot, value))
        pos = slot.end
    out.append(text[pos:])
    return "".join(out)


def _answer_kind(text: str) -> str:
    """What the question asks for: ``fraction`` (a part of a whole: below 1), ``percent`` (a
    whole percentage up to 100) or ``whole`` (a count, a length, money...)."""
    question = re.split(r"(?<=[.!])\s+", text.strip())[-1].lower()
    if "what fraction" in question:
        return "fraction"
    if "percentage" in question or "what percent" in question:
        return "percent"
    return "whole"


def _acceptable(value: float, *, cents: bool, kind: str) -> bool:
    if not math.isfinite(value) or value <= 0 or value > MAX_ANSWER:
        return False
    if kind == "fraction":
        return value < 1 and any(math.isclose(value * d, round(value * d)) for d in range(2, 21))
    if kind == "percent" and value > 100:
        return False
    scaled = value * 100 if cents else value
    return math.isclose(scaled, round(scaled), abs_tol=1e-6)


_HOW_MANY = re.compile(r"\bhow many\b", re.I)
_ASKED_UNIT = re.compile(r"\bhow many\s+([A-Za-z]+)", re.I)


def _whole_steps(rendered: str, *, cents: bool) -> bool:
    """Whether every division of the equation comes out whole (money: to the cent): 45 muffins
    do not fill boxes of 10, even when the answer after them is whole."""
    return all(_acceptable(abs(q), cents=cents, kind="whole") for q in quotients(rendered))


def _trivial(value: float, kind: str, level: int, equation: str, question: str = "") -> bool:
    """An answer no teacher would set at this level: 1 (the whole search avoids it first),
    from grade 4 a sum or product below 10 ("5 x 4" is not grade 6), from grade 5 any answer
    below 10 that is not a number of hours, days or goals ("22 friends in teams of 11")."""
    if kind != "whole":
        return False
    if value == 1:
        return True
    if level >= 2 and value < 10 and ("*" in equation or "+" in equation):
        return True
    asked = _ASKED_UNIT.search(question)
    return level >= 3 and value < 10 and not (asked and is_unit_word(asked.group(1)))


def _lopsided(value: float, values: Sequence[float], equation: str) -> bool:
    """A take-away that leaves almost nothing: "150 crayons, Grace lost 144 of them" is
    arithmetic, not a story. An answer of a sum-and-difference problem below a fifth of its
    largest number is drawn again (a first choice only: a comparison may come out small)."""
    if "-" not in equation or "*" in equation or "/" in equation or not values:
        return False
    return value < 0.2 * max(values)


def _evaluate_with(
    text: str, slots: list[_Slot], values: list[float], equation: str
) -> float | None:
    filled = _fill_text(text, slots, values)
    try:
        return evaluate(render_slots(SLOT_TOKEN.sub(" ", filled), equation))
    except EquationError:
        return None


def _whole_dividend(
    text: str,
    slots: list[_Slot],
    values: list[float],
    equation: str,
    sizes: Sequence[tuple[int, int] | None] = (),
) -> list[float] | None:
    """``values`` with one plain count rounded to a multiple of what divides it, when the
    equation is that count over a whole number ("<a> children, tents for <b>, in <c> rows":
    ``n1 / n2 / n3``). Independent draws rarely divide out when two or more divisors stack, so
    the search fell back to an answer of 1; rounding the dividend keeps the draw's size."""
    for i, s in enumerate(slots):
        if s.kind != "count":
            continue
        at = [*values[:i], 1.0, *values[i + 1 :]]
        unit = _evaluate_with(text, slots, at, equation)
        zero = _evaluate_with(text, slots, [*values[:i], 0.0, *values[i + 1 :]], equation)
        if not unit or zero != 0 or unit >= 1:
            continue
        divisor = 1 / unit
        if not math.isclose(divisor, round(divisor), rel_tol=1e-9) or round(divisor) < 2:
            continue
        d = round(divisor)
        dividend = d * max(2, round(values[i] / d))
        size = sizes[i] if i < len(sizes) else None
        if size is not None and not size[0] <= dividend <= size[1]:
            continue  # 480 children on a camping trip divide out, and no teacher sets it
        out = [*values[:i], float(dividend), *values[i + 1 :]]
        value = _evaluate_with(text, slots, out, equation)
        if value is not None and math.isclose(value, unit * out[i]):
            return out
    return None


def _skill_value(slot: _Slot, skill: Skill, rng: random.Random, attempt: int) -> float | None:
    """The value an asked skill draws for ``slot``, None where it leaves the slot to the grade.

    "Unit fractions": every numerator is 1. "Numbers in the thousands", "three-digit numbers"
    and "across zeros": the plain counts are drawn that large on every other attempt (the
    others keep the grade's sizes, so a skeleton whose counts cannot grow still gets numbers),
    across zeros half of them with a 0 in the tens (403, 700) to borrow through; the rest keep
    their sizes. :func:`serving.grade.practises` then keeps the draws that need the skill."""
    if skill.unit_fractions and slot.kind == "numerator":
        return 1.0
    if slot.kind != "count" or slot.factor or attempt % 2:
        return None
    if skill.thousands:
        return float(rng.randint(1000, 9999))
    if skill.across_zeros and rng.random() < 0.5:
        return float(rng.randint(1, 9) * 100 + rng.randint(0, 9))
    if skill.hundreds or skill.across_zeros:
        return float(rng.randint(100, 999))
    return None


def fill_numbers(
    text: str,
    equation: str | None,
    *,
    topic: str = "",
    prompt_prefix: str = "",
    seed: int = 0,
    max_tries: int = MAX_TRIES,
    sizes: Sequence[Mapping[str, tuple[int, int]]] = (),
) -> str:
    """``text`` with every ``<num>`` replaced by a value (see the module doc).

    ``equation`` is the decoded equation in slot form (``n1 - n2``). The first draw whose
    equation evaluates to a whole (money: to the cent), positive answer of at most a million is
    kept, preferring draws whose values differ; without an equation, or when no draw in
    ``max_tries`` works, the last draw is written, and the consistency check says what is wrong.
    Text without ``<num>`` is returned as it is.

    ``sizes`` holds, per sentence of ``text``, the plausible ranges of what its nouns measure
    (``serving.sizes``, from ``serving.story.size_hints``): a length, a speed or a duration is
    drawn from the range of its own sentence's noun, else of the first noun of the text that
    has one; a speed asked for must fall in the mover's range for the first three quarters of
    the draws (then any whole answer will do, rather than an inconsistent one).
    """
    if NUM_TOKEN not in text:
        return text
    rng = random.Random(seed)
    level = level_of(prompt_prefix, rng)
    denominators = asked_denominators(prompt_prefix)
    tables = asked_tables(prompt_prefix)
    name = canonical_topic(topic) or topic
    skill = asked_skill(prompt_prefix) or (
        stretch_skill(name, priced="$" in text) if stretched(prompt_prefix) else Skill()
    )
    ranges = TOPIC_RANGES.get(name, DEFAULT_RANGE)
    cents = name == "money"
    slots = _slots(text, equation)
    kind = _answer_kind(text)
    question = SENTENCE_END.split(text.strip())[-1]
    # "How many comics can she buy?" is a count even in a money problem: 11.70 comics is wrong
    cents = cents and not _HOW_MANY.search(SENTENCE_END.split(text.strip())[-1])
    # decimals asked for: an answer to the cent is whole enough, unless it counts things
    cents = cents or (skill.decimals and not _asks_count(question))
    # a fraction or a percentage of something is a part by design ("5 / 6 * 12")
    whole_parts = kind != "whole" or name in ("fractions", "percentages")
    plan, answer_size = (
        plan_sizes(text, slots, sizes, level) if sizes else ([None] * len(slots), None)
    )
    filled = text
    # "times tables 2, 5 and 10": one factor of the product is from the tables asked for
    factor_slot = next((s.index for s in slots if s.kind == "factor"), -1)
    tries = 1 if len(slots) > MAX_SEARCH_SLOTS else max(1, max_tries)
    for attempt in range(tries):
        den = rng.choice(denominators or DENOMINATORS[level])
        # a part of a whole ("what fraction", "what percentage") keeps small counts possible,
        # and so does the second half of the search when the grade's bounds found nothing
        part = kind != "whole" or (tries > 1 and attempt >= tries // 2)
        sized = attempt < (3 * tries) // 4
        # the last quarter of the search also draws from two levels down: a count beside a
        # small unit ("is 11 years old ... blew out <num> candles") has few values that fit
        lv = level if sized or level < 4 else level - 2
        values = [
            float(rng.choice(tables))
            if tables and s.kind == "factor" and s.index == factor_slot
            else _skill_value(s, skill, rng, attempt)
            or _draw(s, ranges, lv, rng, den, part, size if sized else None)
            for s, size in zip(slots, plan, strict=True)
        ]
        if skill.decimals and attempt % 4 != 3:
            values = [_with_decimals(s, v, rng) for s, v in zip(slots, values, strict=True)]
        filled = _fill_text(text, slots, values)
        if equation is None:
            return filled
        if attempt < max_tries // 2 and len(set(values)) < len(values):
            continue  # "12 apples ... 12 apples" reads like a copy: distinct values first
        rendered = render_slots(SLOT_TOKEN.sub(" ", filled), equation)
        try:
            value = evaluate(rendered)
        except EquationError:
            return filled  # unparsable: no draw can help
        if kind == "whole" and not _acceptable(value, cents=cents, kind=kind):
            repaired = _whole_dividend(text, slots, values, equation, plan if sized else ())
            if repaired is not None:
                values = repaired
                filled = _fill_text(text, slots, values)
                rendered = render_slots(SLOT_TOKEN.sub(" ", filled), equation)
                value = evaluate(rendered)
        if (
            _acceptable(value, cents=cents, kind=kind)
            and (whole_parts or _whole_steps(rendered, cents=cents))
            and (answer_size is None or not sized or answer_size[0] <= value <= answer_size[1])
            # "How many tents are in each row? 1" is no question: only the last tries take it
            and (value != 1 or kind != "whole" or attempt >= tries - tries // 8)
            and (
                attempt >= tries // 2
                or not (
                    _trivial(value, kind, level, equation, question)
                    or _lopsided(value, values, equation)
                    or (skill and not practises(rendered, values, skill))
                    # "10 seed trays of 28 seeds" is mental arithmetic, not grade 5's
                    or (
                        level >= 3
                        and any(
                            s.factor and v in (10.0, 100.0)
                            for s, v in zip(slots, values, strict=True)
                        )
                    )
                )
            )
        ):
            return filled
    return filled


def format_answer(value: float, problem_text: str) -> str:
    """The answer as a pupil writes it: a fraction in lowest terms when the question asks
    "what fraction" ("9/10", not "0.90"), money to the cent, else :func:`format_number`."""
    from fractions import Fraction

    kind = _answer_kind(problem_text)
    if kind == "fraction" and 0 < value < 1:
        f = Fraction(value).limit_denominator(100)
        return f"{f.numerator}/{f.denominator}"
    if any(c in problem_text for c in SYMBOLS) and not float(value).is_integer():
        return f"{value:.2f}"
    return format_number(value)
