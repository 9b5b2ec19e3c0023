"""Number slots: values drawn so the decoded equation answers its own text."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from typing import NamedTuple

import pytest

from serving.arithmetic import evaluate, numbers_in
from serving.consistency import check_consistency
from serving.grade import (
    _across_zero,
    _regroups,
    asked_skill,
    level_of,
    stretch_skill,
    stretched,
)
from serving.numbers import NUM_TOKEN, fill_numbers
from serving.prompt import render_slots
from serving.realize import render_output


def _answer(text: str, slot_equation: str) -> float:
    return evaluate(render_slots(text, slot_equation))


@pytest.mark.parametrize("seed", range(40))
def test_subtraction_never_goes_negative(seed: int) -> None:
    text = "A <k1> held <num> <k2s>. Ben took out <num> <k2s>. How many <k2s> are left?"
    filled = fill_numbers(text, "n1 - n2", topic="subtraction", seed=seed)
    assert NUM_TOKEN not in filled
    # the keyword slots' digits are not numbers: only the two drawn values are
    values = [float(v) for v in re.findall(r"(?<![k\d])\d+(?:\.\d+)?", filled)]
    assert len(values) == 2 and values[0] - values[1] > 0


@pytest.mark.parametrize("seed", range(30))
def test_division_is_exact_and_literal_digits_keep_their_place(seed: int) -> None:
    text = "A square has 4 sides. A rope of <num> cm is cut into <num> equal pieces. How long?"
    filled = fill_numbers(text, "n2 / n3", topic="division", seed=seed)
    assert filled.startswith("A square has 4 sides.")
    value = _answer(filled, "n2 / n3")
    assert value > 0 and value == int(value)


@pytest.mark.parametrize("seed", range(30))
def test_a_fraction_question_gets_a_proper_fraction(seed: int) -> None:
    text = "Maya has <num> beads and gives <num> beads to Tom. What fraction does she give to Tom?"
    value = _answer(fill_numbers(text, "n2 / n1", topic="fractions", seed=seed), "n2 / n1")
    assert 0 < value < 1
    text = (
        "Tom has <num> cards. Maya takes <num> cards. What percentage of the cards does she take?"
    )
    filled = fill_numbers(text, "n2 / n1 * 100", topic="percentages", seed=seed)
    value = _answer(filled, "n2 / n1 * 100")
    assert 0 < value <= 100 and value == pytest.approx(round(value))


def test_grade_sets_the_range_and_the_seed_reproduces() -> None:
    text = "Maya has <num> apples and gets <num> more. How many apples does she have?"

    def largest(prefix: str) -> float:
        return max(
            max(
                numbers_in(
                    fill_numbers(text, "n1 + n2", topic="addition", prompt_prefix=prefix, seed=s)
                )
            )
            for s in range(50)
        )

    assert largest("For grade 1:") <= 10 and largest("Grade 5 pupils:") > 50
    assert fill_numbers(text, "n1 + n2", topic="addition", seed=7) == fill_numbers(
        text, "n1 + n2", topic="addition", seed=7
    )
    # grade N draws level N - 1: raters found sums below 40 too easy for grade 3
    assert level_of("For my grade 4 students:", random.Random(0)) == 3
    assert level_of("For grade 9:", random.Random(0)) == 4  # clamped to the hardest level
    assert level_of("Year 5, harder numbers please:", random.Random(0)) == 4  # grade 4, +1


def test_text_without_slots_is_unchanged_and_a_bad_equation_still_fills() -> None:
    text = "Maya has 5 apples and eats 8. How many are left?"
    assert fill_numbers(text, "n1 - n2", topic="subtraction") == text  # the model's own digits
    filled = fill_numbers("Tom has <num> pens. How many?", "n1 +", topic="addition")
    assert NUM_TOKEN not in filled
    assert not check_consistency(filled, render_slots(filled, "n1 +")).ok


def test_an_impossible_equation_is_left_for_the_check_to_reject() -> None:
    # n1 - n1 - n2 is negative whatever the values: the last draw is written, the check says why
    text = "Tom has <num> pens and gives away <num>. How many are left?"
    filled = fill_numbers(text, "n1 - n1 - n2", topic="subtraction", max_tries=20)
    assert NUM_TOKEN not in filled
    assert not check_consistency(filled, render_slots(filled, "n1 - n1 - n2")).ok


@pytest.mark.parametrize("seed", range(20))
def test_render_output_fills_then_agrees_nouns(seed: int) -> None:
    decoded = "A <k1> travels <num> km in <num> <k2s> . How far? ||| n1 / n2"
    out = render_output(decoded, ["truck", "hours"], topic="speed", seed=seed)
    assert NUM_TOKEN not in out.problem_text
    assert check_consistency(out.problem_text, out.equation_text).ok
    hours = numbers_in(out.problem_text)[1]
    assert (" 1 hour." in out.problem_text) == (hours == 1)
    spaced = render_output("It costs $ <num> with <num> % off. ||| n1 * n2 / 100", [], seed=seed)
    assert re.search(r"\$\d+(\.\d\d)? with \d+% off\.", spaced.problem_text)


def test_a_degenerate_loop_of_slots_is_filled_once_without_a_search() -> None:
    text = "Tom has " + " and ".join(["<num>"] * 400) + " apples. How many?"
    equation = " - ".join(f"n{i}" for i in range(1, 401))  # negative for any draw
    filled = fill_numbers(text, equation, topic="addition", seed=3)
    assert NUM_TOKEN not in filled and len(numbers_in(filled)) == 400
    # the first draw is kept: a search would have moved on from it
    assert filled == fill_numbers(text, equation, topic="addition", seed=3, max_tries=1)
    short = "Tom has <num> pens and gives away <num>. How many are left?"
    assert fill_numbers(short, "n2 - n1 - n1", seed=3) != fill_numbers(
        short, "n2 - n1 - n1", seed=3, max_tries=1
    )  # below the cap the search runs


def test_school_years_and_steps_by_grade() -> None:
    from serving.grade import steps_for
    from serving.prompt import canonical_prefix, grade_of

    assert grade_of("Year 5, harder numbers please:") == 4
    assert grade_of("For my grade 3 class:") == 3
    assert grade_of("Homework for tonight") is None
    assert canonical_prefix("Year 4 homework:") == "For a grade 3 class:"
    assert steps_for("Grade 4:") == (2, None)  # a single fact is too easy from grade 4
    assert steps_for("Grade 3, harder numbers please:") == (2, None)
    assert steps_for("Grade 4, keep it easy:") == (1, None)
    assert steps_for("An easy one for grade 2:") == (1, 1)  # "16 + 11 - 8" is not easy
    assert steps_for("Grade 1:") == (1, 1)
    assert steps_for("") == (1, None)


@pytest.mark.parametrize("seed", range(10))
def test_a_price_is_what_one_of_the_sentences_things_costs(seed: int) -> None:
    from serving.sizes import size_of

    text = "14 friends each buy a cinema ticket for $<num>. How much do they spend?"
    sizes = [size_of("cinema ticket")]
    filled = fill_numbers(
        text, "14 * n2", topic="money", prompt_prefix="Grade 5:", seed=seed, sizes=sizes
    )
    lo, hi = size_of("cinema ticket")["$"]
    assert lo <= numbers_in(filled)[1] <= hi


def test_skills_asked_for_in_the_prefix_are_read() -> None:
    """What `DRAWS` relies on: the prefix's skill, decimals and stretch, read from its words."""
    assert not asked_skill("Grade 3:") and asked_skill("Grade 2, adding with regrouping:").carry
    assert asked_skill("Grade 6, decimals:").decimals and not asked_skill("Grade 6:").decimals
    assert stretched("Grade 5, harder numbers please:") and stretched("Grade 6:")
    assert not stretched("Grade 4, harder numbers:") and not stretched("Grade 5:")
    assert not stretched("An easy one for grade 6:")
    assert stretch_skill("multiplication", priced=False).multi_digit
    assert stretch_skill("mixed operations", priced=True).decimals
    assert not stretch_skill("subtraction", priced=False)  # a 4,000-page book is no harder
    three = asked_skill("Grade 3, adding three-digit numbers with regrouping:")
    assert three.hundreds and three.carry and asked_skill("Year 4, 3-digit subtraction:").hundreds
    assert not asked_skill("Grade 4, 3-digit by 1-digit:").hundreds  # a product's digits
    assert asked_skill("For my grade 4 class, subtracting across zeros:").across_zeros
    assert asked_skill("Grade 3, unit fractions:").unit_fractions
    assert not asked_skill("Grade 3, fractions:").unit_fractions


