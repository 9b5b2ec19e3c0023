"""The prompt/target text contract shared by training and serving."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.prompt import PromptError, format_prompt, format_target, parse_target


def test_prompt_format_is_exact() -> None:
    assert (
        format_prompt("fractions", ["apples", "baskets"], "For a grade 3 class:")
        == "generate word problem about fractions using keywords <k1> apples, <k2> baskets: "
        "For a grade 3 class:"
    )


def test_prompt_without_prefix_has_no_trailing_space() -> None:
    assert (
        format_prompt("money", ["pens"])
        == "generate word problem about money using keywords <k1> pens:"
    )


def test_prompt_marks_up_to_eight_keywords() -> None:
    eight = [f"w{i}" for i in range(1, 9)]
    assert format_prompt("money", eight).endswith("<k7> w7, <k8> w8:")
    with pytest.raises(PromptError, match="at most 8"):
        format_prompt("money", [*eight, "w9"])


def test_slotted_target_counts_numbers_on_the_lexical_text() -> None:
    """The digit of a keyword slot (<k2s>) is not a number of the problem."""
    target = format_target(
        "One box holds 7 apples and another box holds 5 apples. How many apples?",
        "7 + 5",
        slotted_problem="One <k2> holds 7 <k1s> and another <k2> holds 5 <k1s>. How many <k1s>?",
    )
    assert target.endswith("How many <k1s>? ||| n1 + n2")
    with pytest.raises(PromptError, match="slotted_problem"):
        format_target("Maya has 3 apples?", "3", slotted_problem="a ||| b")


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
        ("money", ["<k1>"], ""),
        ("money", ["pens>"], ""),
    ],
)
def test_prompt_rejects_ambiguous_input(topic, keywords, prefix) -> None:
    with pytest.raises(PromptError):
        format_prompt(topic, keywords, prefix)


@pytest.mark.parametrize(
    ("problem", "equation", "slotted"),
    [
        ("Maya has 3 apples and buys 2 more. How many apples does she have?", "3 + 2", "n1 + n2"),
        ("A rope is 12.5 m long. How long are 2 ropes?", "12.5 * 2", "n1 * n2"),
        ("What is (3 + 4) * 2?", "(3 + 4) * 2", "(n1 + n2) * n3"),
        # repeated values map to successive occurrences; unstated constants stay literal
        ("Lena has 4 red and 4 blue beads and 9 more. How many?", "4 + 4 + 9", "n1 + n2 + n3"),
        ("A tile has sides of 7 cm. What is its perimeter?", "4 * 7", "4 * n1"),
        ("A hat costs $480 with 5% off. How many dollars off?", "480 * 5 / 100", "n1 * n2 / 100"),
    ],
)
def test_target_round_trip(problem: str, equation: str, slotted: str) -> None:
    target = format_target(problem, equation)
    assert target == f"{problem} ||| {slotted}"
    assert parse_target(target) == (problem, equation)


@pytest.mark.parametrize(
    ("text", "equation"),
    [
        ("A 1,200 m road and 2.5 m? ||| n1 / n2", "1200 / 2.5"),
        ("A 3 m rope? ||| n 1 * 2", "3 * 2"),  # the tokenizer may space a slot's digits
        ("A 3 m rope? ||| n1 + n2", "3 + n2"),  # no second number: left for the parser to reject
        ("A 3 m rope? ||| n0 + 3", "n0 + 3"),
        ("A 3 m rope? ||| n12n1 + 3", "n12n1 + 3"),
        # a degenerate generation: a digit run too long for a float is never rendered
        ("Tom has " + "1" * 400 + " apples? ||| n1 + 2", "n1 + 2"),
    ],
)
def test_parse_target_renders_slots(text: str, equation: str) -> None:
    assert parse_target(text)[1] == equation


def test_unrendered_slot_fails_consistency() -> None:
    from serving.consistency import check_consistency

    problem, equation = parse_target("Maya has 3 apples. How many? ||| n1 + n2")
    result = check_consistency(problem, equation)
    assert not result.ok
    assert result.reason.startswith("parse_error")


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
    if clean_e.startswith("|") or re.search(r"(?<![\w.])n\s?\d", clean_e):
        return  # a slot-like equation is rejected (tested below)

    def canonical(text: str | None) -> str | None:  # rendering normalises "007" to "7"
        return None if text is None else _NUM.sub(lambda m: repr(float(m.group(0))), text)

    got_p, got_e = parse_target(format_target(problem, equation))
    assert got_p == clean_p
    assert canonical(got_e) == canonical(clean_e or None)


_NUM = re.compile(r"(?<![\w.])(\d+(?:\.\d*)?|\.\d+)")


def test_target_rejects_slot_in_equation() -> None:
    with pytest.raises(PromptError, match="slot"):
        format_target("Maya has 3 apples?", "n1 + 2")


@pytest.mark.parametrize(
    ("prefix", "canonical"),
    [
        ("For my grade 4 students:", "For a grade 4 class:"),
        ("Grade 3 pupils:", "For a grade 3 class:"),
        ("For a grade 5 class, harder numbers:", "For a grade 5 class:"),
        ("for GRADE 2", "For a grade 2 class:"),
        ("Make it about pirates:", "Make it about pirates:"),
        ("", ""),
    ],
)
def test_a_grade_in_the_prefix_is_worded_the_trained_way(prefix: str, canonical: str) -> None:
    expected = format_prompt("money", ["pens"]) + (f" {canonical}" if canonical else "")
    assert format_prompt("money", ["pens"], prefix) == expected
