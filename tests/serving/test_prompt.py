"""The prompt/target text contract shared by training and serving."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.prompt import PromptError, format_prompt, format_target, parse_target


def test_prompt_format_is_exact() -> None:
    assert (
        format_prompt("fractions", ["apples", "baskets"], "For a grade 3 class:")
        == "generate word problem about fractions using keywords apples, baskets: "
        "For a grade 3 class:"
    )


def test_prompt_without_prefix_has_no_trailing_space() -> None:
    assert (
        format_prompt("money", ["pens"]) == "generate word problem about money using keywords pens:"
    )


def test_prompt_whitespace_is_normalised() -> None:
    assert format_prompt("  area and\tperimeter ", [" rug ", "floor"]) == format_prompt(
        "area and perimeter", ["rug", "floor"]
    )


@pytest.mark.parametrize(
    ("topic", "keywords", "prefix"),
    [
        ("", ["a"], ""),
        ("money", [], ""),
        ("money", "pens", ""),
        ("money", ["pens, hats"], ""),
        ("mo:ney", ["pens"], ""),
        ("money", ["  "], ""),
        ("money", [3], ""),
    ],
)
def test_prompt_rejects_ambiguous_input(topic, keywords, prefix) -> None:
    with pytest.raises(PromptError):
        format_prompt(topic, keywords, prefix)


@pytest.mark.parametrize(
    ("problem", "equation"),
    [
        ("Maya has 3 apples and buys 2 more. How many apples does she have?", "3 + 2"),
        ("A rope is 12.5 m long. How long are 2 ropes?", "12.5 * 2"),
        ("What is (3 + 4) * 2?", "(3 + 4) * 2"),
    ],
)
def test_target_round_trip(problem: str, equation: str) -> None:
    target = format_target(problem, equation)
    assert target == f"{problem} ||| {equation}"
    assert parse_target(target) == (problem, equation)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Maya has 3 apples?", ("Maya has 3 apples?", None)),
        ("Maya has 3 apples? |||", ("Maya has 3 apples?", None)),
        ("Maya has 3 apples? |||   ", ("Maya has 3 apples?", None)),
        ("  Maya  has 3? ||| 3 ||| junk", ("Maya has 3?", "3")),
        ("|||3 + 4", ("", "3 + 4")),
    ],
)
def test_parse_target_tolerates_generated_text(text: str, expected) -> None:
    assert parse_target(text) == expected


def test_target_rejects_separator_inside() -> None:
    with pytest.raises(PromptError):
        format_target("a ||| b?", "1 + 2")
    with pytest.raises(PromptError):
        format_target("", "1 + 2")


_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=80)


@settings(max_examples=200, deadline=None)
@given(_TEXT, _TEXT)
def test_target_round_trip_property(problem: str, equation: str) -> None:
    clean_p, clean_e = " ".join(problem.split()), " ".join(equation.split())
    if not clean_p or "|||" in clean_p or "|||" in clean_e or clean_p.endswith("|"):
        return
    if clean_e.startswith("|"):
        return
    assert parse_target(format_target(problem, equation)) == (clean_p, clean_e or None)
