"""Hand-curated classes of everyday school nouns, which take precedence over WordNet's.

WordNet orders a noun's senses by how often they were tagged in a corpus of adult prose, so for
a word a teacher types its first senses are often not the classroom's: "mum" is a chrysanthemum,
"mug" a face, "cinema" an art form, "match" a lighter, "ruler" a sovereign, "goal" an aim. The
classifier (``data.lexicon.classify``) weighs the top senses and fixes many such words, not all.
``school_nouns.tsv`` lists about 500 nouns of primary word problems with the class a classroom
means, curated by hand by a reviewer who did not see the hand-labelled test set
(``tests/data/lexicon/labelled_nouns.tsv``); the stage applies it over the WordNet table and
records how many entries it changed, so the share WordNet gets right alone stays measurable.

Format: a header ``noun<TAB>classes<TAB>countable``, then one singular noun a line, its classes
``|``-separated (the first coarse one is its primary class; fine classes such as ``store`` or
``surface`` add what a role may ask for) and ``count``, ``mass`` or ``either``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from data.lexicon.classify import COARSE_CLASSES, FINE_ANCHORS, NounEntry

SCHOOL_NOUNS = Path(__file__).with_name("school_nouns.tsv")
CLASSES = frozenset(COARSE_CLASSES) | frozenset(FINE_ANCHORS)
COUNTABLE = ("count", "mass", "either")


class SchoolNounsError(ValueError):
    """A malformed row of the curated list (file, line, field and allowed values named)."""


def load_school_nouns(path: Path = SCHOOL_NOUNS) -> dict[str, tuple[tuple[str, ...], str]]:
    """noun -> (classes in the file's order, countable), each row checked."""
    path = Path(path)
    out: dict[str, tuple[tuple[str, ...], str]] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t")
        header = next(reader, None)
        if header != ["noun", "classes", "countable"]:
            raise SchoolNounsError(f"{path}:1: header must be 'noun<TAB>classes<TAB>countable'")
        for line, row in enumerate(reader, start=2):
            if len(row) != 3:
                raise SchoolNounsError(f"{path}:{line}: expected 3 tab-separated fields")
            noun, classes, countable = (x.strip() for x in row)
            if not noun or noun != noun.lower():
                raise SchoolNounsError(f"{path}:{line}: noun {noun!r} must be lower case")
            parts = tuple(c for c in classes.split("|") if c)
            bad = [c for c in parts if c not in CLASSES]
            if not parts or bad:
                raise SchoolNounsError(
                    f"{path}:{line}: classes {classes!r}: allowed {', '.join(sorted(CLASSES))}"
                )
            if countable not in COUNTABLE:
                raise SchoolNounsError(
                    f"{path}:{line}: countable {countable!r}: allowed {', '.join(COUNTABLE)}"
                )
            if noun in out:
                raise SchoolNounsError(f"{path}:{line}: {noun!r} is listed twice")
            out[noun] = (parts, countable)
    return out


# A fine class listed first stands for its coarse class as the primary one ("toy|object").
FINE_PARENT = {
    "toy": "object",
    "store": "place",
    "liquid": "food",
    "strip": "object",
    "surface": "place",
    "panel": "object",
    "route": "place",
}


def primary_of(classes: tuple[str, ...]) -> str:
    """The primary class of a curated row: its first coarse class, else the parent of its first
    (fine) class."""
    coarse = next((c for c in classes if c in COARSE_CLASSES), None)
    return coarse or FINE_PARENT.get(classes[0], classes[0])


def apply_school_nouns(
    entries: Iterable[NounEntry], school: dict[str, tuple[tuple[str, ...], str]]
) -> tuple[list[NounEntry], int]:
    """(entries with the curated nouns replacing or adding theirs, how many primary classes
    changed). ``either`` keeps WordNet's count/mass reading (count for a new noun)."""
    by_lemma = {e.lemma: e for e in entries}
    changed = 0
    for noun, (classes, countable) in school.items():
        old = by_lemma.get(noun)
        mass = (old.mass if old else False) if countable == "either" else countable == "mass"
        if old is None or old.primary != primary_of(classes):
            changed += 1
        by_lemma[noun] = NounEntry(noun, primary_of(classes), tuple(sorted(set(classes))), mass)
    for lemma, old in list(by_lemma.items()):
        head = lemma.rsplit(" ", 1)[-1]
        if " " not in lemma or lemma in school or head not in school:
            continue
        if set(old.classes) <= _VAGUE:
            # WordNet files many compounds under an act ("car boot sale" is a sale as a
            # transaction, "kitchen scale" a relation): the classroom's head noun says more
            classes, countable = school[head]
            mass = old.mass if countable == "either" else countable == "mass"
            by_lemma[lemma] = NounEntry(
                lemma, primary_of(classes), tuple(sorted(set(classes))), mass
            )
            changed += old.primary != primary_of(classes)
    return sorted(by_lemma.values(), key=lambda e: e.lemma), changed


# Classes that say little of what a compound is in a word problem: a compound with only these
# takes its curated head noun's classes.
_VAGUE = frozenset({"abstract"})
