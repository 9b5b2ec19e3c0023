"""Grammar checks: each defect class caught on hand-written bad text, silent on good text."""

from __future__ import annotations

import pytest

from serving.grammar import DEFECT_CLASSES, explain_defects, grammar_defects
from serving.realize import delexicalize, realize

GOOD_TAIL = " How many are there?"  # keeps the question check quiet in the other classes' rows


@pytest.mark.parametrize(
    ("text", "keywords", "defect"),
    [
        # outputs once served, verbatim
        (
            "A boxes boxes held 211 boxes. Noah took out 53 boxes. "
            "How many boxes are left in the boxes?",
            ["boxes"],
            "doubled_word",
        ),
        (
            "A boxes boxes held 211 boxes. Noah took out 53 boxes. "
            "How many boxes are left in the boxes?",
            ["boxes"],
            "article",
        ),
        (
            "The class class ruler had 112 minutes of them. The teacher added 7 minutes. "
            "What is the total number of the dragon in the dragon?",
            ["bosses", "minutes"],
            "doubled_word",
        ),
        (
            "A yo-yo costs $4. How many dollars do 3 yo-yos does he have in total?",
            ["triangle", "garden"],
            "question",
        ),
        ("A horse holds 12 flowers. 1/3 of them are", ["pizza"], "question"),
        # doubled words and phrases
        ("Tom has 3 apples and the the box." + GOOD_TAIL, [], "doubled_word"),
        ("Tom put the box the box on 3 shelves." + GOOD_TAIL, [], "doubled_word"),
        # wrong a/an, a/an before a plural noun
        ("Mia eats a apple." + GOOD_TAIL, [], "article"),
        ("Mia rides an unicorn." + GOOD_TAIL, [], "article"),
        ("It took a hour." + GOOD_TAIL, [], "article"),
        ("He paid a 8 dollar fee." + GOOD_TAIL, [], "article"),
        ("A gardens has 3 trees." + GOOD_TAIL, ["garden"], "article"),
        ("Sam saw a cars." + GOOD_TAIL, [], "article"),
        # a count and its noun disagree
        ("Tom has 1 apples." + GOOD_TAIL, [], "number_agreement"),
        ("Tom has 3 apple." + GOOD_TAIL, [], "number_agreement"),
        ("Tom waits 2.5 hour." + GOOD_TAIL, [], "number_agreement"),
        ("Tom has one boxes." + GOOD_TAIL, [], "number_agreement"),
        ("Tom has 4 pizza." + GOOD_TAIL, ["pizzas"], "number_agreement"),
        (
            "Tom has 1 unicorns in 1,000 garden." + GOOD_TAIL,
            ["unicorn", "garden"],
            "number_agreement",
        ),
        # the question is missing or malformed
        ("Tom has 3 apples and 2 pears.", [], "question"),
        ("Tom has 3 apples. How many?", [], "question"),
        ("Tom has 3 apples? How many apples does he have?", [], "question"),
        ("Tom has 3 apples. The apples are red?", [], "question"),
        ("Tom has 3 apples. How many apples does he have? Then", [], "question"),
        ("", [], "question"),
        # unknown tokens
        ("A <k3> holds 3 apples." + GOOD_TAIL, ["box"], "unknown_token"),
        ("A <unk> holds 3 apples." + GOOD_TAIL, [], "unknown_token"),
        ("Tom has n1 apples." + GOOD_TAIL, [], "unknown_token"),
        ("Tom has 3 apples ||| n1." + GOOD_TAIL, [], "unknown_token"),
        ("Tom has 3 apples > 2." + GOOD_TAIL, [], "unknown_token"),
        ("Tom gives 2 apples to|| Maya." + GOOD_TAIL, [], "unknown_token"),  # a cut separator
        ("Tom has 3 apples\x07." + GOOD_TAIL, [], "unknown_token"),
        ("Tom has 3 \ufffd apples." + GOOD_TAIL, [], "unknown_token"),
        ("Tom has 3 apples . How many are there ?", [], "unknown_token"),
        ("Tom has $ 3 left." + GOOD_TAIL, [], "unknown_token"),
        ("Tom has 3 ▁apples." + GOOD_TAIL, [], "unknown_token"),
    ],
)
def test_bad_text_is_caught(text: str, keywords: list[str], defect: str) -> None:
    assert defect in grammar_defects(text, keywords), explain_defects(text, keywords)


