"""The bounded equation evaluator: correctness and hostile input."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.arithmetic import EquationError, equation_numbers, evaluate, numbers_in
from tests.fixtures.imports import loaded_modules


@pytest.mark.parametrize(
    ("expr", "value"),
    [
        ("1 + 2 * 3", 7.0),
        ("(1 + 2) * 3", 9.0),
        ("10 - 4 - 3", 3.0),
        ("24 / 4 / 2", 3.0),
        ("-3 + 5", 2.0),
        ("-(2 + 3) * 2", -10.0),
        ("--4", 4.0),
        ("2 * -3", -6.0),
        ("+7", 7.0),
        ("2.5 * 4", 10.0),
        (".5 + 1.", 1.5),
        ("2 ^ 3 ^ 2", 512.0),
        ("2 ** 3", 8.0),
        ("-2 ^ 2", -4.0),
        ("(-2) ^ 2", 4.0),
        ("2 ^ -1", 0.5),
        ("4 ^ 0.5", 2.0),
        ("60 * (100 + 50) / 100", 90.0),
        ("  12 * 3  ", 36.0),
        ("12 × 3 ÷ 4", 9.0),
    ],
)
def test_evaluate(expr: str, value: float) -> None:
    assert evaluate(expr) == pytest.approx(value)


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [
        ("1 / 0", "division by zero"),
        ("5 / (3 - 3)", "division by zero"),
        ("0 ^ -1", "division by zero"),
        ("2 ^ 100", "exponent"),
        ("10 ^ 10 ^ 10", "exponent"),
        ("10 ** 10 ** 10", "exponent"),
        ("9 ^ 12 * 9 ^ 12", "out of range"),
        ("(-8) ^ 0.5", "fractional"),
        ("1" * 10_000, "too long"),
        ("(" * 40 + "1" + ")" * 40, "nesting"),
        ("-" * 60 + "1", "nesting"),
        ("2 + x", "unexpected character 'x'"),
        ("import os", "unexpected character 'i'"),
        ("__import__('os')", "unexpected character '_'"),
        ("", "empty"),
        ("   ", "empty"),
        ("3 +", "end of equation"),
        ("(3 + 4", "end of equation"),
        ("3 + 4)", "after a complete expression"),
        ("3 4", "after a complete expression"),
        ("* 3", "unexpected '*'"),
        ("1.2.3", "after a complete expression"),
        ("1+" * 120 + "1", "too many tokens"),
    ],
)
def test_hostile_input_raises_clear_error(expr: str, fragment: str) -> None:
    start = time.perf_counter()
    with pytest.raises(EquationError, match=None) as info:
        evaluate(expr)
    assert fragment in str(info.value)
    assert time.perf_counter() - start < 0.5


def test_non_string_is_an_equation_error() -> None:
    with pytest.raises(EquationError):
        evaluate(12)  # type: ignore[arg-type]


def test_equation_error_is_a_value_error() -> None:
    assert issubclass(EquationError, ValueError)


@pytest.mark.parametrize(
    ("text", "numbers"),
    [
        ("Maya has 12 apples and 3.5 kg of flour.", [12.0, 3.5]),
        ("It costs $1,200 in total, or $2.50 each.", [1200.0, 2.5]),
        ("She gives 3/4 of them away.", [3.0, 4.0]),
        ("Lists like 2,3 are two numbers.", [2.0, 3.0]),
        ("A 48-page book, 25% off.", [48.0, 25.0]),
        ("No numbers here.", []),
        ("It ends with 7.", [7.0]),
    ],
)
def test_numbers_in(text: str, numbers: list[float]) -> None:
    assert numbers_in(text) == numbers


def test_equation_numbers() -> None:
    assert equation_numbers("2 * (12 + 3.5) - -1") == [2.0, 12.0, 3.5, 1.0]


def test_serving_modules_import_only_light_packages() -> None:
    modules = ["serving.prompt", "serving.arithmetic", "serving.consistency"]
    heavy = ("torch", "transformers", "pandas", "lightgbm", "sklearn", "mlflow", "numpy")
    assert loaded_modules(modules, heavy) == []


@settings(max_examples=300, deadline=200)
@given(st.text(alphabet="0123456789.+-*/^() x", max_size=60))
def test_fuzz_only_equation_errors(expr: str) -> None:
    try:
        value = evaluate(expr)
    except EquationError:
        return
    assert abs(value) <= 1e12


def test_quotients_lists_every_division_in_order() -> None:
    from serving.arithmetic import quotients

    assert quotients("45 / 10 * 18") == [4.5]
    assert quotients("(3 + 4) / 7 + 8 / 2") == [1.0, 4.0]
    assert quotients("2 * 3") == []
