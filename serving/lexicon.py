"""The noun lexicon at serving time: what a teacher's keyword is (person, container, food...).

Reads the table ``pipelines.prepare_lexicon`` derives from WordNet (``data.lexicon.classify``):
one line per noun lemma, ``lemma <TAB> primary class <TAB> classes <TAB> c|m``. Stdlib + inflect
(through ``serving.realize``) only; WordNet and NLTK are never imported here.

Lookup rules: the keyword as typed (lower case), then its singular (inflect); a multi-word keyword
not in the table is classified by its head noun ("egg cartons" -> "carton") and kept whole in the
text, and one of the form "<unit>s of <stuff>" ("bags of flour") is a countable object
(:data:`UNITS`); a festival WordNet lacks is an event (:data:`FESTIVALS`); a capitalised single
word the table does not know is a person's name ("Maya"); anything else is unknown (no class, so
no role accepts it: the response lists it as unused, with why).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serving.realize import singular_of_plural
from serving.roles import LEXICON_FILE as LEXICON_FILE  # the table's name, re-exported

logger = logging.getLogger(__name__)


def _is_name(kw: str) -> bool:
    """A capitalised single word ("Maya", "Lucas"): a person's name unless it is the plural
    of a common noun typed with a capital ("Apples")."""
    return " " not in kw and kw[:1].isupper() and kw[1:].islower()


class LexiconError(ValueError):
    """The lexicon table is missing or malformed (file and line named)."""


@dataclass(frozen=True)
class NounInfo:
    """What the lexicon knows of one keyword."""

    keyword: str
    lemma: str  # the table entry it was found under ('' when unknown)
    primary: str  # primary class, 'name' for a person's name, 'unknown' when not found
    classes: frozenset[str]
    mass: bool
    proper: bool = False  # a capitalised name: fills name roles, not common-noun roles

    @property
    def known(self) -> bool:
        return self.primary != "unknown"

    @property
    def typed_capitalised(self) -> bool:
        """A common-class noun typed with a capital (a festival, a town: "Diwali", "Paris"):
        named as typed, without an article, never inflected."""
        return not self.proper and self.keyword[:1].isupper()

    def to_json(self) -> list[Any]:
        """``[primary, "cls/cls", mass, proper]``: what a corpus record stores per keyword."""
        return [self.primary, "/".join(sorted(self.classes)), self.mass, self.proper]

    @classmethod
    def from_json(cls, keyword: str, obj: Sequence[Any]) -> NounInfo:
        """The inverse of :meth:`to_json` (a record's ``nouns`` entry for ``keyword``)."""
        primary, classes, mass, proper = obj
        return cls(
            keyword,
            "",
            str(primary),
            frozenset(c for c in str(classes).split("/") if c),
            bool(mass),
            bool(proper),
        )


LARGE = "large"
"""A class the lexicon adds to a thing no child holds, packs or shares out (a ``<thing>`` role
rejects it): "each student needs 16 tents", "crates of 6 tents" were rated nonsense. WordNet
files a tent, a table and a piano as artifacts beside a pencil and has no size to tell them
apart, so the list is kept here."""
LARGE_OBJECTS = frozenset(
    {
        "tent",
        "table",
        "bed",
        "sofa",
        "couch",
        "piano",
        "fridge",
        "freezer",
        "wardrobe",
        "cupboard",
        "bookcase",
        "desk",
        "trampoline",
        "swing",
        "slide",
        "shed",
        "hut",
        "gazebo",
        "marquee",
        "bench",
        "sunbed",
        "deckchair",
    }
)
STALL = "stall"
"""A class the lexicon adds to a small stand that sells (a lemonade stand, a market stall): a
shop to buy at, never a place to travel to ("take the train to the lemonade stand")."""
STALLS = frozenset(["stand", "stall", "kiosk", "booth", "cart"])

_SMALL_KINDS = ("toy ", "model ", "paper ", "lego ", "mini ", "doll's ", "dolls ")

# fmt: off
FESTIVALS = frozenset([
    "holi", "pongal", "navratri", "onam", "lohri", "baisakhi", "vaisakhi", "ganesh chaturthi",
    "raksha bandhan", "durga puja", "dussehra", "janmashtami", "makar sankranti", "bihu",
    "ugadi", "gudi padwa", "chhath", "deepavali", "eid al-fitr", "eid al-adha", "hari raya",
    "vesak", "matariki", "songkran", "chuseok", "tet", "nowruz", "obon", "lunar new year",
    "chinese new year", "republic day", "independence day", "children's day", "teachers' day",
    "canada day", "australia day", "anzac day", "waitangi day", "earth day", "world book day",
    "pancake day", "burns night", "st patrick's day", "day of the dead",
])
# fmt: on
"""Festivals and holidays teachers name that WordNet lacks or files as a year or a day:
typed with a capital and unknown to the table, "Holi", "Pongal" and "Navratri" were read as
children's names ("Holi bought 11 balloons", "Navratri's family hires a bench"), and "Ganesh
Chaturthi" as nothing. Each is an event and a time, as WordNet files Diwali, so it opens the
problem as its scene ("At Holi, ...")."""

# fmt: off
UNITS = frozenset([
    "bag", "box", "packet", "pack", "bottle", "jar", "carton", "can", "tin", "cup", "glass",
    "mug", "bowl", "plate", "bucket", "pot", "tub", "sack", "crate", "basket", "punnet", "tray",
    "jug", "flask", "pouch", "tube", "bunch", "bundle", "roll", "sheet", "bar", "slice", "loaf",
    "piece", "stick", "ball", "pair", "set", "stack", "pile", "reel",
])
# fmt: on
"""The counted words of a keyword "<unit>s of <stuff>" ("bags of flour", "pots of glue", "boxes
of crayons"): such a keyword names things a child can buy, carry, pack and share, one bag at a
time, whatever the stuff is. Read by the stuff alone, "pots of glue" was a mass ("10 kg of pots
of glue") and "bags of flour" filled a bag ("17 bags of bags of flour")."""


_OCCASIONS = frozenset({"event", "time", "place"})


class Lexicon:
    """lemma -> (primary class, classes, mass noun)."""

    def __init__(self, table: dict[str, tuple[str, frozenset[str], bool]]) -> None:
        self.table = table

    @classmethod
    def load(cls, path: Path) -> Lexicon:
        """Read a ``nouns.tsv`` table (see the module doc)."""
        table: dict[str, tuple[str, frozenset[str], bool]] = {}
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise LexiconError(f"{path}: cannot read the noun lexicon ({exc.strerror})") from exc
        for i, line in enumerate(lines, start=1):
            if not line or line.startswith("#"):
                continue
            parts = line.split("\t")
            if len(parts) != 4 or parts[3] not in ("c", "m"):
                raise LexiconError(
                    f"{path}:{i}: expected 'lemma<TAB>primary<TAB>classes<TAB>c|m', "
                    f"got {line[:60]!r}"
                )
            table[parts[0]] = (parts[1], frozenset(parts[2].split(",")), parts[3] == "m")
        if not table:
            raise LexiconError(f"{path}: the noun lexicon is empty")
        return cls(table)

    def _entry(self, word: str) -> tuple[str, tuple[str, frozenset[str], bool]] | None:
        """The entry of ``word``'s singular when the table has it (WordNet files some plurals
        as nouns of their own: "cards" the game, "legs" the stamina), else of ``word``."""
        low = word.lower().strip()
        head, _, last = low.rpartition(" ")
        sing = singular_of_plural(last)
        # inflect reads "smoothies" as "smoothy" (WordNet: a smooth talker); try "smoothie"
        ie = last[:-1] if last.endswith("ies") else None
        for one in (sing, ie):
            cand = f"{head} {one}" if head and one else one
            if cand is not None and cand in self.table:
                return cand, self.table[cand]
        if low in self.table:
            return low, self.table[low]
        if last.endswith("s") and len(last) > 3:  # plurals inflect keeps ("trousers", "pyjamas")
            cand = f"{head} {last[:-1]}" if head else last[:-1]
            if cand in self.table:
                return cand, self.table[cand]
        return None

    @staticmethod
    def _named_occasion(kw: str, classes: frozenset[str]) -> bool:
        """Whether a capitalised word the table files under ``classes`` is a festival, a day or
        a place ("Diwali", "Easter", "Edinburgh") rather than a person: "Diwali has 157 diya
        lamps" was rated nonsense. A word the name pool gives pronouns to ("Florence") stays a
        name."""
        from serving.roles import NAME_PRONOUNS

        if kw.lower() in NAME_PRONOUNS:
            return False
        return bool(classes & _OCCASIONS) and "person" not in classes

    @functools.lru_cache(maxsize=4096)  # noqa: B019 (one lexicon per process, kept for its life)
    def lookup(self, keyword: str) -> NounInfo:
        """What ``keyword`` is (see the module doc for the rules)."""
        kw = " ".join(keyword.split())
        if kw.lower() in FESTIVALS:
            return NounInfo(kw, kw.lower(), "event", frozenset({"event", "time"}), False)
        counted, of, stuff = kw.lower().partition(" of ")
        unit = singular_of_plural(counted) or counted
        if of and stuff and unit in UNITS:
            return NounInfo(kw, f"{unit} of {stuff}", "object", frozenset({"object"}), False)
        found = self._entry(kw)
        if _is_name(kw) and (
            found is None
            or (
                singular_of_plural(kw.lower()) is None and not self._named_occasion(kw, found[1][1])
            )
        ):
            return NounInfo(kw, "", "name", frozenset({"person"}), False, proper=True)
        if found is None and " " in kw:
            found = self._entry(kw.rsplit(" ", 1)[1])
        if found is not None:
            lemma, (primary, classes, mass) = found
            # a keyword typed in the plural is counted, whatever WordNet's sense: "baguettes"
            # are loaves, not "10 kg of baguette"; "worksheets" are sheets, not paper
            if mass and lemma != kw.lower() and singular_of_plural(kw.lower().rsplit(" ", 1)[-1]):
                mass = False
            if lemma.rsplit(" ", 1)[-1] in LARGE_OBJECTS and not lemma.startswith(_SMALL_KINDS):
                classes = classes | {LARGE}
            if lemma.rsplit(" ", 1)[-1] in STALLS and classes & {"store", "place"}:
                classes = classes | {"store", STALL}
            return NounInfo(kw, lemma, primary, classes, mass)
        return NounInfo(kw, "", "unknown", frozenset(), False)


def describe(lexicon: Lexicon, keywords: Sequence[str]) -> list[NounInfo]:
    """What the lexicon knows of each keyword, in request order."""
    return [lexicon.lookup(k) for k in keywords]


def nouns_from_record(rec: Any) -> list[NounInfo] | None:
    """The ``nouns`` of a corpus record or request as NounInfo (None for a record without)."""
    nouns = rec.get("nouns") if hasattr(rec, "get") else None
    if nouns is None:
        return None
    return [NounInfo.from_json(k, n) for k, n in zip(rec["keywords"], nouns, strict=True)]
