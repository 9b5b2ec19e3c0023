"""The authored typed-role skeleton bank: format, coverage, and every skeleton renders."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from data.word_problems.skeletons import (
    Skeleton,
    SkeletonError,
    load_bank,
    load_file,
    render_request,
    to_target,
)
from serving.lexicon import Lexicon
from serving.topics import TEMPLATE_TOPICS

MIN_PER_TOPIC = 25


@pytest.fixture(scope="module")
def bank() -> list[Skeleton]:
    return load_bank()


@pytest.fixture(scope="module")
def empty_lexicon(tmp_path_factory: pytest.TempPathFactory) -> Lexicon:
    path = tmp_path_factory.mktemp("lex") / "nouns.tsv"
    path.write_text("jar\tcontainer\tcontainer\tc\n", encoding="utf-8")
    return Lexicon.load(path)


def test_every_topic_has_enough_skeletons(bank: list[Skeleton]) -> None:
    for topic in TEMPLATE_TOPICS:
        n = sum(s.topic == topic for s in bank)
        assert n >= MIN_PER_TOPIC, f"{topic}: {n} skeletons"


def test_every_skeleton_renders_with_pool_nouns(
    bank: list[Skeleton], empty_lexicon: Lexicon
) -> None:
    """With no keyword every role takes a pool noun: no token is left, the answer is whole and
    positive, and the question ends the text."""
    rng = random.Random(0)
    for sk in bank:
        for grade in ("Grade 1:", "Grade 4:", "For grade 6:"):
            r = render_request(
                sk, [], prompt_prefix=grade, lexicon=empty_lexicon, seed=rng.randrange(10**6)
            )
            assert "<" not in r.text and ">" not in r.text, (sk.source, r.text)
            assert r.text.endswith("?"), sk.source
            assert r.answer > 0, (sk.source, r.text, r.equation)


def test_target_numbers_count_literal_digits() -> None:
    sk = Skeleton(
        "multiplication",
        "Each {vehicle} has 4 wheels. How many wheels do {a} {vehicle:pl} have?",
        "4 * {a}",
        "t#0",
    )
    assert to_target(sk) == (
        "Each <vehicle> has 4 wheels. How many wheels do <num> <vehicle:pl> have?",
        "4 * n2",
    )


@pytest.mark.parametrize(
    ("text", "equation", "match"),
    [
        ("{name} has {a} {thing:pl}. How many?", "{a} + {b}", "not in the text"),
        ("{name} has {a} {thing:pl} and {b}. How many?", "{a}", "not in the equation"),
        ("{name} has {a} {gizmo:pl}. How many?", "{a}", "unknown placeholder"),
        ("{name} has {a} {thing:pl}.", "{a}", "must end with its question"),
    ],
)
def test_bad_skeletons_are_named(tmp_path: Path, text: str, equation: str, match: str) -> None:
    f = tmp_path / "x.yaml"
    f.write_text(f'topic: addition\nskeletons:\n  - text: "{text}"\n    equation: "{equation}"\n')
    with pytest.raises(SkeletonError, match=match):
        load_file(f)
