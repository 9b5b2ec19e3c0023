"""Is a generated problem answerable by its own equation? (serving-reachable, stdlib only)

A problem is consistent when its equation parses, uses exactly the numbers written (with digits)
in the problem text, counted as a multiset, and evaluates to the stated answer. Two implicit
constants may appear in the equation beyond the text's numbers: 2 (doubling, halves, perimeter)
and 100 (percentages); pass ``constants=()`` for the strict check. A negative value is never a
school word problem's answer ("How many more apples does Tom need?" -> -7 means the model swapped
the numbers), so it is inconsistent too.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from serving.arithmetic import EquationError, equation_numbers, evaluate, numbers_in

IMPLICIT_CONSTANTS: tuple[float, ...] = (2.0, 100.0)
REL_TOL = 1e-6
ABS_TOL = 1e-6


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
    ``answer_mismatch: ..``).
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
    extra = eq_nums - text_nums
    extra_bad = Counter({n: c for n, c in extra.items() if n not in constants})
    if extra_bad:
        return ConsistencyResult(False, f"numbers_extra: {_fmt(extra_bad)}", value)
    if value < -ABS_TOL:
        return ConsistencyResult(False, f"negative_answer: {value:g}", value)
    if answer is not None and not math.isclose(value, answer, rel_tol=REL_TOL, abs_tol=ABS_TOL):
        return ConsistencyResult(False, f"answer_mismatch: {value:g} != {answer:g}", value)
    return ConsistencyResult(True, "ok", value)
