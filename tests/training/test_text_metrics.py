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


def test_metrics_score_rendered_slots() -> None:
    """A slotted output is scored as the user sees it: keywords rendered, numbers rendered."""
    pred = "A <k1> holds 12 <k2s>. Tom eats 5 <k2s>. How many <k2s> are left? ||| n1 - n2"
    m = generation_metrics([pred], [pred], [["crate", "pears"]], set())
    assert m["keyword_coverage"] == 1.0 and m["answer_consistency"] == 1.0
    assert m["well_formed_rate"] == 1.0 and m["rouge_l"] == pytest.approx(1.0)
    # the same text without the keyword slots misses the keywords
    literal = "A box holds 12 pens. Tom eats 5 pens. How many pens are left? ||| n1 - n2"
    assert (
        generation_metrics([literal], [pred], [["crate", "pears"]], set())["keyword_coverage"]
        == 0.0
    )


UNSEEN = [
    {"id": "unseen-0000", "topic": "subtraction", "keywords": ["walruses"]},
    {"id": "unseen-0001", "topic": "addition", "keywords": ["igloo", "owls"]},
    {"id": "unseen-0002", "topic": "division", "keywords": ["geese"]},
]


def test_unseen_metrics_on_hand_made_outputs() -> None:
    from training.text_metrics import unseen_metrics

    preds = [
        # clean, consistent, subtraction
        "A zoo has 12 <k1s>. 5 <k1s> leave. How many <k1s> are left? ||| n1 - n2",
        # "a igloo" is rendered "an igloo"; but the equation subtracts for an addition request
        "A <k1> holds 7 <k2s> and 3 <k2s> fly in. How many <k2s> are there? ||| n1 - n2",
        # a leftover slot (unknown_token), missing keyword, no equation
        "Tom has 8 <k3s> and 2 apples. How many? |||",
    ]
    m = unseen_metrics(preds, UNSEEN)
    assert m["keyword_coverage_unseen"] == pytest.approx(2 / 3)
    assert m["topic_fidelity"] == pytest.approx(1 / 3)
    assert m["answer_consistency_unseen"] == pytest.approx(2 / 3)
    assert m["grammar_defect_rate"] == pytest.approx(1 / 3)
    assert m["grammar_clean_rate"] == pytest.approx(2 / 3)
    assert m["grammar_unknown_token_rate"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="lengths differ"):
        unseen_metrics(preds[:2], UNSEEN)


def test_mixed_metrics_scores_each_record_kind_by_its_own_rules() -> None:
    from training.text_metrics import mixed_metrics

    pred = "A zoo has 12 <k1s>. 5 <k1s> leave. How many <k1s> are left? ||| n1 - n2"
    test_rec = {"id": "templates-1", "target": REF, "keywords": ["apples"]}
    m = mixed_metrics([REF, pred], [test_rec, UNSEEN[0]], set())
    assert m["rouge_l"] == pytest.approx(1.0) and m["answer_consistency"] == 1.0
    assert m["keyword_coverage_unseen"] == 1.0 and m["topic_fidelity"] == 1.0


def test_served_unseen_metrics_follow_the_endpoint_policy() -> None:
    """Retries count: a request whose first sample is inconsistent is scored on the retry."""
    from pathlib import Path

    from serving.generator import GeneratorModel
    from serving.settings import ServingSettings
    from training.text_metrics import served_unseen_metrics

    class Scripted:
        def __init__(self, texts: list[str]) -> None:
            self.texts, self.calls = texts, 0

        def generate_text(self, prompt: str, **kwargs: object) -> str:
            self.calls += 1
            return self.texts.pop(0)

    engine = Scripted(
        [
            "A <k1> holds 3 apples. How many apples? ||| n1 + n2",  # inconsistent: retried
            "A <k1> holds 3 apples and 4 pears. How many fruits are there? ||| n1 + n2",
            "Tom has 5 pens and gets 2 more. How many pens does Tom have? ||| n1 + n2",
        ]
    )
    service = GeneratorModel(
        artifact_dir=Path("."),
        manifest={},
        engine=engine,
        settings=ServingSettings(generator_max_attempts=1 + 1),
    )
    records = [
        {"topic": "addition", "keywords": ["walrus"], "prompt_prefix": ""},
        # "kayak" never appears, and both attempts are consistent: the first one is kept
        {"topic": "addition", "keywords": ["kayak"], "prompt_prefix": ""},
    ]
    engine.texts.append("Tom has 5 pens and gets 2 more. How many pens does Tom have? ||| n1 + n2")
    m = served_unseen_metrics(service, records, seed=3, max_length=64)
    assert engine.calls == 4
    assert m["served_n"] == 2.0
    assert m["served_keyword_coverage_unseen"] == 0.5
    assert m["served_answer_consistency_unseen"] == 1.0
    assert m["served_mean_attempts"] == 2.0
    assert m["served_topic_fidelity"] == 1.0
    assert 0.0 <= m["served_grammar_defect_rate"] <= 1.0
    with pytest.raises(ValueError, match="no records"):
        served_unseen_metrics(service, [], seed=3, max_length=64)


def test_shape_slot_flags_a_noun_in_a_shape_words_place() -> None:
    from training.text_metrics import shape_slot

    assert shape_slot("A <k1> travels <num> km. What is its average <k2> in km per hour? ||| n1")
    assert shape_slot("A rectangular <k1> is <num> m long. What is its <k2> in square metres?")
    assert not shape_slot("A <k1> travels <num> km. What is its average speed in km per hour?")
    # only the problem text counts, not what follows the separator
    assert not shape_slot("A <k1> holds <num> <k2s>. How many? ||| n1 ||| its <k2> in")


def test_served_samples_page_prints_what_each_request_got() -> None:
    from training.text_metrics import served_samples_page

    def row(i: int) -> dict:
        return {
            "request": {"topic": "addition", "keywords": [f"kw{i}"], "prompt_prefix": ""},
            "problem": f"Maya has {i} pens and gets 2 more. How many pens does she have?",
            "equation": f"{i} + 2",
            "answer": f"{i + 2}",
            "consistent": i != 3,
            "keywords_unused": [[f"kw{i}", "no role takes it"]] if i == 4 else [],
            "story_defects": [],
        }

    page = served_samples_page(
        {"realistic": [row(i) for i in range(6)], "unseen": [row(i) for i in range(2)]},
        n=4,
        seed=0,
        variant="dynamic_int8",
    )
    assert page.startswith("# Generator samples, as served")
    assert page.count("## ") == 2 and page.count("   > Maya has") == 6  # 4 + both of 2
    assert "dynamic_int8" in page
    if "kw3" in page:
        assert "consistent: **no**" in page
