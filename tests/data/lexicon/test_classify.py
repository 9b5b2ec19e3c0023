"""The WordNet lexicon: reader, classes of everyday nouns, and the hand-labelled set."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from data.lexicon.classify import build_table
from data.lexicon.table import table_text
from data.lexicon.wordnet import WordNetNouns
from serving.lexicon import Lexicon, LexiconError

LABELS = Path(__file__).with_name("labelled_nouns.tsv")


@pytest.fixture(scope="module")
def lexicon(tmp_path_factory: pytest.TempPathFactory) -> Lexicon:
    path = tmp_path_factory.mktemp("lex") / "nouns.tsv"
    path.write_text(table_text(build_table(WordNetNouns())), encoding="utf-8")
    return Lexicon.load(path)


def test_reader_reads_senses_in_frequency_order_and_irregular_plurals() -> None:
    wn = WordNetNouns()
    jar = wn.synsets[wn.lookup("jar")[0]]
    assert "jar" in jar.lemmas and jar.lexname == "noun.artifact"
    assert wn.exceptions["mice"] == "mouse"
    assert wn.offset_of("container", 1) in wn.hypernym_closure(wn.lookup("jar")[0])


@pytest.mark.parametrize(
    ("noun", "cls", "mass"),
    [
        ("jar", "container", False),
        ("cookies", "food", False),
        ("librarian", "person", False),
        ("flour", "food", True),
        ("sand", "substance", True),
        ("penguins", "animal", False),
        ("ferry", "vehicle", False),
        ("bakery", "place", False),
        ("birthday party", "event", False),
        ("egg cartons", "container", False),  # a multi-word keyword: its head noun decides
        ("mice", "animal", False),  # an irregular plural
        ("Maya", "name", False),  # a capitalised name is a person
    ],
)
def test_everyday_nouns(lexicon: Lexicon, noun: str, cls: str, mass: bool) -> None:
    info = lexicon.lookup(noun)
    assert (info.primary, info.mass) == (cls, mass)


def test_a_keyword_typed_in_the_plural_is_counted(lexicon: Lexicon) -> None:
    assert lexicon.lookup("flour").mass and lexicon.lookup("juice").mass
    assert lexicon.lookup("baguette").mass  # WordNet's bread: mass when typed alone
    assert not lexicon.lookup("baguettes").mass  # a teacher's "baguettes" are counted


def test_roles_see_the_fine_classes(lexicon: Lexicon) -> None:
    assert "store" in lexicon.lookup("bakery").classes
    assert "liquid" in lexicon.lookup("lemonade").classes
    assert "strip" in lexicon.lookup("ribbon").classes
    assert "surface" in lexicon.lookup("playground").classes
    assert not lexicon.lookup("zzxqv").known


def test_hand_labelled_nouns(lexicon: Lexicon) -> None:
    """622 nouns labelled by a reviewer who never saw the classifier. Measured 2026-12-04:
    class 0.88, countable 0.97. The target is 0.95 for both; the floors stop regressions."""
    rows = list(csv.DictReader(LABELS.open(encoding="utf-8"), delimiter="\t"))
    assert len(rows) >= 300
    right_class = right_count = 0
    for r in rows:
        info = lexicon.lookup(r["noun"])
        primary = "person" if info.primary == "name" else info.primary
        right_class += primary in r["classes"].split("|")
        right_count += r["countable"] == "either" or (r["countable"] == "mass") == info.mass
    assert right_class / len(rows) >= 0.86
    assert right_count / len(rows) >= 0.95


def test_bad_table_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "nouns.tsv"
    bad.write_text("jar\tcontainer\tcontainer\tc\nbroken line\n", encoding="utf-8")
    with pytest.raises(LexiconError, match=r"nouns.tsv:2"):
        Lexicon.load(bad)
