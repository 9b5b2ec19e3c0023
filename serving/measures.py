"""What a number slot of a skeleton measures: a speed, a length, an amount, or what a count counts.

Raters threw out problems whose arithmetic was right and whose counts were not: 17 trays of
cookies for 4 students, 21 teams of 30 players, 468 campers with 18 to a tent, 14 pizzas for a
family dinner. ``serving.numbers`` draws each count from the range ``serving.sizes`` gives for
the unit this module names: ``n:<key>`` (how many of the noun there are), ``holds:<key>`` (how
many one of it holds, seats or is cut into) or ``people`` (how many come to the event, else the
word's own count). ``<key>`` is a role instance of the skeleton ("cont2") or its own word as
written ("teams"), as ``serving.story.size_hints`` keys the ranges. Stdlib only
(serving-reachable).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from serving.units import _unit

# where one sentence of a problem or a skeleton ends: the one split that numbers' slots, the
# story's size hints and the consistency check all count sentences by
SENTENCE_END = re.compile(r"(?<=[.?!])\s+")
KMH = re.compile(r"\s*(?:km|kilomet(?:re|er)s?)\s*(?:per|an|a)\s+hour|\s*km/h", re.I)
MS = re.compile(r"\s*(?:m|met(?:re|er)s?)\s*(?:per|a)\s+second|\s*m/s", re.I)
_SQUARE = re.compile(r"\s*square\s+(centimet(?:re|er)s?|cm|met(?:re|er)s?|m)\b", re.I)


@dataclass(frozen=True)
class Slot:
    """One ``<num>`` of the text: where it is and what it counts."""

    start: int
    end: int
    index: int  # 0-based position among all numbers of the text (the equation's n<index+1>)
    # percent | discount | numerator | denominator | price | money | note | unit:<u> | factor
    # | count
    kind: str
    factor: bool = False  # next to '*' or after '/' in the equation
    measures: str = ""  # what a plausible size bounds (serving.sizes.UNITS), '' for none
    sentence: int = 0  # index of the sentence the slot is in


def _words(text: str) -> list[str]:
    return text.split()


# what a count counts: the role token or the word right after it ("<num> <cont:pl> of",
# "<num> equal rows", "<num> more goals")
_COUNTED = re.compile(
    r"\s*(?:(?:more|fewer|extra|new|other|young|equal|big|small|large|full|whole)\s+)?"
    r"(?:<(?!num>)([a-z]+\d?)(?::pl)?>|([A-Za-z]+))"
)
# a count of what one thing holds: "room for <num>", "<cont:pl> of <num>", "Each team has <num>"
_HOLDS_BEFORE = re.compile(
    r"(?:\broom for|\bholds?|\bseats?|\bfits?|\bcarr(?:y|ies)|\bsleeps?|\bcut into)\s*$",
    re.I,
)
_OF_BEFORE = re.compile(r"<([a-z]+\d?):pl>\s+of\s*$")
_EACH_HAS = re.compile(r"\beach\s+<?([a-z]+\d?)(?::pl)?>?\s+(?:has|have|gets?|takes?)\s*$", re.I)
_IN_EACH = re.compile(
    r"\s*(?:<[a-z]+\d?(?::pl)?>|[A-Za-z]+)(?:\s+[a-z]+)?\s+(?:in|on|per|for)\s+(?:each|every)\s+"
    r"<?([a-z]+\d?)>?",
    re.I,
)
# "<num> cookies in a <cont>", "<num> fish in the <cont>": what one container holds
_IN_ONE = re.compile(
    r"\s*(?:<[a-z]+\d?(?::pl)?>|[A-Za-z]+)\s+(?:in|inside)\s+(?:a|an|the|one|her|his|their)\s+"
    r"<(cont\d?)>"
)
_LAST_NOUN = re.compile(r"<(?!num>|name|he\b|him\b|his\b)([a-z]+\d?)(?::pl)?>|\b([a-z]{3,})\b")
_FUNCTION_WORDS = frozenset(_words("in on at of to for from by as more than each per times"))
_NOT_HOLDERS = frozenset(_words("each every has have had the and with there are is was can"))
# people a crowd counts: the role, and the skeletons' own words for people
_PEOPLE_ROLES = frozenset({"people"})
_PEOPLE_WORDS = frozenset(
    _words(
        "students children people visitors guests friends fans players passengers campers adults "
        "parents workers customers helpers pupils kids runners swimmers dancers singers"
    )
)


def counted(before: str, after: str) -> str:
    """The per-noun ``serving.sizes`` unit of a count or a factor ('' when none): what one thing
    holds ("holds:<key>"), how many people come ("people", else the word's own count), or how
    many of a noun there are ("n:<key>"); ``<key>`` is a role instance ("cont2") or the
    skeleton's word as written."""
    for pattern in (_OF_BEFORE, _EACH_HAS):
        m = pattern.search(before)
        if m:
            return f"holds:{m.group(1).lower()}"
    m = _IN_EACH.match(after) or _IN_ONE.match(after)
    if m:
        return f"holds:{m.group(1).lower()}"
    verb = _HOLDS_BEFORE.search(before)
    if verb:  # what holds it: the last role before the verb, else the last word that can
        nouns = [
            (m.group(1) or m.group(2)).lower()
            for m in _LAST_NOUN.finditer(before[: verb.start()])
            if m.group(1) or m.group(2).lower() not in _NOT_HOLDERS
        ]
        return f"holds:{nouns[-1]}" if nouns else ""
    m = _COUNTED.match(after)
    if not m:
        return ""
    role, word = m.group(1), (m.group(2) or "").lower()
    if word in _NOT_HOLDERS or word in _FUNCTION_WORDS:  # "<num> in the afternoon"
        return ""
    if (role and role.rstrip("23456789") in _PEOPLE_ROLES) or word in _PEOPLE_WORDS:
        return f"people|n:{role or word}"
    return f"n:{role or word}" if (role or word) else ""


_ROW_OF_TILES = re.compile(r"\s*<tile\d?(?::pl)?>\s+(?:long|wide|in each row|on each side)")


def measures(after: str, kind: str, word: str, before: str = "") -> str:
    """The ``serving.sizes`` unit a slot's value is a size in ('' when none applies): a speed,
    a length in m or cm (a factor too: "each side is 4 m long"), a duration in minutes, an
    amount in kg, g or ml, a count of a noun (:func:`counted`). ``before`` is the slot's sentence
    up to the slot."""
    if KMH.match(after):
        return "km/h"
    if MS.match(after):
        return "m/s"
    square = _SQUARE.match(after)
    if square:  # an area: the square of the side's range
        return "cm2" if square.group(1).lower().startswith("c") else "m2"
    if _unit(word) in ("m", "cm") and kind in ("measure:m", "measure:cm", "factor", "count"):
        return _unit(word)
    if _ROW_OF_TILES.match(after):  # "is 72 fabric squares long": a row a child can lay
        return "tiles"
    if kind == "unit:hour":
        return "h"
    if kind in ("measure:km", "measure:kg", "measure:g", "measure:ml"):
        return kind[8:]
    if kind == "factor" and _unit(word) in ("km", "kg", "g", "ml"):  # "bags of <num> kg"
        return _unit(word)
    if kind == "price":  # what one of the sentence's things costs
        return "$"
    if kind == "minute":
        return "min"
    return counted(before, after) if kind in ("count", "factor") else ""
