"""Constrained decoding over the skeleton bank: which skeletons a request may decode."""

from __future__ import annotations

import numpy as np

from serving.constrain import SkeletonBank, Trie
from serving.lexicon import NounInfo
from serving.prompt import TARGET_SEP


def _noun(word: str, *classes: str, mass: bool = False) -> NounInfo:
    return NounInfo(word, word, classes[0], frozenset(classes), mass)


def _target(text: str) -> str:
    return f"{text} {TARGET_SEP} n1 + n2"


HOLDS = _target("A <cont> held <num> <food:pl>. <name> ate <num>. How many <food:pl> are left?")
SCENE_FREE = _target("<name> has <num> <thing:pl> and gets <num> more. How many now?")
AT_STORE = _target("At the <store>, <name> buys <num> <food:pl> and <num> more. How many?")
SPIDERS = _target("A spider has 8 legs. How many legs do <num> spiders have, plus <num>?")
ANIMALS = _target("<name> sees <num> <animal:pl> and <num> more. How many <animal:pl>?")


def _bank(*targets: str) -> SkeletonBank:
    return SkeletonBank({"addition": list(targets)}, encode=lambda t: [len(w) for w in t.split()])


def test_every_keyword_hosted_beats_fewer() -> None:
    bank = _bank(HOLDS, SCENE_FREE)
    nouns = [_noun("cookies", "food"), _noun("jar", "container")]
    assert bank.compatible("addition", nouns) == [HOLDS]


def test_a_role_in_the_maths_beats_the_same_noun_as_the_scene() -> None:
    bakery = [_noun("bakery", "place", "store"), _noun("muffins", "food")]
    assert _bank(AT_STORE, SCENE_FREE, HOLDS).compatible("addition", bakery) == [AT_STORE]
    # without a store role, a scene-free skeleton takes the bakery as its scene
    assert HOLDS in _bank(SCENE_FREE, HOLDS).compatible("addition", bakery)


def test_a_skeleton_written_for_the_keyword_comes_first() -> None:
    nouns = [_noun("spiders", "animal")]
    assert _bank(SPIDERS, ANIMALS).compatible("addition", nouns) == [SPIDERS]


def test_an_unknown_topic_is_free_decoding() -> None:
    assert _bank(HOLDS).trie("speed", [_noun("car", "vehicle")]) is None


def test_trie_allows_only_continuations_then_nothing() -> None:
    trie = Trie([[5, 6, 1], [5, 7, 1]])
    assert trie.allowed([]).tolist() == [5]
    assert sorted(trie.allowed([5]).tolist()) == [6, 7]
    assert trie.allowed([5, 6, 1]) is None  # a finished sequence: no constraint left
    assert trie.allowed([9]) is None  # left the trie
    assert isinstance(trie.allowed([5]), np.ndarray)


def test_only_skeletons_that_fit_the_requests_length_are_decoded() -> None:
    bank = _bank(HOLDS, SCENE_FREE)  # a word is a token here
    nouns = [_noun("cookies", "food")]  # both host it
    long_, short = len(HOLDS.split()), len(SCENE_FREE.split())
    assert long_ > short
    assert bank.compatible("addition", nouns, max_length=short + 1) == [SCENE_FREE]
    # none fits: all compete (cut off rather than nothing)
    assert set(bank.compatible("addition", nouns, max_length=3)) == {HOLDS, SCENE_FREE}


def test_older_grades_keep_to_skeletons_of_two_steps() -> None:
    one = f"<name> has <num> <thing:pl> and gets <num> more. How many? {TARGET_SEP} n1 + n2"
    two = f"<name> has <num> <thing:pl>, gets <num> and <num>. How many? {TARGET_SEP} n1 + n2 + n3"
    bank = _bank(one, two)
    nouns = [_noun("marbles", "object")]
    assert bank.compatible("addition", nouns, prompt_prefix="Grade 5:") == [two]
    assert bank.compatible("addition", nouns, prompt_prefix="Grade 4, harder numbers:") == [two]
    assert set(bank.compatible("addition", nouns, prompt_prefix="Grade 3:")) == {one, two}
    assert set(bank.compatible("addition", nouns)) == {one, two}
    # a grade with no two-step skeleton for the keywords keeps what there is
    assert _bank(one).compatible("addition", nouns, prompt_prefix="Grade 6:") == [one]


FROGS = _target("There were <num> <animal:pl> on the <spot:pl>. <num> more came. How many now?")


def test_a_keyword_only_role_is_decoded_only_when_a_keyword_plays_it() -> None:
    """ "13 frogs on the stickers" is what a pool noun would write where a skeleton is built
    around a second keyword: without a keyword for its spot the skeleton is never offered."""
    bank = _bank(FROGS, ANIMALS)
    assert bank.compatible("addition", [_noun("frogs", "animal")]) == [ANIMALS]
    pads = [_noun("frogs", "animal"), _noun("lily pads", "plant")]
    assert bank.compatible("addition", pads) == [FROGS]


PERIMETER = _target("<name> puts a fence all the way around a <num> m by <num> m yard. How far?")
AREA = _target("<name> covers a floor <num> m long and <num> m wide with tiles. How many?")


def test_a_prefix_that_asks_for_a_perimeter_gets_one() -> None:
    """A tiled floor's area was rated off topic for "Year 4, perimeter of rectangles"."""
    bank = _bank(PERIMETER, AREA, SCENE_FREE)
    nouns = [_noun("Maya", "person")]
    assert bank.compatible("addition", nouns, prompt_prefix="Year 4, perimeter:") == [PERIMETER]
    assert bank.compatible("addition", nouns, prompt_prefix="Grade 3, area of rooms:") == [AREA]
    assert len(bank.compatible("addition", nouns, prompt_prefix="Area and perimeter:")) == 3
    # a bank without the measure asked for keeps what it has
    assert _bank(AREA).compatible("addition", nouns, prompt_prefix="perimeter:") == [AREA]
