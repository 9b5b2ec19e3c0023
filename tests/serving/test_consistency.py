"""The problem/equation/answer consistency check."""

from __future__ import annotations

import pytest

from serving.consistency import check_consistency

PROBLEM = "Maya has 12 apples and gives 5 to Tom. How many apples does she have left?"


def test_consistent_problem() -> None:
    res = check_consistency(PROBLEM, "12 - 5", 7)
    assert res.ok and res.reason == "ok" and res.value == 7.0


def test_answer_is_optional() -> None:
    assert check_consistency(PROBLEM, "12 - 5").ok


@pytest.mark.parametrize(
    ("equation", "answer", "reason"),
    [
        (None, None, "no_equation"),
        ("  ", None, "no_equation"),
        ("12 -", None, "parse_error"),
        ("12 / 0", None, "parse_error"),
        ("12 - 4", None, "numbers_missing: [5]"),
        ("12 - 5 + 3", None, "numbers_extra: [3]"),
        ("12 - 5", 8.0, "answer_mismatch"),
        ("12", None, "numbers_missing: [5]"),
        ("5 - 12", None, "negative_answer: -7"),  # the numbers swapped: "how many left" < 0
    ],
)
def test_inconsistent(equation, answer, reason: str) -> None:
    res = check_consistency(PROBLEM, equation, answer)
    assert not res.ok
    assert res.reason.startswith(reason)


def test_every_number_written_is_used_and_may_be_used_again() -> None:
    problem = "A square has 4 sides, each 4 cm long. What is its perimeter?"
    assert check_consistency(problem, "4 * 4", 16).ok
    assert check_consistency("Tom has 3 pens and 3 hats. How many?", "3 + 3").ok
    assert not check_consistency("Tom has 3 pens and 3 hats. How many?", "3").ok
    # a price and its discount, and bags filled with two kinds of things, use a number twice
    sale = "Shoes cost $60. The shop gives a 20% discount. How much do they cost now?"
    assert check_consistency(sale, "60 - 60 * 20 / 100", 48).ok
    bags = "Maya makes 9 bags with 7 pens and 12 pencils in each. How many things in all?"
    assert check_consistency(bags, "9 * 7 + 9 * 12", 171).ok
    # a number the text never says is still refused
    assert check_consistency(bags, "9 * 7 + 9 * 12 + 5", 176).reason.startswith("numbers_extra")


def test_implicit_constants() -> None:
    pct = "A shop has 80 pens and sells 25% of them. How many pens are sold?"
    assert check_consistency(pct, "80 * 25 / 100", 20).ok
    assert not check_consistency(pct, "80 * 25 / 100", 20, constants=()).ok
    rect = "A rectangle is 8 m long and 5 m wide. What is its perimeter?"
    assert check_consistency(rect, "2 * (8 + 5)", 26).ok


def test_problem_without_numbers() -> None:
    assert check_consistency("How many apples?", "3 + 4").reason == "no_numbers_in_problem"


def test_answer_tolerance() -> None:
    problem = "Split 1 cake into 3 parts. How big is each part?"
    assert check_consistency(problem, "1 / 3", 0.3333333333).ok
    assert not check_consistency(problem, "1 / 3", 0.33).ok


@pytest.mark.parametrize(
    ("problem", "equation", "why"),
    [
        (
            "A rectangular yard is 8 m long and 10 m wide. What is its perimeter in square metres?",
            "8 * 10",
            "a perimeter asked in square units",
        ),
        (
            "A rectangular yard is 8 m long and 10 m wide. What is its perimeter in m?",
            "8 * 10",
            "a perimeter without a sum of sides",
        ),
        (
            "A rug is 3 m long and 5 m wide. What is its area in square metres?",
            "3 + 5",
            "an area without a product",
        ),
    ],
)
def test_a_question_its_equation_does_not_answer_is_inconsistent(
    problem: str, equation: str, why: str
) -> None:
    res = check_consistency(problem, equation)
    assert not res.ok and res.reason == f"question_mismatch: {why}"


@pytest.mark.parametrize(
    ("problem", "equation"),
    [
        (
            "A rectangular yard is 8 m long and 10 m wide. What is its perimeter in m?",
            "2 * (8 + 10)",
        ),
        (
            "A square tile has 4 sides that are each 6 cm long. What is its perimeter in cm?",
            "4 * 6",
        ),
        ("A rug is 3 m long and 5 m wide. How many square metres of floor does it cover?", "3 * 5"),
        ("A tile has sides of 6 cm. What is the area of the tile in square cm?", "6 ^ 2"),
        ("A yard has an area of 24 square metres and is 6 m long. How wide is it in m?", "24 / 6"),
    ],
)
def test_questions_their_equation_answers_pass(problem: str, equation: str) -> None:
    assert check_consistency(problem, equation).ok