@pytest.mark.parametrize(
    ("text", "keywords"),
    [
        ("Maya has 12 apples and an orange. How many apples does she have?", ["apple"]),
        ("An hour has 60 minutes. How many minutes are in 3 hours?", ["hour"]),
        ("A unicorn eats 1 apple every day. How many apples does it eat in 7 days?", []),
        ("He had had 3 pens. He says that that is all. How many pens are there?", []),
        ("A bus carries 40 children. 1 bus is late. How many children ride on 3 buses?", ["bus"]),
        ("A class has 3 glasses and 1 glass. How many glasses are there?", ["class", "glass"]),
        ("3 sheep and 1 sheep graze. How many sheep are there?", ["sheep"]),
        ("The news has 1 series of 5 fish. Is the series long?", ["news", "series"]),
        ("Sam buys 3 toy cars and a sports bag. How many toy cars does he have?", []),
        ("A 5 day trip costs $40. What is the cost of each day in dollars?", []),
        ("A car travels 9 km in 1 hour. What is its speed in km per hour?", ["km"]),
        ("At the same speed, how far does it go in 2 hours?", []),
        ("If they share 12 pens equally how many pens does each get?", []),
        ("How many more push-ups than crunches did Zachary do?", []),
        ("How many more blocks did he use than he did for the house?", []),
        ("Team A has 5 players. Group A owns 3 balls. How many balls are there?", []),
        ("Mrs. Hilt has 3 pens. Mrs. Lee has 2. How many pens do they have?", []),
        ("An 8 cm rope is cut into 2 pieces of 4 cm - what is left?", []),
        ("An SUV and an Uber cost $5 each. How much do 2 cost?", []),
        ("A pizza is cut into 8 slices and 3/8 of it is eaten. What fraction is left?", ["pizza"]),
    ],
)
def test_good_text_is_clean(text: str, keywords: list[str]) -> None:
    assert grammar_defects(text, keywords) == [], explain_defects(text, keywords)


def test_issue_topic_mismatch_is_not_a_grammar_defect() -> None:
    # wrong topic and missing keyword, but grammatical: other metrics catch it
    text = "A horse holds 12 flowers. 1/3 of them are used today. How many feathers are used?"
    assert grammar_defects(text, ["pizza"]) == []


def test_classes_are_ordered_and_named() -> None:
    text = "A boxes boxes held <k2> boxes"
    assert grammar_defects(text, ["boxes"]) == [
        c for c in DEFECT_CLASSES if c in {"doubled_word", "article", "question", "unknown_token"}
    ]
    assert set(explain_defects(text, ["boxes"])) <= set(DEFECT_CLASSES)


def test_template_problems_are_clean_after_realize() -> None:
    # every template sentence shape, rendered with teacher-style keywords through the slots
    from data.word_problems.templates import generate_templates

    problems = generate_templates(n=440, seed=5)
    new_words = ["unicorn", "hour", "pencil case", "boxes", "sheep", "ice cream", "bus", "glass"]
    flagged = []
    for i, p in enumerate(problems):
        kws = list(p.keywords)
        slots = delexicalize(p.problem, kws)
        assert slots is not None, (p.problem, kws)
        text = realize(slots, [new_words[i % len(new_words)], *kws[1:]])
        if grammar_defects(text, [new_words[i % len(new_words)], *kws[1:]]):
            flagged.append(text)
    assert flagged == []


def test_rejects_non_string() -> None:
    with pytest.raises(TypeError, match="text"):
        grammar_defects(None)  # type: ignore[arg-type]
