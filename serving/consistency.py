"""Is a generated problem answerable by its own equation? (serving-reachable, stdlib only)

A problem is consistent when its equation parses, uses every number written (with digits) in the
problem text and no other (a number of the text may be used more than once: "60 - 60 * 20 /
100"), and evaluates to the stated answer. Two implicit
constants may appear in the equation beyond the text's numbers: 2 (doubling, halves, perimeter)
and 100 (percentages); pass ``constants=()`` for the strict check. A negative value is never a
school word problem's answer ("How many more apples does Tom need?" -> -7 means the model swapped
the numbers), so it is inconsistent too.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from serving.arithmetic import EquationError, equation_numbers, evaluate, numbers_in
from serving.measures import SENTENCE_END

IMPLICIT_CONSTANTS: tuple[float, ...] = (2.0, 100.0)
REL_TOL = 1e-6
ABS_TOL = 1e-6


_PERIMETER = re.compile(r"\bperimeter\b|\bfence\b", re.I)
_AREA = re.compile(r"\barea\b", re.I)
_SQUARE_UNIT = re.compile(
    r"\bsquare (?:metres?|meters?|centimetres?|centimeters?|cm|m|km|feet|foot|inch(?:es)?|units?)\b"
    r"|\b(?:cm|m|km)(?:2|²)",
    re.I,
)
_DOUBLE_OR_FOUR = re.compile(r"(?<![\d.])[24]\s*\*|\*\s*[24](?![\d.])")


def question_mismatch(problem: str, equation: str) -> str | None:
    """Why the question and its equation ask for different things, or None.

    A perimeter (or fence) is a sum of sides, never asked in square units; an area is a
    product. The model once wrote "What is its perimeter in square metres?" over ``8 * 10``:
    every number used, a whole answer, and a problem no pupil can answer.
    """
    question = SENTENCE_END.split(problem.strip())[-1]
    perimeter = bool(_PERIMETER.search(question))
    square = bool(_SQUARE_UNIT.search(question))
    if perimeter and square:
        return "a perimeter asked in square units"
    if perimeter and "+" not in equation and not _DOUBLE_OR_FOUR.search(equation):
        return "a perimeter without a sum of sides"
    if (square or _AREA.search(question)) and not ("*" in equation or "^" in equation):
        return "an area without a product"
    return None


@dataclass(frozen=True)
class ConsistencyResult:
    """Outcome of :func:`check_consistency`; ``value`` is the equation's value when it parses."""

    ok: bool
    reason: str
    value: float | None


def _fmt(nums: Counter[float]) -> str:
    return "[" + ", ".join(f"{n:g}" for n in sorted(nums.elements())) + "]"


def check_consistency(
    problem: str,
    equation: str | None,
    answer: float | None = None,
    *,
    constants: tuple[float, ...] = IMPLICIT_CONSTANTS,
) -> ConsistencyResult:
    """Check that ``equation`` answers ``problem`` with the problem's own numbers.

    ``reason`` is ``"ok"`` or a short machine-friendly cause (``no_equation``, ``parse_error: ..``,
    ``numbers_missing: [..]``, ``numbers_extra: [..]``, ``negative_answer: ..``,
    ``question_mismatch: ..`` (:func:`question_mismatch`), ``answer_mismatch: ..``).
    """
    if equation is None or not equation.strip():
        return ConsistencyResult(False, "no_equation", None)
    try:
        value = evaluate(equation)
        eq_nums = Counter(equation_numbers(equation))
    except EquationError as exc:
        return ConsistencyResult(False, f"parse_error: {exc}", None)
    text_nums = Counter(numbers_in(problem))
    if not text_nums:
        return ConsistencyResult(False, "no_numbers_in_problem", value)
    missing = text_nums - eq_nums
    if missing:
        return ConsistencyResult(False, f"numbers_missing: {_fmt(missing)}", value)
    # a number of the text may be used twice ("60 - 60 * 20 / 100", "9 * 7 + 9 * 12"); a
    # number the text never says may not, unless it is an implicit constant
    extra_bad = Counter(
        {n: c for n, c in eq_nums.items() if n not in text_nums and n not in constants}
    )
    if extra_bad:
        return ConsistencyResult(False, f"numbers_extra: {_fmt(extra_bad)}", value)
    if value < -ABS_TOL:
        return ConsistencyResult(False, f"negative_answer: {value:g}", value)
    mismatch = question_mismatch(problem, equation)
    if mismatch:
        return ConsistencyResult(False, f"question_mismatch: {mismatch}", value)
    if answer is not None and not math.isclose(value, answer, rel_tol=REL_TOL, abs_tol=ABS_TOL):
        return ConsistencyResult(False, f"answer_mismatch: {value:g} != {answer:g}", value)
    return ConsistencyResult(True, "ok", value)
