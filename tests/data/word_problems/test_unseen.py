"""The open-vocabulary requests: keywords in no training record, seeded, spread over topics."""

from __future__ import annotations

import pytest

from data.word_problems.corpus import template_records
from data.word_problems.heldout_nouns import HELDOUT_NOUNS
from data.word_problems.unseen import (
    UNSEEN_PREFIXES,
    build_unseen_requests,
    corpus_nouns,
    is_unseen,
    keyword_words,
    record_words,
)
from serving.keywords import keyword_present
from serving.prompt import format_prompt

TOPICS = ("addition", "subtraction", "fractions")


@pytest.fixture(scope="module")
def vocabulary() -> set[str]:
    return record_words(template_records(n=2000, seed=5))


def _build(vocabulary: set[str], **kw):
    args = {
        "n": 90,
        "seed": 1,
        "topics": TOPICS,
        "vocabulary": vocabulary,
        "list_nouns": HELDOUT_NOUNS,
        "corpus_pools": {},
        "corpus_share": 0.5,
        **kw,
    }
    return build_unseen_requests(**args)


def test_keywords_never_occur_in_training_text(vocabulary) -> None:
    train = template_records(n=2000, seed=5)
    requests, report = _build(vocabulary)
    assert report.n_requests == len(requests) == 90
    texts = [r["problem"] + " " + " ".join(r["keywords"]) for r in train]
    for req in requests:
        for kw in req["keywords"]:
            assert is_unseen(kw, vocabulary)
        # independent of the word sets: no training text holds any inflection of the keyword
    kws = {k for req in requests for k in req["keywords"]}
    assert not [(k, t) for k in kws for t in texts if keyword_present(k, t)]


def test_requests_are_seeded_and_spread_over_topics_and_sizes(vocabulary) -> None:
    a, report = _build(vocabulary)
    assert a == _build(vocabulary)[0]
    assert a != _build(vocabulary, seed=2)[0]
    assert report.topics == {t: 30 for t in TOPICS}
    assert set(report.keyword_counts) == {"1", "2", "3"}
    for req in a:
        assert req["prompt"] == format_prompt(req["topic"], req["keywords"], req["prompt_prefix"])
        assert req["prompt_prefix"] in UNSEEN_PREFIXES
        singulars = [keyword_words(k) for k in req["keywords"]]
        assert len(singulars) == len(set(map(frozenset, singulars)))  # distinct nouns
    assert any(k.endswith("s") for req in a for k in req["keywords"])  # some plurals asked


def test_corpus_nouns_are_counted_plurals_and_filtered(vocabulary) -> None:
    texts = [
        "Ann bought 12 bracelets and 3 more. How many dollars?",
        "He saw 4 bracelets, 2 walruses and 5 apples in 10 minutes.",
    ]
    assert corpus_nouns(texts) == ["bracelets", "apples", "walruses"]  # by count, then name
    requests, report = _build(
        vocabulary, corpus_pools={"gsm8k": corpus_nouns(texts)}, corpus_share=1.0
    )
    assert report.corpus_nouns_unseen == 2  # "apples" is a template noun: left out
    used = {
        k
        for r in requests
        for k, s in zip(r["keywords"], r["keyword_sources"], strict=True)
        if s != "list"
    }
    assert used <= {"bracelets", "walruses"} and used


def test_too_few_unseen_nouns_is_one_clear_error(vocabulary) -> None:
    with pytest.raises(ValueError, match="only 1 unseen nouns left"):
        _build(vocabulary, list_nouns=("apple", "walrus"))
    with pytest.raises(ValueError, match="no topics"):
        _build(vocabulary, topics=())
