"""Plausible sizes: how long, how fast or how long-lasting a noun of a word problem can be.

Raters threw out problems whose arithmetic was right and whose numbers were not: a classroom
55 m by 35 m, a kitchen floor 75 cm square, an airplane at 19 km per hour, a bus at 12, ribbon
pieces 4 cm long for bows, a film of 6 minutes. ``serving.numbers`` draws each number by what
it counts (a unit, the grade); this table adds what it measures: for a noun and a unit, the
range a teacher would find believable. The realizer (``serving.story``) looks up the nouns of
each sentence (the keyword or pool noun of every role, and the skeleton's own words) and hands
the ranges to the number sampler; a question asking for a speed gets the mover's range for its
answer.

Units: ``m`` and ``cm`` (a side of a flat area, a length of a strip), ``km/h`` and ``m/s``
(speeds), ``min`` (how long an event or activity lasts), ``h`` (how long a journey of the mover
lasts: a horse is not ridden for 7 hours, a bus in town not driven for 7) and ``km`` (how far
across or along a place is: a lake 111 km wide is a sea). A noun without an entry falls back to
its role (a ``{panel}`` is a hand-sized flat thing) or its class (a person walks at 3-6 km/h).
Stdlib only (serving-reachable).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from serving.measures import KMH, MS, SENTENCE_END, Slot
from serving.quantities import COUNT, CROWD, GRAMS, HOLDS, KG_AMOUNT, ML
from serving.units import UNIT_RANGES

Range = tuple[int, int]

_AREA_M = {
    "classroom": (6, 12),
    "class room": (6, 12),
    "bedroom": (3, 6),
    "kitchen": (3, 6),
    "kitchen floor": (3, 6),
    "bathroom": (2, 4),
    "room": (3, 8),
    "living room": (4, 8),
    "hall": (10, 30),
    "school hall": (10, 30),
    "gym": (10, 30),
    "library": (8, 25),
    "playground": (20, 60),
    "garden": (5, 30),
    "vegetable patch": (2, 8),
    "patch": (2, 8),
    "flower bed": (1, 5),
    "sandpit": (2, 4),
    "yard": (5, 20),
    "lawn": (5, 20),
    "patio": (3, 8),
    "field": (40, 120),
    "school field": (40, 120),
    "pitch": (45, 100),
    "football pitch": (45, 100),
    "court": (10, 30),
    "tennis court": (10, 24),
    "basketball court": (14, 28),
    "park": (50, 300),
    "pool": (10, 50),
    "swimming pool": (10, 50),
    "pond": (3, 20),
    "car park": (20, 80),
    "floor": (3, 12),
    "rug": (1, 4),
    "carpet": (2, 6),
    "mat": (1, 3),
    "stage": (4, 12),
    "tent": (2, 5),
    "farm": (100, 500),
    "allotment": (5, 20),
    "wall": (2, 10),
    "roof": (5, 15),
    "town square": (20, 80),
    "square": (20, 80),
}
_PANEL_CM = {
    "photo": (10, 30),
    "photograph": (10, 30),
    "picture": (10, 40),
    "picture frame": (15, 60),
    "frame": (15, 60),
    "painting": (20, 80),
    "canvas": (20, 80),
    "card": (8, 20),
    "postcard": (10, 15),
    "birthday card": (10, 25),
    "tile": (10, 40),
    "poster": (30, 90),
    "window": (40, 150),
    "napkin": (20, 40),
    "placemat": (25, 45),
    "book": (15, 30),
    "page": (15, 30),
    "notebook": (15, 30),
    "envelope": (10, 30),
    "sticker": (3, 10),
    "stamp": (2, 5),
    "flag": (20, 100),
    "whiteboard": (60, 200),
    "board": (30, 120),
    "desk": (50, 150),
    "table": (60, 200),
    "door": (70, 200),
    "mirror": (20, 100),
    "towel": (30, 150),
    "blanket": (100, 200),
    "quilt": (100, 250),
    "screen": (20, 100),
    "sheet": (20, 40),
    "sheet of paper": (20, 40),
    "paper": (20, 40),
    "cake": (15, 40),
    "pizza": (20, 40),
    "chocolate bar": (8, 20),
    "tray": (20, 50),
    "garden bed": (100, 300),
}
_STRIP = {
    "ribbon": {"cm": (20, 150), "m": (1, 5)},
    "rope": {"cm": (100, 500), "m": (2, 20)},
    "string": {"cm": (20, 200), "m": (1, 10)},
    "piece of string": {"cm": (20, 200), "m": (1, 10)},
    "wire": {"cm": (20, 200), "m": (1, 20)},
    "plank": {"cm": (50, 300), "m": (1, 4)},
    "pipe": {"cm": (50, 300), "m": (1, 6)},
    "fence": {"m": (5, 60)},
    "hose": {"m": (5, 30)},
    "scarf": {"cm": (100, 200)},
    "tape": {"cm": (10, 100), "m": (1, 10)},
    "thread": {"cm": (20, 100)},
    "wool": {"cm": (20, 200), "m": (1, 20)},
    "yarn": {"cm": (20, 200), "m": (1, 20)},
    "track": {"m": (100, 400)},
    "running track": {"m": (200, 400)},
    "stick": {"cm": (20, 100)},
    "pole": {"cm": (100, 400), "m": (1, 5)},
    "pencil": {"cm": (8, 19)},
    "ruler": {"cm": (15, 30)},
    "bow": {"cm": (15, 40)},
    "bracelet": {"cm": (15, 25)},
    "necklace": {"cm": (30, 60)},
    "gift": {"cm": (40, 120)},
    "present": {"cm": (40, 120)},
}
# speeds: (km per hour, metres per second)
_SPEED = {
    "car": ((40, 120), (10, 30)),
    "taxi": ((30, 80), (8, 20)),
    "bus": ((30, 80), (8, 20)),
    "coach": ((50, 100), (12, 25)),
    "school bus": ((30, 70), (8, 18)),
    "train": ((60, 200), (15, 50)),
    "tram": ((20, 50), (5, 12)),
    "plane": ((400, 900), (150, 250)),
    "airplane": ((400, 900), (150, 250)),
    "aeroplane": ((400, 900), (150, 250)),
    "jet": ((500, 900), (150, 250)),
    "helicopter": ((100, 250), (30, 70)),
    "boat": ((10, 40), (3, 10)),
    "rowing boat": ((4, 10), (1, 3)),
    "canoe": ((4, 10), (1, 3)),
    "kayak": ((4, 10), (1, 3)),
    "sailing boat": ((8, 25), (2, 7)),
    "hot air balloon": ((10, 30), (3, 8)),
    "ship": ((20, 50), (5, 14)),
    "ferry": ((20, 50), (5, 14)),
    "bicycle": ((10, 25), (3, 7)),
    "bike": ((10, 25), (3, 7)),
    "cyclist": ((10, 25), (3, 7)),
    "motorbike": ((40, 120), (10, 30)),
    "motorcycle": ((40, 120), (10, 30)),
    "scooter": ((8, 20), (2, 5)),
    "skateboard": ((8, 15), (2, 4)),
    "truck": ((40, 100), (10, 25)),
    "lorry": ((40, 100), (10, 25)),
    "van": ((40, 100), (10, 25)),
    "tractor": ((10, 30), (3, 8)),
    # a horse gallops at 40 only in a sprint: a ride of hours is a walk or a trot
    "horse": ((8, 16), (2, 5)),
    "pony": ((8, 25), (3, 7)),
    "runner": ((8, 16), (3, 6)),
    "jogger": ((6, 12), (2, 3)),
    "athlete": ((10, 20), (3, 8)),
    "walker": ((3, 6), (1, 2)),
    "hiker": ((3, 6), (1, 2)),
    "swimmer": ((2, 5), (1, 2)),
    "dog": ((10, 30), (3, 8)),
    "cat": ((10, 30), (3, 8)),
    "rabbit": ((15, 40), (4, 10)),
    "cheetah": ((60, 110), (20, 30)),
    "deer": ((30, 70), (8, 18)),
    "duck": ((40, 80), (10, 20)),
    "bird": ((20, 60), (5, 15)),
    "pigeon": ((40, 80), (10, 20)),
    "eagle": ((40, 120), (10, 30)),
    "turtle": ((1, 3), (1, 1)),
    "tortoise": ((1, 1), (1, 1)),
}
# how many hours a journey of the mover lasts in a word problem
_HOURS = {
    "horse": (1, 3),
    "pony": (1, 2),
    "rowing boat": (1, 3),
    "canoe": (1, 3),
    "kayak": (1, 3),
    "bicycle": (1, 3),
    "bike": (1, 3),
    "cyclist": (1, 4),
    "runner": (1, 3),
    "marathon runner": (2, 5),
    "jogger": (1, 2),
    "walker": (1, 4),
    "hiker": (2, 6),
    "swimmer": (1, 2),
    "boat": (1, 3),
    "ferry": (1, 3),
    "ship": (2, 10),
    "car": (1, 6),
    "coach": (1, 6),
    "train": (1, 6),
    "plane": (1, 10),
    "airplane": (1, 10),
    "aeroplane": (1, 10),
    "bus": (1, 3),
    "school bus": (1, 2),
    "taxi": (1, 2),
    "tram": (1, 2),
    "scooter": (1, 2),
    "skateboard": (1, 2),
    "tractor": (1, 3),
    "traffic": (1, 2),
    "lake": (1, 3),
}
# how far across a place is, in km (not a route: a ride along a path is not its length)
_KM = {
    "lake": (2, 30),
    "island": (2, 40),
    "marathon": (42, 42),
}
# how heavy an animal or a thing a child weighs is, in kg: a hamster is not 21 kg
_KG = {
    "puppy": (2, 12),
    "dog": (5, 35),
    "kitten": (1, 3),
    "cat": (3, 6),
    "rabbit": (1, 4),
    "tortoise": (1, 5),
    "lamb": (10, 30),
    "sheep": (40, 90),
    "goat": (30, 70),
    "pig": (60, 200),
    "cow": (400, 800),
    "horse": (300, 700),
    "pony": (150, 350),
    "chicken": (2, 4),
    "duck": (1, 3),
    "penguin": (10, 40),
    "lion": (120, 250),
    "tiger": (100, 250),
    "elephant": (2000, 6000),
    "baby": (3, 10),
    "child": (20, 45),
    "suitcase": (8, 25),
    "pumpkin": (2, 10),
    "watermelon": (2, 8),
    "parcel": (1, 10),
    "backpack": (2, 8),
    "school bag": (2, 8),
}
# words that measure a person: a child "is <num> cm tall", not 7 cm
_PERSON_CM = {"tall": (100, 165), "brother": (80, 150), "sister": (80, 150)}
# what one of a thing costs, in dollars: a cinema ticket is not $50, popcorn not $17
_PRICE = {
    "ticket": (4, 15),
    "cinema ticket": (5, 15),
    "train ticket": (5, 40),
    "bus ticket": (1, 5),
    "raffle ticket": (1, 3),
    "popcorn": (2, 6),
    "book": (4, 20),
    "comic": (2, 6),
    "magazine": (2, 8),
    "notebook": (1, 5),
    "pencil": (1, 2),
    "pen": (1, 4),
    "ruler": (1, 3),
    "sticker": (1, 2),
    "toy": (3, 25),
    "toy car": (2, 12),
    "teddy bear": (5, 25),
    "kite": (4, 20),
    "board game": (10, 35),
    "ball": (3, 15),
    "football": (8, 30),
    "pizza": (6, 15),
    "sandwich": (2, 7),
    "muffin": (1, 4),
    "cupcake": (1, 4),
    "cookie": (1, 3),
    "cake": (8, 30),
    "ice cream": (1, 5),
    "apple": (1, 2),
    "egg": (1, 1),
    "egg box": (2, 6),
    "lemonade": (1, 3),
    "cup": (1, 3),
    "t-shirt": (5, 25),
    "shirt": (8, 30),
    "pair": (15, 80),
    "bicycle": (80, 300),
    "helmet": (15, 45),
}
# a slower pace for words that say so ("only ... because of the traffic"): these set the sizes
# of their whole sentence, before the nouns they slow down (``OVERRIDES``)
_SLOW_SPEED = {"traffic": ((10, 30), (3, 8)), "jam": ((5, 20), (1, 5))}
_SPEED_BY_CLASS = {
    "vehicle": ((30, 100), (8, 25)),
    "animal": ((5, 30), (2, 8)),
    "person": ((3, 6), (1, 2)),
}
_MINUTES = {
    "film": (80, 150),
    "movie": (80, 150),
    "football match": (90, 90),
    "match": (60, 90),
    "game": (30, 90),
    "lesson": (30, 60),
    "class": (30, 60),
    "maths lesson": (30, 60),
    "school day": (300, 400),
    "homework": (15, 60),
    "piano practice": (15, 60),
    "practice": (15, 60),
    "reading": (10, 60),
    "concert": (60, 150),
    "play": (45, 120),
    "school play": (45, 120),
    "show": (45, 120),
    "party": (90, 240),
    "birthday party": (90, 240),
    "swimming lesson": (30, 60),
    "dance class": (30, 60),
    "lunch break": (30, 60),
    "break": (10, 30),
    "bus ride": (10, 60),
    "walk": (10, 90),
    "bike ride": (20, 120),
}
_HOURS_BY_CLASS = {"vehicle": (1, 5), "animal": (1, 2), "person": (1, 3)}
_ROLE_DEFAULTS: dict[str, dict[str, Range]] = {
    "area": {"m": (4, 30)},
    "panel": {"cm": (8, 40)},
    "strip": {"cm": (20, 200), "m": (1, 10)},
    "tile": {"tiles": (3, 16)},  # a patio 72 paving slabs long is a car park
    "cont": {"n": (1, 12), "holds": (4, 30)},  # a container a child carries or fills
    "big": {"n": (2, 30)},
    "vehicle": {"n": (1, 12)},
}
# a food or a substance without an entry: a family's shopping, a recipe's amount
_AMOUNT_BY_CLASS = {"kg": (1, 10), "g": (50, 800), "ml": (100, 1000)}


def _table() -> dict[str, dict[str, Range]]:
    out: dict[str, dict[str, Range]] = {}
    # one table per unit, applied in this order (a later table wins for the same noun and unit)
    per_unit: tuple[tuple[str, Mapping[str, Range]], ...] = (
        ("m", _AREA_M),
        ("cm", _PANEL_CM),
        ("cm", _PERSON_CM),
    )
    for unit, table in per_unit:
        for noun, r in table.items():
            out.setdefault(noun, {})[unit] = r
    for noun, units in _STRIP.items():
        out.setdefault(noun, {}).update(units)
    for noun, (kmh, ms) in (*_SPEED.items(), *_SLOW_SPEED.items()):
        out.setdefault(noun, {}).update({"km/h": kmh, "m/s": ms})
    for unit, table in (
        ("min", _MINUTES),
        ("h", _HOURS),
        ("km", _KM),
        ("kg", KG_AMOUNT),
        ("kg", _KG),
        ("$", _PRICE),
        ("n", COUNT),
        ("holds", HOLDS),
        ("people", CROWD),
        ("g", GRAMS),
        ("ml", ML),
    ):
        for noun, r in table.items():
            out.setdefault(noun, {})[unit] = r
    return out


SIZES: Mapping[str, Mapping[str, Range]] = _table()
OVERRIDES = frozenset(_SLOW_SPEED)
UNITS = (
    "m",
    "cm",
    "km/h",
    "m/s",
    "min",
    "h",
    "km",
    "kg",
    "$",
    "tiles",
    "n",
    "holds",
    "people",
    "g",
    "ml",
)
# units measured per noun of the sentence (``serving.story.size_hints`` keys them "n:<noun>"):
# how many trays and how many cookies are different counts of one sentence
PER_NOUN = frozenset({"n", "holds"})


def size_of(noun: str, *, role: str | None = None, classes: Iterable[str] = ()) -> dict[str, Range]:
    """The plausible ranges of ``noun`` (singular, any case; a multi-word noun by itself, then
    by its head), else of its ``role``, else its speed by class (a person, an animal, a
    vehicle); empty when nothing is known."""
    key = " ".join(noun.lower().split())
    found = None
    for k in (key, key.rsplit(" ", 1)[-1]):
        # a skeleton's own words come as written: "bows", "buses", "pitches"
        for form in (k, k[:-1] if k.endswith("s") else "", k[:-2] if k.endswith("es") else ""):
            found = found or SIZES.get(form)
    out: dict[str, Range] = dict(_ROLE_DEFAULTS.get(role or "", {}))
    cls = set(classes)
    for c in ("vehicle", "animal", "person"):
        if c in cls:
            kmh, ms = _SPEED_BY_CLASS[c]
            out.update({"km/h": kmh, "m/s": ms, "h": _HOURS_BY_CLASS[c]})
            break
    if cls & {"food", "substance", "liquid"}:
        out.update(_AMOUNT_BY_CLASS)
    if found:
        out.update(found)
    return out


_HOW_MANY_KM = re.compile(r"\bhow (?:many|far)\b.*\b(?:km|kilomet(?:re|er)s?)\b", re.I)
_FASTER = re.compile(r"\b(?:faster|slower|more|less|difference|further|farther)\b", re.I)


# a sentence pricing a pack of things: the price of one thing elsewhere does not bound it
PACK_PRICE = (5, 15)  # a box of muffins is neither $2 nor $18
_PACKED = re.compile(
    r"\b(?:box|boxes|bag|bags|pack|packs|packet|packets|tray|trays|crate|crates|basket|baskets"
    r"|jar|jars|carton|cartons|tin|tins|bunch|bunches)\b|<cont\d?(?::pl)?>"
)


def plan_sizes(
    text: str, slots: Sequence[Slot], sizes: Sequence[Mapping[str, tuple[int, int]]], level: int
) -> tuple[list[tuple[int, int] | None], tuple[int, int] | None]:
    """Per slot, the plausible range it is drawn from (None: the topic's ranges), and the range
    the answer must fall in when the question asks for a speed (None: any)."""
    merged: dict[str, tuple[int, int]] = {}
    for per_sentence in sizes:
        for unit, r in per_sentence.items():
            merged.setdefault(unit, r)

    def lookup(sentence: int, unit: str) -> tuple[int, int] | None:
        if "|" in unit:  # alternatives, the first known wins: "people|n:friends"
            return next(filter(None, (lookup(sentence, u) for u in unit.split("|"))), None)
        here = sizes[sentence] if sentence < len(sizes) else {}
        if unit in ("m2", "cm2"):
            side = here.get(unit[:-1]) or merged.get(unit[:-1])
            return (side[0] * side[0], side[1] * side[1]) if side else None
        if unit == "$" and sentence < len(sentences) and _PACKED.search(sentences[sentence]):
            # "sells each box for $<num>": a muffin's price is not a box's, nor is $2
            return here.get(unit) or PACK_PRICE
        return here.get(unit) or merged.get(unit)

    sentences = SENTENCE_END.split(text.strip())
    question = sentences[-1]
    answer: tuple[int, int] | None = None
    rate = ""
    if not _FASTER.search(question):
        rate = "km/h" if KMH.search(question) else "m/s" if MS.search(question) else ""
        answer = merged.get(rate) if rate else None
        if not rate and _HOW_MANY_KM.search(question):
            answer = merged.get("km")  # "How many km wide is the lake?"
    if not rate:
        rate = next((s.measures for s in slots if s.measures in ("km/h", "m/s")), "")
    speed = merged.get(rate) if rate else None
    hours = merged.get("h")
    plan: list[tuple[int, int] | None] = []
    for s in slots:
        size = lookup(s.sentence, s.measures) if s.measures else None
        if speed is not None and s.kind == ("measure:km" if rate == "km/h" else "measure:m"):
            # a distance beside a speed: as far as the mover goes in the times drawn
            lo_t, his_t = UNIT_RANGES["hour" if rate == "km/h" else "second"]
            hi_t = his_t[level]
            if rate == "km/h" and hours is not None:
                lo_t, hi_t = hours
            size = (speed[0] * lo_t, speed[1] * hi_t)
        plan.append(size)
    return plan, answer
