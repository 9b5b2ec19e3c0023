"""The units a problem's numbers count or measure in, and the range each draws from.

A counted unit ("days", "hours", "goals") and a measure ("ml", "kg", "km") set their own
ranges, whatever the topic: a jug holds 250 ml, not 11 ml; a team scores a handful of goals, not
134. ``serving.numbers`` reads a slot's unit from the word after it; ``serving.story`` asks
whether a keyword's head is a unit ("school days" is not a noun to widen). Stdlib only.
"""

from __future__ import annotations

# A counted unit sets its own range (level 0..4 upper bounds; lower bound first).
UNIT_RANGES: dict[str, tuple[int, tuple[int, int, int, int, int]]] = {
    "hour": (1, (3, 4, 6, 8, 9)),
    "day": (2, (5, 7, 10, 14, 21)),
    "night": (2, (4, 6, 8, 10, 14)),
    "week": (2, (4, 6, 8, 12, 16)),
    "second": (5, (20, 30, 45, 60, 90)),
    "year": (2, (6, 8, 10, 12, 15)),
    "month": (2, (6, 9, 12, 12, 12)),
    "goal": (1, (3, 4, 4, 5, 6)),  # a team scores a handful in a match, not 134 (nor 7 a half)
}


# Measures whose size depends on the unit, not the topic (a jug holds 250 ml, not 11 ml; a
# playground is not 3 m across): lower bound and upper bound by level, and a step.
MEASURE_RANGES: dict[
    str, tuple[tuple[int, int, int, int, int], tuple[int, int, int, int, int], int]
] = {
    "ml": ((50, 100, 100, 200, 250), (250, 500, 1000, 2000, 2500), 50),
    "g": ((50, 100, 100, 200, 250), (250, 500, 1000, 2000, 2500), 50),
    "cm": ((5, 10, 10, 20, 20), (30, 60, 120, 300, 400), 1),
    "m": ((3, 5, 8, 10, 10), (12, 25, 60, 120, 200), 1),
    "km": ((2, 5, 10, 20, 20), (20, 60, 200, 500, 600), 1),
    "kg": ((2, 3, 5, 5, 5), (10, 25, 60, 150, 200), 1),
}
_MEASURE_ALIASES = {
    "millilitre": "ml",
    "milliliter": "ml",
    "gram": "g",
    "grams": "g",
    "centimetre": "cm",
    "centimeter": "cm",
    "metre": "m",
    "meter": "m",
    "kilometre": "km",
    "kilometer": "km",
    "kilogram": "kg",
    "kilo": "kg",
}


def _unit(word: str) -> str:
    w = word.lower()
    w = w[:-1] if w.endswith("s") and (w[:-1] in UNIT_RANGES or w[:-1] in _MEASURE_ALIASES) else w
    return _MEASURE_ALIASES.get(w, w)


def is_unit_word(word: str) -> bool:
    """Whether ``word`` is a unit numbers are counted or measured in ("days", "km", "minutes")."""
    unit = _unit(word)
    return unit in UNIT_RANGES or unit in MEASURE_RANGES or unit.startswith("minute")