@pytest.mark.parametrize(
    ("a", "b", "through_zero"),
    [(403, 158, True), (700, 204, True), (1005, 327, True), (161, 115, False), (452, 128, False)],
)
def test_a_subtraction_across_zeros_borrows_through_a_zero(
    a: int, b: int, through_zero: bool
) -> None:
    assert _across_zero(a, b) is through_zero


def _whole(value: float) -> bool:
    return value == int(value)


def _regroups_down(numbers: list[float]) -> bool:
    a, b = numbers
    return a > b and _regroups(int(a), int(b), "-")


def _whole_number_of_pens(text: str) -> bool:
    # the two prices as written after "$" (numbers_in would also read any other digits)
    a, b = (float(x) for x in re.findall(r"\$(\d+(?:\.\d+)?)", text))
    return (b / a) == pytest.approx(round(b / a))


def _fills_whole_boxes(text: str) -> bool:
    muffins, per_box, _price = (float(x) for x in re.findall(r"\d+(?:\.\d+)?", text))
    return muffins % per_box == 0


def _pours_whole_cups(text: str) -> bool:
    cups, num, den = (int(x) for x in re.findall(r"\d+", text))
    return cups * num % den == 0


class Draw(NamedTuple):
    """A slotted text asked for with a prefix, the seeds to draw with, and what every draw must
    satisfy, given the numbers in the filled text and the text itself."""

    text: str
    equation: str
    topic: str
    prompt_prefix: str
    seeds: range
    check: Callable[[list[float], str], bool]


