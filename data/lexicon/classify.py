"""Noun knowledge from WordNet: semantic classes and countability for every noun lemma.

The generator's realizer may put a teacher's noun only into a role its class can play (a jar is
a container, a librarian a person, flour a substance: ``serving.roles``). This module derives,
from WordNet 3.0 (``data.lexicon.wordnet``), a compact table: lemma -> the classes of its top
senses, its primary class and whether it is a mass noun. ``pipelines.prepare_lexicon`` writes it;
it travels in the generator artifact and serving reads it (``serving.lexicon``) without WordNet.

Why the top senses and not the first: WordNet orders senses by SemCor frequency, which is not a
classroom's ("marble" is first the rock, "raspberry" the plant, "battery" a group of guns). A
noun gets the classes of every sense among its first three that is the first, or that has at
least a fifth of the top sense's tag count (untagged senses count as tagged once). The primary
class (for display and the hand-labelled test) is the one of the best-weighted sense, concrete
classes weighing double, because a teacher's theme noun is usually a thing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from data.lexicon.wordnet import WordNetError, WordNetNouns

logger = logging.getLogger(__name__)

# Coarse classes, in the order a sense's class is decided (first anchor reached wins). Vehicle
# comes before container: WordNet files wheeled vehicles (car, bicycle) under container too.
COARSE_ANCHORS: tuple[tuple[str, tuple[tuple[str, int], ...]], ...] = (
    ("person", (("person", 1),)),
    ("animal", (("animal", 1),)),
    (
        "food",
        (
            ("food", 1),
            ("food", 2),
            ("produce", 1),
            ("egg", 1),
            ("nut", 1),
            ("edible_fruit", 1),
            ("beverage", 1),
            ("baked_goods", 1),
            ("dish", 2),
            ("vegetable", 1),
        ),
    ),
    ("plant", (("plant", 2), ("flower", 1), ("flower", 2), ("plant_part", 1), ("seed", 1))),
    ("vehicle", (("vehicle", 1), ("craft", 2), ("conveyance", 3))),
    ("container", (("container", 1), ("bottle", 1), ("tableware", 1))),
    (
        "clothing",
        (
            ("clothing", 1),
            ("footwear", 1),
            ("footwear", 2),
            ("headdress", 1),
            ("garment", 1),
            ("handwear", 1),
            ("glove", 2),
        ),
    ),
    # things WordNet files under a material or a measure before a classroom's object
    ("object", (("card", 1), ("coin", 1), ("tin", 2), ("straw", 4), ("marble", 2))),
    ("body_part", (("body_part", 1),)),
    (
        "event",
        (
            ("social_event", 1),
            ("gathering", 1),
            ("party", 2),
            ("journey", 1),
            ("contest", 1),
            ("trip", 1),
            ("show", 1),
            ("meal", 1),
            ("holiday", 1),
            ("sale", 1),
            ("game", 2),
            ("picnic", 1),
            ("festival", 1),
            ("birthday", 1),
            ("parade", 1),
            ("raffle", 1),
            ("carnival", 1),
            ("match", 2),
        ),
    ),
    ("time", (("time_period", 1), ("time_unit", 1), ("day", 1))),
    ("unit", (("unit_of_measurement", 1), ("monetary_unit", 1))),
    ("shape", (("plane_figure", 1), ("solid", 3), ("shape", 2))),
    (
        "activity",
        (
            ("activity", 1),
            ("lesson", 1),
            ("chore", 1),
            ("exercise", 1),
            ("reading", 1),
            ("sport", 1),
        ),
    ),
    (
        "place",
        (
            ("location", 1),
            ("building", 1),
            ("room", 1),
            ("area", 5),
            ("establishment", 4),
            ("facility", 1),
            ("body_of_water", 1),
            ("geological_formation", 1),
            ("workplace", 1),
            ("place_of_business", 1),
        ),
    ),
    ("substance", (("matter", 3), ("substance", 1), ("material", 1))),
    (
        "object",
        (
            ("object", 1),
            ("whole", 2),
            ("artifact", 1),
            ("coin", 1),
            ("document", 1),
            ("commercial_document", 1),
            ("award", 2),
            ("label", 1),
            ("gift", 1),
            ("card", 1),
            ("postage", 1),
            ("paper", 1),
        ),
    ),
)
COARSE_CLASSES: tuple[str, ...] = (*(c for c, _ in COARSE_ANCHORS), "abstract")
CONCRETE = frozenset(COARSE_CLASSES) - {"time", "unit", "shape", "event", "activity", "abstract"}

# Finer classes some roles ask for, on top of the coarse class of the same sense.
FINE_ANCHORS: dict[str, tuple[tuple[str, int], ...]] = {
    "store": (
        ("mercantile_establishment", 1),
        ("marketplace", 1),
        ("shop", 1),
        ("bakery", 1),
        ("restaurant", 1),
        ("cafe", 1),
        ("market", 3),
        ("stall", 3),
    ),
    "liquid": (
        ("liquid", 1),
        ("liquid", 3),
        ("beverage", 1),
        ("water", 1),
        ("water", 6),
        ("milk", 1),
        ("juice", 1),
        ("soup", 1),
        ("oil", 1),
        ("paint", 1),
        ("fluid", 1),
    ),
    "strip": (
        ("strip", 2),
        ("line", 18),
        ("cord", 1),
        ("ribbon", 1),
        ("ribbon", 3),
        ("wire", 1),
        ("board", 2),
        ("lumber", 1),
        ("pole", 1),
        ("rod", 1),
        ("pipe", 2),
        ("tube", 1),
        ("fence", 1),
        ("thread", 1),
        ("tape", 1),
        ("band", 4),
        ("log", 1),
        ("rail", 1),
        ("hose", 3),
        ("cable", 1),
        ("string", 1),
        ("chain", 3),
    ),
    "surface": (
        ("tract", 1),
        ("room", 1),
        ("floor", 1),
        ("floor_cover", 1),
        ("area", 5),
        ("horizontal_surface", 1),
        ("playing_field", 1),
        ("field", 1),
        ("lawn", 1),
        ("wall", 1),
        ("roof", 1),
        ("park", 2),
        ("garden", 1),
        ("yard", 2),
        ("court", 1),
        ("patio", 1),
        ("terrace", 1),
        ("rug", 1),
        ("carpet", 1),
        ("mat", 1),
        ("playground", 2),
        ("pitch", 9),
        ("plot", 1),
        ("patch", 4),
        ("stage", 3),
        ("deck", 1),
        ("tablecloth", 1),
        ("pool", 1),
        ("swimming_pool", 1),
    ),
    "panel": (
        ("photograph", 1),
        ("picture", 1),
        ("painting", 1),
        ("tile", 1),
        ("window", 1),
        ("sheet", 2),
        ("card", 1),
        ("card", 2),
        ("poster", 1),
        ("mirror", 1),
        ("flag", 1),
        ("napkin", 1),
        ("picture_frame", 1),
        ("postcard", 1),
        ("placard", 1),
        ("drawing", 2),
        ("canvas", 1),
        ("board", 3),
        ("mat", 2),
        ("page", 1),
        ("label", 1),
        ("envelope", 1),
        ("sticker", 1),
    ),
    "route": (
        ("way", 6),
        ("path", 3),
        ("path", 4),
        ("road", 1),
        ("street", 1),
        ("track", 2),
        ("trail", 2),
        ("route", 2),
        ("course", 4),
        ("racetrack", 1),
        ("lane", 1),
        ("highway", 1),
    ),
    "toy": (("plaything", 1),),
}
# Mass nouns: senses under these are mass unless the lemma is a count noun below.
MASS_ANCHORS: tuple[tuple[str, int], ...] = (
    ("substance", 1),
    ("material", 1),
    ("chemical", 1),
    ("foodstuff", 2),
    ("beverage", 1),
    ("dairy_product", 1),
    ("money", 1),
    ("homework", 1),
    ("music", 1),
    ("meat", 1),
)
RANK_DECAY = (1.0, 0.6, 0.4)
# How much a sense's class weighs when the primary class is chosen: a teacher's theme noun is
# usually a thing, rarely an attribute or a process.
CLASS_WEIGHT: dict[str, float] = {
    **{
        c: 2.0
        for c in (
            "person",
            "animal",
            "plant",
            "container",
            "vehicle",
            "clothing",
            "place",
            "object",
        )
    },
    # a fruit is food before it is a plant, a game an event before an activity
    "food": 2.5,
    "event": 2.5,
    "substance": 1.5,
    "abstract": 0.1,
}
# Count nouns under mass-like anchors (foods that are counted), and mass nouns WordNet files as
# things; both by lemma, checked before the anchors.
COUNT_LEMMAS = frozenset(
    [
        "cake",
        "pie",
        "egg",
        "sandwich",
        "biscuit",
        "cookie",
        "bun",
        "roll",
        "loaf",
        "pizza",
        "sweet",
        "candy",
        "lollipop",
        "muffin",
        "cupcake",
        "pancake",
        "waffle",
        "doughnut",
        "donut",
        "cracker",
        "chip",
        "sausage",
        "burger",
        "hamburger",
        "taco",
        "coin",
        "note",
        "stone",
        "rock",
        "pebble",
        "brick",
        "crystal",
        "gem",
        "jewel",
        "marble",
        "bead",
        "shell",
        "seed",
        "nut",
        "bean",
        "pea",
        "grape",
        "berry",
        "cherry",
        "olive",
        "pretzel",
        "bagel",
        "croissant",
        "brownie",
        "meatball",
        "dumpling",
        "drink",
        "lesson",
        "game",
        "practice",
        "session",
        "race",
        "match",
        "task",
        "chore",
        "job",
        "exercise",
        "test",
        "quiz",
        "sport",
        "trip",
        "journey",
        "project",
        "assignment",
        "class",
    ]
)
MASS_LEMMAS = frozenset(
    [
        "homework",
        "housework",
        "information",
        "furniture",
        "equipment",
        "luggage",
        "baggage",
        "advice",
        "knowledge",
        "music",
        "art",
        "rice",
        "flour",
        "sugar",
        "salt",
        "sand",
        "money",
        "traffic",
        "weather",
        "research",
        "evidence",
        "clothing",
        "jewellery",
        "jewelry",
        "cash",
        "garbage",
        "rubbish",
        "scenery",
        "bread",
        "butter",
        "cheese",
        "milk",
        "juice",
        "water",
        "soil",
        "dirt",
        "mud",
        "paint",
        "glue",
        "wax",
        "wool",
        "cotton",
        "paper",
        "grass",
        "hay",
        "popcorn",
        "cereal",
        "pasta",
        "spaghetti",
        "soup",
        "jam",
        "honey",
        "oil",
        "fuel",
        "petrol",
        "gas",
        "electricity",
        "time",
        "fun",
        "work",
        "help",
        "sleep",
        "exercise",
        "lemonade",
        "tea",
        "coffee",
        "cocoa",
        "yoghurt",
        "yogurt",
        "ice",
        "cream",
        "chocolate",
        "meat",
        "fruit",
    ]
)


@dataclass(frozen=True)
class NounEntry:
    """One lemma of the table."""

    lemma: str
    primary: str
    classes: tuple[str, ...]  # coarse and fine classes of its top senses, sorted
    mass: bool


def _anchor_offsets(wn: WordNetNouns, anchors: Iterable[tuple[str, int]]) -> set[int]:
    out = set()
    for lemma, sense in anchors:
        try:
            out.add(wn.offset_of(lemma, sense))
        except WordNetError:
            logger.warning("WordNet has no anchor %s.n.%02d (skipped)", lemma, sense)
    return out


class Classifier:
    """Classes of WordNet noun senses from anchor synsets (see the module doc)."""

    def __init__(self, wn: WordNetNouns) -> None:
        self.wn = wn
        self.coarse = [(c, _anchor_offsets(wn, a)) for c, a in COARSE_ANCHORS]
        self.fine = {c: _anchor_offsets(wn, a) for c, a in FINE_ANCHORS.items()}
        self.mass = _anchor_offsets(wn, MASS_ANCHORS)
        self._closure: dict[int, frozenset[int]] = {}

    def closure(self, offset: int) -> frozenset[int]:
        if offset not in self._closure:
            self._closure[offset] = self.wn.hypernym_closure(offset)
        return self._closure[offset]

    def sense_classes(self, offset: int) -> tuple[str, frozenset[str]]:
        """(coarse class, coarse + fine classes) of one synset."""
        up = self.closure(offset)
        coarse = next((c for c, anchors in self.coarse if up & anchors), "abstract")
        fine = {c for c, anchors in self.fine.items() if up & anchors}
        if coarse == "person" or coarse == "animal":
            fine = set()
        return coarse, frozenset({coarse} | fine)

    def senses(self, lemma: str, offsets: tuple[int, ...]) -> list[tuple[int, str, float]]:
        """(offset, coarse class, weight) of ``lemma``'s first three senses. The weight is the
        SemCor tag count plus one, decayed by rank (1, 0.6, 0.4) and scaled by the class:
        concrete classes double, abstract ones a quarter, because a teacher's theme noun is
        usually a thing and SemCor's newspaper senses are not a classroom's ("table" is first
        an array, "battery" a unit of guns)."""
        key = lemma.replace(" ", "_")
        out = []
        for rank, o in enumerate(offsets[:3]):
            coarse = self.sense_classes(o)[0]
            count = self.wn.tag_counts.get((key, o), 0) + 1
            out.append((o, coarse, count * RANK_DECAY[rank] * CLASS_WEIGHT.get(coarse, 1.0)))
        return out

    def entry(self, lemma: str) -> NounEntry | None:
        """The table entry of a WordNet lemma (None when WordNet has no noun ``lemma``): the
        primary class is the best-weighted sense's; the classes are those of every sense
        weighing at least a quarter of the best (what roles may use)."""
        offsets = self.wn.lookup(lemma)
        if not offsets:
            return None
        senses = self.senses(lemma, offsets)
        best_off, best_class, best_w = max(senses, key=lambda t: t[2])
        classes: set[str] = set()
        thing_w = max((w for _o, c, w in senses if c in CONCRETE - {"person"}), default=0.0)
        for o, coarse, w in senses:
            # a person sense must weigh half the best, and three times any thing the word also
            # names: a cookie is not a cook, comics are books before comedians, and a person
            # role is the costliest mistake ("4 comics visit the bookshop")
            need = max(best_w / 2, 3 * thing_w) if coarse == "person" else best_w / 4
            if w >= need:
                classes |= self.sense_classes(o)[1]
        for o, coarse, _w in senses:  # a weaker sense of a kept class adds its fine classes
            if coarse in classes:
                classes |= self.sense_classes(o)[1]
        if best_class not in classes:  # the best sense was a person it does not mostly name
            best_class = max(
                ((c, w * CLASS_WEIGHT.get(c, 1.0)) for _o, c, w in senses if c in classes),
                key=lambda t: t[1],
                default=("abstract", 0.0),
            )[0]
        if "food" in classes and best_class in ("plant", "object", "substance"):
            best_class = "food"  # a teacher's banana, cake or cherry is something to eat
        word = lemma.replace("_", " ")
        head = word.rsplit(" ", 1)[-1]
        if word in MASS_LEMMAS or head in MASS_LEMMAS:
            mass = True
        elif word in COUNT_LEMMAS or head in COUNT_LEMMAS or "animal" in classes:
            mass = False
        else:
            mass = bool(self.closure(best_off) & self.mass)
        return NounEntry(word, best_class, tuple(sorted(classes)), mass)


def build_table(wn: WordNetNouns | None = None) -> list[NounEntry]:
    """Entries for every lower-case WordNet noun lemma of at most three words (no digits), plus
    WordNet's irregular plurals (``noun.exc``: "mice" -> the entry of "mouse", as "mice")."""
    wn = wn or WordNetNouns()
    clf = Classifier(wn)
    out: list[NounEntry] = []
    for lemma in sorted(wn.index):
        if any(ch.isdigit() for ch in lemma) or lemma.count("_") > 2 or not lemma.islower():
            continue
        e = clf.entry(lemma)
        if e is not None:
            out.append(e)
    by_lemma = {e.lemma: e for e in out}
    for form, base in sorted(wn.exceptions.items()):
        word, base_word = form.replace("_", " "), base.replace("_", " ")
        if word not in by_lemma and base_word in by_lemma:
            b = by_lemma[base_word]
            out.append(NounEntry(word, b.primary, b.classes, b.mass))
    return out
