"""Number slots: values drawn so the decoded equation answers its own text."""

from __future__ import annotations

import random
import re

import pytest

from serving.arithmetic import evaluate, numbers_in
from serving.consistency import check_consistency
from serving.numbers import NUM_TOKEN, fill_numbers, level_of
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
def test_percent_fraction_and_money_contexts(seed: int) -> None:
    pct = fill_numbers(
        "A coat costs $<num>. It is on sale with <num>% off. How many dollars is the discount?",
        "n1 * n2 / 100",
        topic="percentages",
        prompt_prefix="For a grade 2 class:",
        seed=seed,
    )
    price, percent = numbers_in(pct)
    assert percent in (10, 50)  # grade 2 percentages
    assert (price * percent / 100) == int(price * percent / 100)
    frac = fill_numbers(
        "A tin holds <num> cookies. <num>/<num> of them are eaten. How many are eaten?",
        "n1 * n2 / n3",
        topic="fractions",
        seed=seed,
    )
    whole, num, den = numbers_in(frac)
    assert 1 <= num < den and whole * num / den == int(whole * num / den)


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

    assert largest("For grade 2:") <= 10 and largest("Grade 5 pupils:") > 50
    assert fill_numbers(text, "n1 + n2", topic="addition", seed=7) == fill_numbers(
        text, "n1 + n2", topic="addition", seed=7
    )
    assert level_of("For my grade 4 students:", random.Random(0)) == 2
    assert level_of("For grade 9:", random.Random(0)) == 4  # clamped to the hardest level
    assert level_of("Year 5, harder numbers please:", random.Random(0)) == 3  # grade 4, +1


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


@pytest.mark.parametrize("seed", range(10))
def test_every_division_on_the_way_is_whole(seed: int) -> None:
    # 45 muffins do not fill boxes of 10, even when 4.5 boxes at $18 make a whole $81
    sk = (
        "The bakery has <num> muffins. It packs them in boxes of <num> and sells each box for "
        "$<num>. How much money does the bakery get if it sells all the boxes?"
    )
    muffins, per_box, _price = (
        float(x)
        for x in re.findall(
            r"\d+(?:\.\d+)?", fill_numbers(sk, "n1 / n2 * n3", topic="mixed operations", seed=seed)
        )
    )
    assert muffins % per_box == 0
    # a fraction of something is a part by design
    frac = (
        "A jug of juice fills <num> cups. <name> pours out <num>/<num> of the jug. "
        "How many cups does <he> fill?"
    )
    cups, num, den = (
        int(x)
        for x in re.findall(
            r"\d+", fill_numbers(frac, "n2 / n3 * n1", topic="fractions", seed=seed)
        )
    )
    assert cups * num % den == 0


def test_school_years_and_steps_by_grade() -> None:
    from serving.numbers import min_steps
    from serving.prompt import canonical_prefix, grade_of

    assert grade_of("Year 5, harder numbers please:") == 4
    assert grade_of("For my grade 3 class:") == 3
    assert grade_of("Homework for tonight") is None
    assert canonical_prefix("Year 4 homework:") == "For a grade 3 class:"
    assert min_steps("Grade 5:") == 2
    assert min_steps("Grade 4, harder numbers please:") == 2
    assert min_steps("Grade 5, keep it easy:") == 1
    assert min_steps("") == 1


@pytest.mark.parametrize("seed", range(20))
def test_notes_discounts_and_take_aways_read_like_life(seed: int) -> None:
    change = fill_numbers(
        "<name> buys <num> pens at $<num> each. She pays with $<num>. How much change?",
        "n3 - n1 * n2",
        topic="money",
        prompt_prefix="Grade 6:",
        seed=seed,
    )
    assert numbers_in(change)[2] in (5, 10, 20, 50, 100)
    sale = fill_numbers(
        "A coat costs $<num>. He gets a <num>% discount. How much does he save?",
        "n1 * n2 / 100",
        topic="percentages",
        prompt_prefix="Grade 6:",
        seed=seed,
    )
    assert numbers_in(sale)[1] <= 50
    lost = fill_numbers(
        "The box had <num> crayons. Grace lost <num> of them. How many are left?",
        "n1 - n2",
        topic="subtraction",
        prompt_prefix="Grade 4:",
        seed=seed,
    )
    whole, gone = numbers_in(lost)
    assert whole - gone >= 0.2 * whole


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
