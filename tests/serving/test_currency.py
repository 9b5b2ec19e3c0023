"""The prefix's currency: raters failed dollars where a teacher asked for pounds and pence."""

from __future__ import annotations

import pytest

from serving.currency import asked_currency, in_currency
from serving.grade import asked_skill
from serving.numbers import format_answer


@pytest.mark.parametrize(
    ("prefix", "symbol"),
    [
        ("Year 3, pounds and pence:", "£"),
        ("Year 5, money in pounds:", "£"),
        ("Grade 4, euros:", "€"),
        ("Grade 4:", "$"),
        ("Year 4, pounds and ounces:", "$"),  # a weight, not money
    ],
)
def test_the_currency_a_prefix_asks_for(prefix: str, symbol: str) -> None:
    assert asked_currency(prefix) == symbol


def test_prices_and_money_words_are_written_in_it() -> None:
    text = "A pen costs $2.45 and a ruler 80 cents. Dollars saved: $10."
    assert in_currency(text, "£") == "A pen costs £2.45 and a ruler 80 pence. Pounds saved: £10."
    assert in_currency(text, "$") == text
    # pence ask for prices to the penny, and the answer keeps its two places
    assert asked_skill("Year 3, pounds and pence:").decimals
    assert format_answer(63.8, "The shop pays £15.95 a box.") == "63.80"


def test_the_told_problem_is_in_the_prefix_currency() -> None:
    from serving.story import render_any

    out = render_any(
        "<name> buys a book for $ <num> . How much change from $ <num> ? ||| n2 - n1",
        ["book"],
        topic="money",
        prompt_prefix="Year 4, pounds and pence:",
        seed=3,
        nouns=[],
    )
    assert "£" in out.problem_text and "$" not in out.problem_text, out.problem_text
