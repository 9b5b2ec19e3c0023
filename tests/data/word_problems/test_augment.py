"""Copy augmentation: nonce nouns replace entity keywords only, consistently, reproducibly."""

from __future__ import annotations

import re

import pytest

from data.word_problems.augment import COPY_LEXICON, _swap_word, copy_augment, entity_words
from data.word_problems.corpus import template_records
from serving.consistency import check_consistency
from serving.keywords import keyword_present, singular
from serving.prompt import TARGET_SEP
from serving.realize import realize, render_output


@pytest.fixture(scope="module")
def records():
    return template_records(n=800, seed=4)


def test_lexicon_shares_no_word_with_the_templates(records) -> None:
    vocab = {
        singular(w)
        for r in template_records(n=4000, seed=1)
        for w in re.findall(r"[a-z]+", (r["problem"] + " " + r["prompt"]).lower())
    }
    clashes = [p for p in COPY_LEXICON if {singular(p[0]), singular(p[1])} & vocab]
    assert not clashes
    # so an augmented record never offers a nonce for swapping again
    assert not {singular(w) for p in COPY_LEXICON for w in p} & entity_words()
    assert all(p[0][0] not in "aeiou" for p in COPY_LEXICON)  # "a <noun>" stays grammatical


def test_augmented_records_copy_a_nonce_keyword(records) -> None:
    aug = copy_augment(records, share=0.5, seed=3)
    assert 0.3 * len(records) <= len(aug) <= 0.5 * len(records)
    nonce = {singular(w) for p in COPY_LEXICON for w in p}
    by_id = {r["id"]: r for r in records}
    for rec in aug:
        orig = by_id[rec["id"].removesuffix("-copy")]
        new = [k for k in rec["keywords"] if singular(k) in nonce]
        assert len(new) == 1 and keyword_present(new[0], rec["problem"])
        swapped = [k for k in orig["keywords"] if k not in rec["keywords"]]
        assert len(swapped) == 1 and singular(swapped[0]) in entity_words()
        assert not keyword_present(swapped[0], rec["problem"])
        # numbers and equation are untouched, so the record stays consistent
        rendered = render_output(rec["target"], rec["keywords"])
        assert (
            rendered.equation_text == render_output(orig["target"], orig["keywords"]).equation_text
        )
        assert check_consistency(rendered.problem_text, rendered.equation_text).ok
        assert rec["source"] == orig["source"] + "+copy"


def test_shape_words_are_never_replaced(records) -> None:
    shape_words = {"area", "perimeter", "discount", "friend", "money", "difference", "speed"}
    assert not shape_words & entity_words()
    by_id = {r["id"]: r for r in records}
    aug = copy_augment(records, share=1.0, seed=5)
    assert aug
    for rec in aug:
        orig = by_id[rec["id"].removesuffix("-copy")]
        for k in orig["keywords"]:
            if singular(k) in shape_words:
                assert k in rec["keywords"]


def test_augment_is_seeded_and_leaves_input_alone(records) -> None:
    before = [dict(r) for r in records]
    a = copy_augment(records, share=0.3, seed=9)
    assert a == copy_augment(records, share=0.3, seed=9)
    assert a != copy_augment(records, share=0.3, seed=10)
    assert records == before
    assert copy_augment(records, share=0.0, seed=9) == []
    with pytest.raises(ValueError, match="share"):
        copy_augment(records, share=1.5, seed=9)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A box holds 3 apples. Tom buys 2 Apples?", "A box holds 3 pebbles. Tom buys 2 Pebbles?"),
        ("She eats an apple and 1 apple?", "She eats a pebble and 1 pebble?"),
        ("Pineapples and apple-pie?", "Pineapples and apple-pie?"),
    ],
)
def test_swap_word_keeps_number_and_case(text: str, expected: str) -> None:
    assert _swap_word(text, "apple", ("pebble", "pebbles")) == expected


def test_keyword_swap_asks_for_pseudo_words_with_the_same_target(records) -> None:
    from data.word_problems.augment import keyword_swap

    out, changed = keyword_swap(records, share=0.5, seed=4)
    assert len(out) == len(records) and 0.3 * len(records) <= changed <= 0.6 * len(records)
    entities = entity_words()
    for old, new in zip(records, out, strict=True):
        if new is old:
            continue
        assert new["target"] == old["target"] and new["source"] == old["source"] + "+swap"
        assert new["prompt"] != old["prompt"] and new["equation"] == old["equation"]
        for a, b in zip(old["keywords"], new["keywords"], strict=True):
            if a != b:
                assert singular(a) in entities and keyword_present(b, new["problem"])
            else:
                assert singular(a) not in entities or " " in a  # shape words stay
    assert out == keyword_swap(records, share=0.5, seed=4)[0]


def test_context_keywords_give_every_requested_noun_a_slot(records) -> None:
    from data.word_problems.augment import CONTEXT_FRAMES, context_keywords

    out, changed = context_keywords(records, share=0.5, seed=5, max_keywords=4)
    assert len(out) == len(records) and 0.3 * len(records) <= changed <= 0.6 * len(records)
    n_three = 0
    openers = [f.split("{x}")[0] for f in CONTEXT_FRAMES]
    for old, new in zip(records, out, strict=True):
        if new is old:
            continue
        extra = [k for k in new["keywords"] if k not in old["keywords"]]
        assert 1 <= len(extra) <= 2 and len(new["keywords"]) <= 4
        assert new["source"] == old["source"] + "+context"
        assert new["problem"].endswith(old["problem"])  # the opener comes first, text unchanged
        assert any(new["problem"].startswith(o) for o in openers)
        # every requested keyword (old and extra) is a slot of the target, none left literal
        used = {int(n) for n in re.findall(r"<k(\d+)s?>", new["target"])}
        assert used == set(range(1, len(new["keywords"]) + 1))
        for kw in extra:
            assert kw.lower() not in old["problem"].lower()
        # the target renders back to the skeleton (opener + the old skeleton, <num> slots kept)
        assert realize(new["target"].partition(TARGET_SEP)[0], new["keywords"]) == new["skeleton"]
        assert (
            new["skeleton"].endswith(old["skeleton"])
            and new["slot_equation"] == (old["slot_equation"])
        )
        assert check_consistency(new["problem"], new["equation"]).ok
        n_three += len(new["keywords"]) >= 3
    assert n_three > 0.2 * changed  # the point: requests with three or more nouns
    assert out == context_keywords(records, share=0.5, seed=5, max_keywords=4)[0]
    with pytest.raises(ValueError, match="share"):
        context_keywords(records, share=1.5, seed=5)