# The numbers a teacher's prefix asks for (the grade, the skill, decimals, a stretch), and the
# contexts (prices, notes, fractions, take-aways) that must read like life.
DRAWS: dict[str, Draw] = {
    "grade-1-percentages": Draw(
        "A coat costs $<num>. It is on sale with <num>% off. How many dollars is the discount?",
        "n1 * n2 / 100",
        "percentages",
        "For a grade 1 class:",
        range(30),
        lambda n, _: len(n) == 2 and n[1] in (10, 50) and _whole(n[0] * n[1] / 100),
    ),
    "fraction-of-a-whole": Draw(
        "A tin holds <num> cookies. <num>/<num> of them are eaten. How many are eaten?",
        "n1 * n2 / n3",
        "fractions",
        "",
        range(30),
        lambda n, _: len(n) == 3 and 1 <= n[1] < n[2] and _whole(n[0] * n[1] / n[2]),
    ),
    # a fraction of something is a part by design
    "a-fraction-of-a-jug-is-whole-cups": Draw(
        "A jug of juice fills <num> cups. <name> pours out <num>/<num> of the jug. "
        "How many cups does <he> fill?",
        "n2 / n3 * n1",
        "fractions",
        "",
        range(10),
        lambda _, text: _pours_whole_cups(text),
    ),
    # 45 muffins do not fill boxes of 10, even when 4.5 boxes at $18 make a whole $81
    "every-division-on-the-way-is-whole": Draw(
        "The bakery has <num> muffins. It packs them in boxes of <num> and sells each box for "
        "$<num>. How much money does the bakery get if it sells all the boxes?",
        "n1 / n2 * n3",
        "mixed operations",
        "",
        range(10),
        lambda _, text: _fills_whole_boxes(text),
    ),
    "change-from-a-note": Draw(
        "<name> buys <num> pens at $<num> each. She pays with $<num>. How much change?",
        "n3 - n1 * n2",
        "money",
        "Grade 6:",
        range(20),
        lambda n, _: n[2] in (5, 10, 20, 50, 100),
    ),
    "a-discount-of-at-most-half": Draw(
        "A coat costs $<num>. He gets a <num>% discount. How much does he save?",
        "n1 * n2 / 100",
        "percentages",
        "Grade 6:",
        range(20),
        lambda n, _: n[1] <= 50,
    ),
    "a-take-away-leaves-a-fifth": Draw(
        "The box had <num> crayons. Grace lost <num> of them. How many are left?",
        "n1 - n2",
        "subtraction",
        "Grade 4:",
        range(20),
        lambda n, _: len(n) == 2 and n[0] - n[1] >= 0.2 * n[0],
    ),
    # a teacher asking for borrowing, thousands or 2-digit by 1-digit gets numbers that need it:
    # raters marked "99 - 79" down for "subtraction with borrowing"
    "subtraction-with-borrowing": Draw(
        "<name> has <num> pages. She reads <num> pages. How many pages are left?",
        "n1 - n2",
        "subtraction",
        "Year 2 class, subtraction with borrowing:",
        range(15),
        lambda n, _: _regroups_down(n),
    ),
    "numbers-in-the-thousands": Draw(
        "<num> fans came by bus and <num> fans came by car. How many fans came?",
        "n1 + n2",
        "addition",
        "Grade 5 warm-up with numbers in the thousands:",
        range(15),
        lambda n, _: max(n) >= 1000,
    ),
    "2-digit-by-1-digit": Draw(
        "<name> has <num> baskets. Each basket holds <num> plums. How many plums?",
        "n1 * n2",
        "multiplication",
        "Year 4 homework, 2-digit by 1-digit:",
        range(15),
        lambda n, _: sorted(len(str(int(x))) for x in n[:2]) == [1, 2],
    ),
    "halves-and-quarters": Draw(
        "A cake has <num> slices. <name> eats <num>/<num> of them. How many slices?",
        "n1 * n2 / n3",
        "fractions",
        "Grade 2, halves and quarters:",
        range(10),
        lambda n, _: n[2] in (2, 4),
    ),
    "times-tables": Draw(
        "<name> has <num> bags with <num> marbles in each. How many marbles?",
        "n1 * n2",
        "multiplication",
        "Grade 2, times tables 2, 5 and 10:",
        range(10),
        lambda n, _: bool({2, 5, 10} & set(n[:2])),
    ),
    # "10 seed trays of 28 seeds" is mental arithmetic, not grade 5's (raters)
    "no-times-ten-for-grade-5": Draw(
        "<name> has <num> trays. Each tray holds <num> seeds. How many seeds?",
        "n1 * n2",
        "multiplication",
        "Grade 5:",
        range(10),
        lambda n, _: not {10, 100} & set(n),
    ),
    # "Grade 5, decimals:" was rated down when every price was whole: prices go to the cent,
    # measures to a tenth, and a question that counts things keeps a whole answer
    "decimal-prices-to-the-cent": Draw(
        "<name> has $<num>. <He> buys a book for $<num>. How much money does <he> have left?",
        "n1 - n2",
        "money",
        "Grade 5, decimals:",
        range(8),
        lambda _, text: bool(re.search(r"\$\d+\.\d\d\b", text)),
    ),
    "decimal-measures-to-a-tenth": Draw(
        "A rope is <num> m long. <name> cuts off <num> m. How many metres are left?",
        "n1 - n2",
        "measurement",
        "Grade 5, decimals:",
        range(1, 2),
        lambda _, text: bool(re.search(r"\b\d+\.\d\b", text) and not re.search(r"\.\d0\b", text)),
    ),
    "decimal-prices-a-whole-count": Draw(
        "Pens cost $<num> each. <name> has $<num>. How many pens can <he> buy?",
        "n2 / n1",
        "money",
        "Grade 5, decimals:",
        range(8),
        lambda _, text: _whole_number_of_pens(text),
    ),
    # "Grade 5, harder numbers please" cannot go up a level: raters failed 24 x 11 and 8 raffle
    # tickets at $4 for grade 6. A product gets two 2-digit factors, a price its cents.
    "harder-numbers-two-2-digit-factors": Draw(
        "<name> has <num> seed trays. Each seed tray holds <num> seeds. How many seeds?",
        "n1 * n2",
        "multiplication",
        "Grade 5, harder numbers please:",
        range(8),
        lambda n, _: len(n) == 2 and min(n) >= 10,
    ),
    "harder-numbers-prices-with-cents": Draw(
        "<name> buys <num> tickets at $<num> each. <He> pays with $<num>. How much change?",
        "n3 - n1 * n2",
        "money",
        "Grade 6:",
        range(2, 3),
        lambda _, text: bool(re.search(r"\$\d+\.\d\d\b", text)),
    ),
    # raters failed 73 + 33 for "adding three-digit numbers", 161 - 115 for "subtracting across
    # zeros" and 5/6 of a bag for "unit fractions"
    "three-digit-numbers-are-added": Draw(
        "<name> has <num> stamps. <He> buys <num> more. How many stamps does <he> have now?",
        "n1 + n2",
        "addition",
        "Grade 3, adding three-digit numbers with regrouping:",
        range(8),
        lambda n, _: len(n) == 2 and min(n) >= 100,
    ),
    "a-take-away-across-zeros": Draw(
        "<name> had <num> stickers. <He> used <num> of them. How many stickers are left?",
        "n1 - n2",
        "subtraction",
        "Grade 4, subtracting across zeros:",
        range(8),
        lambda n, _: len(n) == 2 and _across_zero(int(n[0]), int(n[1])),
    ),
    "a-unit-fraction-of-an-amount": Draw(
        "<name> has <num> apples. <He> eats <num>/<num> of them. How many apples does <he> eat?",
        "n1 * n2 / n3",
        "fractions",
        "Grade 3, unit fractions:",
        range(8),
        lambda n, _: len(n) == 3 and n[1] == 1 and n[0] % n[2] == 0,
    ),
}


@pytest.mark.parametrize(
    ("case", "seed"), [(case, seed) for case, draw in DRAWS.items() for seed in draw.seeds]
)
def test_drawn_numbers_fit_the_request(case: str, seed: int) -> None:
    """Each case drawn with each of its own seeds: one test per draw, named by case and seed."""
    draw = DRAWS[case]
    filled = fill_numbers(
        draw.text, draw.equation, topic=draw.topic, prompt_prefix=draw.prompt_prefix, seed=seed
    )
    assert draw.check(numbers_in(filled), filled), filled


@pytest.mark.parametrize("seed", range(8))
def test_a_box_is_not_priced_like_one_muffin(seed: int) -> None:
    from serving.sizes import size_of

    text = (
        "The bakery has <num> muffins. It packs them in boxes of <num> and sells each box for "
        "$<num>. How much money does the bakery get?"
    )
    sizes = [size_of("muffin"), {}, {}]
    filled = fill_numbers(text, "n1 / n2 * n3", topic="mixed operations", seed=seed, sizes=sizes)
    assert numbers_in(filled)[2] >= 4, filled  # a muffin is $1-4; a box of them is not $2
