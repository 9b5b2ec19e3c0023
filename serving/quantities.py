"""How many and how much a noun of a word problem plausibly comes in (declared data).

Raters threw out "14 pizzas for the family dinner", "468 students at the camping trip", "1750
grams of flour for a cake". The ranges a teacher finds believable for a noun are data, not code:
``noun_ranges.json`` beside this module declares them, one table per thing measured, each with a
``_why`` note saying what it bounds and which rated problem it keeps out. This module reads that
file once, on first use (not at import: nothing is read until a problem is rendered), checks
every table and caches them; ``serving.sizes`` merges them into its noun -> unit -> range lookup.

Two kinds of table: ``ranges`` map a key (a noun; a class, a role or a unit where the note says)
to one range in the table's unit, ``ranges_by_unit`` map it to a range per unit (a ribbon in cm
and in m, a car in km/h and m/s). A range is ``[low, high]``, whole numbers, ``0 < low <= high``.

The count and amount tables keep their names here: ``COUNT`` (how many of a noun one problem
counts), ``HOLDS`` (how many one of it holds), ``CROWD`` (how many people come to an event),
``KG_AMOUNT``, ``GRAMS`` and ``ML`` (the kilograms, grams and millilitres of a food or a drink).
Stdlib only (serving-reachable).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

NOUN_RANGES = Path(__file__).with_name("noun_ranges.json")
Range = tuple[int, int]
# every unit a range can be in, in the order serving.sizes documents them
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
# the public names of the count and amount tables -> their table in ``ranges``
_PUBLIC = {
    "COUNT": "count",
    "HOLDS": "holds",
    "CROWD": "crowd",
    "KG_AMOUNT": "kg_amount",
    "GRAMS": "grams",
    "ML": "ml",
}
# the schema's tables: section -> its tables (exactly these; serving.sizes reads the others)
_TABLES = {
    "ranges": (
        *_PUBLIC.values(),
        "area_m",
        "panel_cm",
        "person_cm",
        "minutes",
        "hours",
        "km",
        "kg",
        "price",
        "hours_by_class",
        "amount_by_class",
    ),
    "ranges_by_unit": ("strip", "speed", "slow_speed", "speed_by_class", "role_defaults"),
}

if TYPE_CHECKING:  # served by __getattr__, on first use
    COUNT: Mapping[str, Range]
    HOLDS: Mapping[str, Range]
    CROWD: Mapping[str, Range]
    KG_AMOUNT: Mapping[str, Range]
    GRAMS: Mapping[str, Range]
    ML: Mapping[str, Range]


class NounRangesError(ValueError):
    """A malformed noun-range file: the message names the file, the key and the problem."""


@dataclass(frozen=True)
class RangeTables:
    """The checked tables of a noun-range file, in the file's order (later entries win where
    ``serving.sizes`` merges them, so order is kept)."""

    ranges: Mapping[str, Mapping[str, Range]]  # table -> key -> range
    ranges_by_unit: Mapping[str, Mapping[str, Mapping[str, Range]]]  # table -> key -> unit -> range


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as a dict; a key written twice is an error (json keeps the last silently)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise NounRangesError(f"key {key!r} appears twice")
        out[key] = value
    return out


def _object(value: Any, where: str, *, keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """``value`` as a JSON object (with exactly ``keys``, when given)."""
    if not isinstance(value, dict):
        raise NounRangesError(f"{where}: expected an object, got {type(value).__name__}")
    if keys and sorted(value) != sorted(keys):
        raise NounRangesError(f"{where}: keys must be {sorted(keys)}, got {sorted(value)}")
    return value


def _why(value: Any, where: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise NounRangesError(f"{where}._why: say why these ranges (a non-empty string)")


def _key(key: str, where: str) -> str:
    if not key or key != " ".join(key.lower().split()):
        raise NounRangesError(f"{where}: key {key!r} must be lower case, single-spaced, non-empty")
    return key


def _range(value: Any, where: str) -> Range:
    ok = (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        and 0 < value[0] <= value[1]
    )
    if not ok:
        raise NounRangesError(f"{where}: expected [low, high], whole, 0 < low <= high: {value!r}")
    return (value[0], value[1])


def _unit_ranges(value: Any, where: str) -> dict[str, Range]:
    units = _object(value, where)
    if not units:
        raise NounRangesError(f"{where}: expected at least one unit")
    for unit in units:
        if unit not in UNITS:
            raise NounRangesError(f"{where}: unit {unit!r} is none of {', '.join(UNITS)}")
    return {u: _range(r, f"{where}.{u}") for u, r in units.items()}


def parse_tables(raw: Any, where: str) -> RangeTables:
    """The checked tables of a decoded noun-range file (``where`` names it in errors)."""
    top = _object(raw, where, keys=("_why", *_TABLES))
    _why(top["_why"], where)
    parsed: dict[str, dict[str, dict[str, Any]]] = {}
    for section, names in _TABLES.items():
        parse = _range if section == "ranges" else _unit_ranges
        parsed[section] = {}
        for name, table in _object(top[section], f"{where}: {section}", keys=names).items():
            at = f"{where}: {section}.{name}"
            table = _object(table, at, keys=("_why", "entries"))
            _why(table["_why"], at)
            parsed[section][name] = {
                _key(k, at): parse(v, f"{at}.{k}")
                for k, v in _object(table["entries"], f"{at}.entries").items()
            }
    return RangeTables(parsed["ranges"], parsed["ranges_by_unit"])


@functools.cache
def load_tables(path: Path = NOUN_RANGES) -> RangeTables:
    """The tables of ``path``, read and checked once (:class:`NounRangesError` on a bad file)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise NounRangesError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    try:
        raw = json.loads(text, object_pairs_hook=_no_duplicates)
    except ValueError as exc:  # not JSON, or a key written twice (NounRangesError)
        raise NounRangesError(f"{path}: {exc}") from None
    return parse_tables(raw, str(path))


def __getattr__(name: str) -> Mapping[str, Range]:
    """``COUNT``, ``HOLDS`` ...: their tables, loaded on first use."""
    if name in _PUBLIC:
        return load_tables().ranges[_PUBLIC[name]]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
