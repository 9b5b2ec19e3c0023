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

The ranges are declared data (``noun_ranges.json``, loaded and checked by ``serving.quantities``
on first use); this module merges them into one noun -> unit -> range lookup (``SIZES``) and
draws on it. Stdlib only (serving-reachable).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from serving.measures import KMH, MS, SENTENCE_END, Slot
from serving.quantities import UNITS, Range, load_tables
from serving.units import UNIT_RANGES

__all__ = ["OVERRIDES", "PACK_PRICE", "PER_NOUN", "SIZES", "UNITS", "plan_sizes", "size_of"]

# the tables merged into SIZES, in this order (a later table wins for the same noun and unit):
# (unit, a table of ``ranges`` in it) or ("", a table of ``ranges_by_unit``, which names its units)
_MERGED = (
    ("m", "area_m"),
    ("cm", "panel_cm"),
    ("cm", "person_cm"),
    ("", "strip"),
    ("", "speed"),
    ("", "slow_speed"),
    ("min", "minutes"),
    ("h", "hours"),
    ("km", "km"),
    ("kg", "kg_amount"),
    ("kg", "kg"),
    ("$", "price"),
    ("n", "count"),
    ("holds", "holds"),
    ("people", "crowd"),
    ("g", "grams"),
    ("ml", "ml"),
)
# units measured per noun of the sentence (``serving.story.size_hints`` keys them "n:<noun>"):
# how many trays and how many cookies are different counts of one sentence
PER_NOUN = frozenset({"n", "holds"})

if TYPE_CHECKING:  # served by __getattr__, on first use
    SIZES: Mapping[str, Mapping[str, Range]]  # noun -> unit -> range
    OVERRIDES: frozenset[str]  # words that set the sizes of their whole sentence


@functools.cache
def _sizes() -> Mapping[str, Mapping[str, Range]]:
    """noun -> unit -> range, merged from the tables of ``serving/noun_ranges.json``."""
    tables = load_tables()
    out: dict[str, dict[str, Range]] = {}
    for unit, name in _MERGED:
        entries: Mapping[str, Mapping[str, Range]]
        if unit:
            entries = {noun: {unit: r} for noun, r in tables.ranges[name].items()}
        else:
            entries = tables.ranges_by_unit[name]
        for noun, units in entries.items():
            out.setdefault(noun, {}).update(units)
    return out


@functools.cache
def _overrides() -> frozenset[str]:
    """The words that set the sizes of their whole sentence (the slow-speed table's nouns)."""
    return frozenset(load_tables().ranges_by_unit["slow_speed"])


def __getattr__(name: str) -> object:
    """``SIZES`` and ``OVERRIDES``, built from the declared tables on first use (once: each
    rendered problem imports them)."""
    if name == "SIZES":
        return _sizes()
    if name == "OVERRIDES":
        return _overrides()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def size_of(noun: str, *, role: str | None = None, classes: Iterable[str] = ()) -> dict[str, Range]:
    """The plausible ranges of ``noun`` (singular, any case; a multi-word noun by itself, then
    by its head), else of its ``role``, else its speed by class (a person, an animal, a
    vehicle); empty when nothing is known."""
    key = " ".join(noun.lower().split())
    sizes = _sizes()
    found = None
    for k in (key, key.rsplit(" ", 1)[-1]):
        # a skeleton's own words come as written: "bows", "buses", "pitches"
        for form in (k, k[:-1] if k.endswith("s") else "", k[:-2] if k.endswith("es") else ""):
            found = found or sizes.get(form)
    tables = load_tables()
    out: dict[str, Range] = dict(tables.ranges_by_unit["role_defaults"].get(role or "", {}))
    cls = set(classes)
    for c in ("vehicle", "animal", "person"):
        if c in cls:
            out.update(tables.ranges_by_unit["speed_by_class"][c])
            out["h"] = tables.ranges["hours_by_class"][c]
            break
    if cls & {"food", "substance", "liquid"}:
        out.update(tables.ranges["amount_by_class"])
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
