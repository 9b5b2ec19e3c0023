"""What a request's prefix asks of the numbers: the grade's level, how many steps, the skill.

Teachers write the grade and often a skill into the prefix ("Year 2 class, subtraction with
borrowing:", "Grade 4, 2-digit by 1-digit:", "Grade 2, halves and quarters:", "times tables 2,
5 and 10"). Blind raters marked a problem down whenever its numbers ignored them: sums below 40
for grade 3, single facts for grade 4, "99 - 79" for borrowing, tenths for halves and quarters.
``serving.numbers`` draws the values and asks this module which draws fit; the skeleton bank
(``serving.constrain``) asks how many operations. Stdlib only (serving-reachable).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from serving.prompt import grade_of

N_LEVELS = 5  # grade 1 or below .. grade 5 and up (grade N draws level N - 1)

_HARDER = re.compile(r"\b(harder|hard|bigger|larger|challenging|challenge|stretch)\b", re.I)
_EASIER = re.compile(r"\b(easier|easy|simple|smaller)\b", re.I)


def level_of(prompt_prefix: str, rng: random.Random) -> int:
    """Difficulty level 0..4 from the grade the prefix names (grade 2 -> 0 .. grade 6+ -> 4),
    one up for "harder / bigger numbers" and one down for "easy" (a teacher's own words);
    without a grade, one drawn from ``rng`` (as the templates do for the empty prefix)."""
    level = _grade_level(prompt_prefix, rng)
    if _HARDER.search(prompt_prefix or ""):
        level += 1
    elif _EASIER.search(prompt_prefix or ""):
        level -= 1
    return min(max(level, 0), N_LEVELS - 1)


def stretched(prompt_prefix: str) -> bool:
    """Whether the prefix asks for harder numbers than the top level already gives ("Grade 5,
    harder numbers please", "Year 6, harder", "Grade 6"): the level cannot go up, so the
    numbers must need more working (raters failed 24 x 11 and 8 raffle tickets at $4 there)."""
    grade = grade_of(prompt_prefix or "")
    if grade is None or _EASIER.search(prompt_prefix or ""):
        return False
    return grade > N_LEVELS or (grade == N_LEVELS and bool(_HARDER.search(prompt_prefix or "")))


def stretch_skill(topic: str, *, priced: bool) -> Skill:
    """What "harder" asks of a top grade's numbers in ``topic`` (a canonical topic name):
    prices to the cent where the problem is ``priced`` (a raffle ticket costs $2.50, not $10),
    else a product or a quotient of two 2-digit numbers; none where a bigger number would be an
    implausible one (pages, goals, minutes)."""
    if priced and topic in ("money", "mixed operations", "multiplication", "division"):
        return Skill(decimals=True)
    if topic in ("multiplication", "division", "multiplication and division", "mixed operations"):
        return Skill(multi_digit=True)
    return Skill()


def _grade_level(prompt_prefix: str, rng: random.Random) -> int:
    grade = grade_of(prompt_prefix or "")
    if grade is None:
        return rng.randrange(N_LEVELS - 1)  # a problem for "primary school": not grade 6's
    # raters found sums below 40 too easy for grade 3 and single facts too easy for grade 4:
    # grade 1 draws level 0, grade 5 and up the hardest
    return min(max(grade - 1, 0), N_LEVELS - 1)


def steps_for(prompt_prefix: str) -> tuple[int, int | None]:
    """(fewest, most) operations a problem for this prefix should take: at least two from
    grade 4 (a single "9 x 4" or "90 / 9" is too easy there, raters said), at most one for
    grade 1 or an easy grade 2 ("16 + 11 - 8" is not an easy one for grade 1), else any. The
    skeleton bank keeps to it when it has such a skeleton for the request's keywords."""
    grade = grade_of(prompt_prefix or "")
    if grade is None:
        return 1, None
    if _HARDER.search(prompt_prefix or ""):
        grade += 1
    elif _EASIER.search(prompt_prefix or ""):
        grade -= 1
    if grade >= 4:
        return 2, None
    return (1, 1) if grade <= 1 else (1, None)


_DENOMINATOR_WORDS = {
    "halves": 2,
    "thirds": 3,
    "quarters": 4,
    "fifths": 5,
    "sixths": 6,
    "eighths": 8,
    "tenths": 10,
    "twelfths": 12,
}
_TABLES = re.compile(r"\btimes[- ]tables?\s+((?:\d+\s*(?:,|and|&)?\s*)+)", re.I)


def asked_denominators(prompt_prefix: str) -> tuple[int, ...]:
    """The denominators a prefix names ("halves and quarters" -> (2, 4)); () for none."""
    words = re.findall(r"[a-z]+", (prompt_prefix or "").lower())
    return tuple(sorted({_DENOMINATOR_WORDS[w] for w in words if w in _DENOMINATOR_WORDS}))


def asked_tables(prompt_prefix: str) -> tuple[int, ...]:
    """The times tables a prefix names ("times tables 2, 5 and 10" -> (2, 5, 10)); ()."""
    m = _TABLES.search(prompt_prefix or "")
    if m is None:
        return ()
    return tuple(sorted({int(d) for d in re.findall(r"\d+", m.group(1)) if 1 < int(d) <= 12}))


_BORROW = re.compile(r"\b(?:borrow\w*|regroup\w*|exchang\w*)", re.I)
_CARRY = re.compile(r"\b(?:carry\w*|regroup\w*)", re.I)
_THOUSANDS = re.compile(r"\b(?:thousands?|4-digit|four-digit)\b", re.I)
_HUNDREDS = re.compile(r"\b(?:hundreds|3-digit|three-digit|three digit)\b", re.I)
_ACROSS_ZEROS = re.compile(r"\bacross\s+(?:the\s+)?zeros?\b", re.I)
_UNIT_FRACTIONS = re.compile(r"\bunit\s+fractions?\b", re.I)
_DIGITS_BY = re.compile(r"\b(\d)-digit\s+(?:by|x|times)\s+(\d)-digit\b", re.I)
# "pounds and pence", "dollars and cents": prices to the penny, as decimals are
_DECIMALS = re.compile(r"\bdecimals?\b|\bpence\b|\bcents\b", re.I)
_MULTI_DIGIT = re.compile(r"\b(?:multi-digit|long)\s+(?:multiplication|division)\b", re.I)
_PAIR = re.compile(r"(?<![\d.])(\d+)\s*([-+*/])\s*(\d+)(?![\d.])")


@dataclass(frozen=True)
class Skill:
    """What a prefix asks the numbers to practise, beyond the grade: "subtraction with
    borrowing", "numbers in the thousands", "2-digit by 1-digit", "adding three-digit numbers",
    "subtracting across zeros", "unit fractions". Raters marked a problem down when the prefix
    asked for a skill its numbers did not need (73 + 33 for three-digit numbers, 161 - 115
    across zeros, 5/6 for unit fractions)."""

    borrow: bool = False  # a subtraction with a column to regroup (52 - 27, not 99 - 79)
    carry: bool = False  # an addition with a column that carries
    thousands: bool = False  # the largest number of the text is at least 1000
    digits: tuple[int, int] | None = None  # a product or quotient of these digit counts
    multi_digit: bool = False  # a product or quotient of two numbers of 2+ digits, or 3 by 1
    decimals: bool = False  # a price or a measure with a decimal point ($2.45, 3.5 km)
    hundreds: bool = False  # the numbers of a sum or difference have three digits or more
    across_zeros: bool = False  # a subtraction borrowing through a zero (403 - 158)
    unit_fractions: bool = False  # "unit fractions": a fraction of an amount is 1/n of it

    def __bool__(self) -> bool:
        return self != Skill()


def asked_skill(prompt_prefix: str) -> Skill:
    """The :class:`Skill` a prefix names (``Skill()`` for none)."""
    p = prompt_prefix or ""
    by = _DIGITS_BY.search(p)
    # "regrouping" alone is either: the prefix's operation word says which
    subtracting = bool(re.search(r"\bsubtract|\btake[- ]away|\bminus", p, re.I))
    return Skill(
        borrow=bool(_BORROW.search(p)) and (subtracting or "borrow" in p.lower()),
        carry=bool(_CARRY.search(p)) and not subtracting,
        thousands=bool(_THOUSANDS.search(p)),
        digits=(int(by.group(1)), int(by.group(2))) if by else None,
        multi_digit=bool(_MULTI_DIGIT.search(p)),
        decimals=bool(_DECIMALS.search(p)),
        # "3-digit by 1-digit" names a product's digits, not numbers in the hundreds
        hundreds=bool(_HUNDREDS.search(p)) and not by and not _THOUSANDS.search(p),
        across_zeros=bool(_ACROSS_ZEROS.search(p)),
        unit_fractions=bool(_UNIT_FRACTIONS.search(p)),
    )


def _regroups(a: int, b: int, op: str) -> bool:
    """Whether ``a op b`` (``-`` or ``+``) needs a column regrouped, as written in columns."""
    while b:
        x, y = a % 10, b % 10
        if (op == "-" and x < y) or (op == "+" and x + y >= 10):
            return True
        a, b = a // 10, b // 10
    return False


def _across_zero(a: int, b: int) -> bool:
    """Whether ``a - b`` in columns borrows through a zero: a column that must borrow while
    the column to its left is a 0 of ``a`` (403 - 158: the units borrow from the tens' 0)."""
    while b and a >= 10:
        if a % 10 < b % 10 and (a // 10) % 10 == 0:
            return True
        a, b = a // 10, b // 10
    return False


def practises(rendered: str, values: Sequence[float], skill: Skill) -> bool:
    """Whether an equation with its numbers filled (``rendered``) needs the asked ``skill``."""
    if skill.decimals and all(float(v).is_integer() for v in values):
        return False
    pairs = [(int(a), op, int(b)) for a, op, b in _PAIR.findall(rendered)]
    if skill.borrow and not any(op == "-" and a > b and _regroups(a, b, "-") for a, op, b in pairs):
        return False
    if skill.carry and not any(op == "+" and _regroups(a, b, "+") for a, op, b in pairs):
        return False
    if skill.thousands and max(values, default=0) < 1000:
        return False
    sums = [(a, b) for a, op, b in pairs if op in "+-"]
    if skill.hundreds and not (
        any(min(a, b) >= 100 for a, b in sums) if sums else max(values, default=0) >= 100
    ):
        return False
    if skill.across_zeros and not any(
        op == "-" and a > b and _across_zero(a, b) for a, op, b in pairs
    ):
        return False
    mult = [(len(str(a)), len(str(b))) for a, op, b in pairs if op in "*/"]
    if skill.digits and not any(sorted(d) == sorted(skill.digits) for d in mult):
        return False
    return not skill.multi_digit or any(min(d) >= 2 or max(d) >= 3 for d in mult)


_PERIMETER = re.compile(r"\bperimeters?\b|\baround\b|\bborders?\b|\bfenc\w*|\bedges?\b", re.I)
_AREA = re.compile(
    r"\bareas?\b|\bsquare\s+(?:metres|centimetres|cm|m)\b|\bcover\w*|\btiles?\b", re.I
)
_TOKEN = re.compile(r"<[^<>]+>")


def asked_measure(prompt_prefix: str) -> str | None:
    """ "perimeter" or "area" when the prefix asks for one and not the other ("Year 4,
    perimeter of rectangles:"), else None. Raters failed a tiled floor's area for a prefix
    that asked for perimeters: the skeleton bank keeps to the measure asked for when it can
    (``serving.constrain.SkeletonBank.compatible``)."""
    p = prompt_prefix or ""
    perimeter = bool(re.search(r"\bperimeters?\b", p, re.I))
    area = bool(re.search(r"\bareas?\b", p, re.I))
    if perimeter == area:
        return None
    return "perimeter" if perimeter else "area"


def measure_asked_by(skeleton: str) -> str | None:
    """What a skeleton's problem measures, read from its own words: "perimeter" (a fence, a
    border, all the way around), "area" (square metres, tiles, a cover), else None (both, or
    neither: a length, a count). Role tokens are not words of it ("<area>" names a place)."""
    words = _TOKEN.sub(" ", skeleton)
    perimeter, area = bool(_PERIMETER.search(words)), bool(_AREA.search(words))
    if perimeter == area:
        return None
    return "perimeter" if perimeter else "area"
