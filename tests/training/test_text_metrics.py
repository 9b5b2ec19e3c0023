"""Generation metrics on hand-made predictions."""

from __future__ import annotations

import pytest

from training.text_metrics import (
    distinct_n,
    generation_metrics,
    keyword_coverage,
    keyword_present,
    well_formed,
)

REF = "Maya has 12 apples and gives 5 to Tom. How many apples are left? ||| 12 - 5"
TRAIN = {"Tom has 3 pens and buys 2 more pens. How many pens does he have?"}


def test_perfect_predictions() -> None:
    m = generation_metrics([REF], [REF], [["apples"]], TRAIN)
    assert m["rouge_l"] == pytest.approx(1.0)
    assert m["bleu"] == pytest.approx(1.0)
    assert m["keyword_coverage"] == 1.0
    assert m["well_formed_rate"] == 1.0
    assert m["answer_consistency"] == 1.0
    assert m["copy_rate"] == 0.0
    assert set(m) == {
        "rouge_l",
        "bleu",
        "keyword_coverage",
        "well_formed_rate",
        "answer_consistency",
        "distinct_2",
        "copy_rate",
    }


def test_bad_predictions_score_low() -> None:
    preds = [
        "Maya has <unk> apples. ||| 12 - 5",  # not a question, unknown token, wrong numbers
        "Tom has 3 pens and buys 2 more pens. How many pens does he have? ||| 3 + 2",  # copied
    ]
    m = generation_metrics(preds, [REF, REF], [["apples", "baskets"], ["kites"]], TRAIN)
    assert m["keyword_coverage"] == pytest.approx(0.25)
    assert m["well_formed_rate"] == pytest.approx(0.5)
    assert m["answer_consistency"] == pytest.approx(0.5)
    assert m["copy_rate"] == pytest.approx(0.5)
    assert m["rouge_l"] < 0.6


def test_missing_equation_is_inconsistent() -> None:
    pred = "Maya has 12 apples and gives 5 to Tom. How many apples are left?"
    assert generation_metrics([pred], [REF], [["apples"]], set())["answer_consistency"] == 0.0


@pytest.mark.parametrize(
    ("keyword", "text", "present"),
    [
        ("apples", "Maya has 1 apple?", True),
        ("Box", "3 boxes of pens", True),
        ("strawberries", "a strawberry", True),
        ("toy cars", "He has 3 toy cars.", True),
        ("toy cars", "a toy and 3 cars", False),
        ("pen", "a pencil", False),
        ("cm", "12 cm long", True),
    ],
)
def test_keyword_present(keyword: str, text: str, present: bool) -> None:
    assert keyword_present(keyword, text) is present


def test_keyword_coverage_share() -> None:
    assert keyword_coverage("3 apples in a box?", ["apple", "boxes", "kites"]) == pytest.approx(
        2 / 3
    )
    assert keyword_coverage("anything", []) == 1.0


@pytest.mark.parametrize(
    ("text", "ok"),
    [("How many 3?", True), ("How many?", False), ("3 apples.", False), ("<unk> 3?", False)],
)
def test_well_formed(text: str, ok: bool) -> None:
    assert well_formed(text) is ok


def test_distinct_2() -> None:
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)
    assert distinct_n(["a b", "a b"], 2) == pytest.approx(0.5)
    assert distinct_n(["a"], 2) == 0.0


def test_input_checks() -> None:
    with pytest.raises(ValueError, match="no predictions"):
        generation_metrics([], [], [], set())
    with pytest.raises(ValueError, match="lengths differ"):
        generation_metrics([REF], [REF, REF], [["a"]], set())
