"""The WordNet lexicon: reader, classes of everyday nouns, and the hand-labelled set."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from data.lexicon.classify import NounEntry, build_table
from data.lexicon.school import SchoolNounsError, apply_school_nouns, load_school_nouns
from data.lexicon.table import table_text
from data.lexicon.wordnet import WordNetNouns
from serving.lexicon import Lexicon, LexiconError

LABELS = Path(__file__).with_name("labelled_nouns.tsv")


@pytest.fixture(scope="module")
def wordnet_table() -> list[NounEntry]:
    return build_table(WordNetNouns())


@pytest.fixture(scope="module")
def lexicon(tmp_path_factory: pytest.TempPathFactory, wordnet_table: list[NounEntry]) -> Lexicon:
    """WordNet alone (what the classifier gets right by itself)."""
    path = tmp_path_factory.mktemp("lex") / "nouns.tsv"
    path.write_text(table_text(wordnet_table), encoding="utf-8")
    return Lexicon.load(path)


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory, wordnet_table: list[NounEntry]) -> Lexicon:
    """The table the stage writes: WordNet, then the curated school nouns over it."""
    entries, _changed = apply_school_nouns(wordnet_table, load_school_nouns())
    path = tmp_path_factory.mktemp("lex") / "nouns.tsv"
    path.write_text(table_text(entries), encoding="utf-8")
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


def _hand_labelled_accuracy(lexicon: Lexicon) -> tuple[float, float]:
    rows = list(csv.DictReader(LABELS.open(encoding="utf-8"), delimiter="\t"))
    assert len(rows) >= 300
    right_class = right_count = 0
    for r in rows:
        info = lexicon.lookup(r["noun"])
        primary = "person" if info.primary == "name" else info.primary
        right_class += primary in r["classes"].split("|")
        right_count += r["countable"] == "either" or (r["countable"] == "mass") == info.mass
    return right_class / len(rows), right_count / len(rows)


def test_hand_labelled_nouns(lexicon: Lexicon, shipped: Lexicon) -> None:
    """622 nouns labelled by a reviewer who never saw the classifier nor the curated list.
    Measured 2026-12-05: WordNet alone class 0.88, countable 0.97; the shipped table (curated
    school nouns over WordNet, 521 of the 622 listed there) class 0.96, countable 0.99. The
    floors stop regressions."""
    wn_class, wn_count = _hand_labelled_accuracy(lexicon)
    assert wn_class >= 0.86 and wn_count >= 0.95
    class_acc, count_acc = _hand_labelled_accuracy(shipped)
    assert class_acc >= 0.95 and count_acc >= 0.97


def test_curated_school_nouns_win_over_wordnet(shipped: Lexicon) -> None:
    assert shipped.lookup("cinema").primary == "place"
    assert shipped.lookup("mum").primary == "person"
    assert "route" in shipped.lookup("motorway").classes


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("noun\tclasses\n", r"school.tsv:1: header"),
        ("noun\tclasses\tcountable\nJar\tcontainer\tcount\n", r"school.tsv:2: noun 'Jar'"),
        ("noun\tclasses\tcountable\njar\tpot\tcount\n", r"school.tsv:2: classes 'pot': allowed"),
        ("noun\tclasses\tcountable\njar\tcontainer\tsome\n", r"countable 'some': allowed"),
        ("noun\tclasses\tcountable\njar\tcontainer\tcount\njar\tobject\tcount\n", "twice"),
    ],
)
def test_a_bad_curated_row_is_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "school.tsv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SchoolNounsError, match=message):
        load_school_nouns(path)


def test_curated_rows_replace_or_add_entries() -> None:
    entries = [NounEntry("jar", "container", ("container",), False)]
    school = {"jar": (("object",), "either"), "flour": (("food", "substance"), "mass")}
    out, changed = apply_school_nouns(entries, school)
    assert [(e.lemma, e.primary, e.mass) for e in out] == [
        ("flour", "food", True),
        ("jar", "object", False),
    ]
    assert changed == 2


def test_bad_table_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "nouns.tsv"
    bad.write_text("jar\tcontainer\tcontainer\tc\nbroken line\n", encoding="utf-8")
    with pytest.raises(LexiconError, match=r"nouns.tsv:2"):
        Lexicon.load(bad)


def test_a_vague_compound_takes_its_curated_head() -> None:
    """WordNet files "car boot sale" as a transaction (abstract): a compound with only a vague
    class takes its classroom head noun's classes; a concrete compound keeps WordNet's."""
    entries = [
        NounEntry("car boot sale", "abstract", ("abstract",), False),
        NounEntry("cubic foot", "unit", ("unit",), False),
        NounEntry("sale", "abstract", ("abstract",), False),
    ]
    school = {"sale": (("event",), "count"), "foot": (("body_part",), "count")}
    out = {e.lemma: e for e in apply_school_nouns(entries, school)[0]}
    assert out["car boot sale"].classes == ("event",)
    assert out["cubic foot"].classes == ("unit",)
