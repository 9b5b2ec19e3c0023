"""Declared topics, synonyms, and the equation rules behind ``topic_fidelity``."""

from __future__ import annotations

import pytest

from serving.topics import (
    CORPUS_TOPICS,
    DEFAULT_TOPICS,
    SUPPORTED_TOPICS,
    SYNONYMS,
    TEMPLATE_TOPICS,
    TOPIC_RULES,
    artifact_topics,
    canonical_topic,
    equation_fits_topic,
    synonyms_for,
    topic_operations,
)


def test_template_topics_match_the_templates() -> None:
    from data.word_problems.templates import TOPIC_NAMES

    assert TEMPLATE_TOPICS == TOPIC_NAMES


def test_corpus_topics_cover_the_adapters() -> None:
    from data.word_problems.adapters import topic_from_equation

    equations = ["1 + 2", "5 - 3", "2 * 3", "6 / 2", "1 + 2 - 3", "2 * 3 / 4", "2 + 3 * 4", "2 ^ 3"]
    produced = {topic_from_equation(e) for e in equations} | {topic_from_equation("2 * 3", "5%")}
    assert produced <= set(SUPPORTED_TOPICS)
    assert set(CORPUS_TOPICS) <= produced


def test_every_topic_has_a_rule_and_synonyms_point_at_topics() -> None:
    assert set(TOPIC_RULES) == set(SUPPORTED_TOPICS)
    assert set(SYNONYMS.values()) <= set(SUPPORTED_TOPICS)
    for synonym, topic in SYNONYMS.items():
        assert canonical_topic(synonym) == topic, synonym


@pytest.mark.parametrize(
    ("name", "topic"),
    [
        ("addition", "addition"),
        (" ADDITION ", "addition"),
        ("sums", "addition"),
        ("Sum", "addition"),
        ("adding", "addition"),
        ("plus", "addition"),
        ("take-away", "subtraction"),
        ("percent", "percentages"),
        ("Percentage", "percentages"),
        ("%", "percentages"),
        ("times tables", "multiplication"),
        ("Times  Table", "multiplication"),
        ("times", "multiplication"),
        ("time", "time"),
        ("multiplying", "multiplication"),
        ("sharing equally", "division"),
        ("quotients", "division"),
        ("Fraction", "fractions"),
        ("halves", "fractions"),
        ("area & perimeter", "area and perimeter"),
        ("Area_and_Perimeter", "area and perimeter"),
        ("geometry", "area and perimeter"),
        ("shapes", "area and perimeter"),
        ("clocks", "time"),
        ("multi-step", "mixed operations"),
    ],
)
def test_canonical_topic(name: str, topic: str) -> None:
    assert canonical_topic(name) == topic


@pytest.mark.parametrize(
    "name", ["dragons", "", "   ", "history", "additions and dragons", "timess"]
)
def test_unknown_topics(name: str) -> None:
    assert canonical_topic(name) is None


def test_supported_restricts_and_extends() -> None:
    assert canonical_topic("mixed", DEFAULT_TOPICS) is None  # corpus topic, template artifact
    assert canonical_topic("mixed", SUPPORTED_TOPICS) == "mixed operations"
    assert canonical_topic("Probability", ["probability", "addition"]) == "probability"
    assert canonical_topic("sums", ["addition"]) == "addition"
    assert synonyms_for(["addition"]) == {k: v for k, v in SYNONYMS.items() if v == "addition"}


@pytest.mark.parametrize(
    ("manifest", "topics"),
    [
        ({"topics": ["addition", "speed"]}, ("addition", "speed")),
        ({}, DEFAULT_TOPICS),
        (None, DEFAULT_TOPICS),
        ({"topics": []}, DEFAULT_TOPICS),
        ({"topics": "addition"}, DEFAULT_TOPICS),
    ],
)
def test_artifact_topics(manifest: dict | None, topics: tuple[str, ...]) -> None:
    assert artifact_topics(manifest) == topics


def test_every_template_problem_fits_its_own_topic() -> None:
    from data.word_problems.templates import generate_templates

    problems = generate_templates(n=2200, seed=11)
    assert {p.topic for p in problems} == set(TEMPLATE_TOPICS)
    misfits = [
        (p.topic, p.equation, p.problem)
        for p in problems
        if not (
            equation_fits_topic(p.topic, p.equation)
            and equation_fits_topic(p.topic, p.equation, p.problem)
        )
    ]
    assert misfits == []


@pytest.mark.parametrize(
    ("topic", "equation", "problem", "fits"),
    [
        ("subtraction", "211 - 53", None, True),
        ("subtraction", "211 + 53", None, False),
        ("subtraction", "211 - 53 + 1", None, False),
        ("addition", "3 + 4 + 5", None, True),
        ("addition", "-3 + 4", None, True),  # unary minus is a sign
        ("multiplication", "3 * 4", None, True),
        ("multiplication", "3 ** 2", None, True),
        ("division", "12 / 3", None, True),
        ("division", "12 * 3", None, False),
        ("fractions", "12 * 1 / 3", None, True),
        ("fractions", "12 * 0.25", None, True),
        ("fractions", "12 * 3", None, False),
        ("fractions", "12 - 4", None, False),
        ("percentages", "80 * 25 / 100", None, True),
        ("percentages", "80 * 0.25", None, True),
        ("percentages", "80 * 25 / 4", None, False),
        ("area and perimeter", "2 * (3 + 4)", None, True),
        ("area and perimeter", "3 + 4", None, False),
        # a geometry request once answered with a money problem about yo-yos
        ("area and perimeter", "4 * 3", "How many dollars do 3 yo-yos cost?", False),
        (
            "area and perimeter",
            "4 * 3",
            "A garden is 4 m long and 3 m wide. What is its area?",
            True,
        ),
        ("money", "4 * 3", "A yo-yo costs $4. How many dollars do 3 yo-yos cost?", True),
        ("money", "4 * 3", "A garden has 4 rows of 3 trees. How many trees are there?", False),
        ("addition and subtraction", "3 + 4 - 2", None, True),
        ("addition and subtraction", "3 + 4", None, True),
        ("addition and subtraction", "3 * 4", None, False),
        ("multiplication and division", "63 / 9", None, True),
        ("speed", "150 - 4 * 21", None, True),
        ("fractions", "30 - 30 * 1 / 3", None, True),
        ("multiplication and division", "3 * 4 / 2", None, True),
        ("mixed operations", "3 * 4 + 2", None, True),
        ("mixed operations", "3 * 4 / 2", None, False),
        ("addition", None, None, False),
        ("addition", "", None, False),
        ("addition", "n1 + n2", None, False),  # unrendered slots are not arithmetic
        ("addition", "12", None, False),  # no operation at all
        ("dragons", "3 + 4", None, False),
    ],
)
def test_equation_fits_topic(
    topic: str, equation: str | None, problem: str | None, fits: bool
) -> None:
    assert equation_fits_topic(topic, equation, problem) is fits


def test_topic_operations() -> None:
    assert topic_operations("subtraction") == frozenset("-")
    assert topic_operations("fractions") == frozenset("*/")
    assert topic_operations("addition and subtraction") == frozenset("+-")
    with pytest.raises(KeyError, match="dragons"):
        topic_operations("dragons")
