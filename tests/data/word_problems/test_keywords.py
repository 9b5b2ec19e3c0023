"""Keyword extraction for real problems."""

from __future__ import annotations

import pytest

from data.word_problems.keywords import document_frequency, extract_keywords, singular


@pytest.mark.parametrize(
    ("word", "single"),
    [
        ("apples", "apple"),
        ("boxes", "box"),
        ("strawberries", "strawberry"),
        ("glass", "glass"),
        ("bus", "bus"),
        ("pencil", "pencil"),
        ("Cookies", "cooky"),
        ("cookie", "cooky"),
    ],
)
def test_singular(word: str, single: str) -> None:
    assert singular(word) == single


def test_content_nouns_not_stopwords_or_names() -> None:
    text = (
        "Mary is baking a cake. The recipe wants 8 cups of flour. She already put in 2 cups. "
        "How many cups does she need to add?"
    )
    kws = extract_keywords(text, 3)
    assert "cups" in kws
    assert not {"mary", "she", "how", "many", "the", "does"} & set(kws)
    assert len(kws) == 3


def test_plural_forms_count_once_and_order_follows_text() -> None:
    text = "Tom has 3 apples. He buys 1 apple and 2 pears. How many apples and pears now?"
    kws = extract_keywords(text, 2)
    assert kws == ["apples", "pears"]


def test_names_inside_sentences_are_skipped() -> None:
    kws = extract_keywords("Yesterday Jason gave 4 marbles to Priya. How many marbles left?", 3)
    assert "jason" not in kws and "priya" not in kws and "marbles" in kws


def test_document_frequency_downweights_common_words() -> None:
    docs = [f"Ann has 3 dollars and 2 {w}. How many {w}?" for w in ("kites", "hats", "pens")]
    df, n = document_frequency(docs)
    assert df["dollar"] == 3 and n == 3
    kws = extract_keywords(docs[0], 1, doc_freq=df, n_docs=n)
    assert kws == ["kites"]


def test_k_must_be_positive() -> None:
    with pytest.raises(ValueError, match="k"):
        extract_keywords("x", 0)


def test_no_candidates() -> None:
    assert extract_keywords("How many are there?", 3) == []
