"""Plausible sizes: a noun's length, speed or duration bounds the numbers drawn for it."""

from __future__ import annotations

import re

import pytest

from serving.lexicon import NounInfo
from serving.numbers import fill_numbers
from serving.sizes import SIZES, UNITS, size_of
from serving.story import cast_story, render_typed_output, size_hints


def _noun(word: str, *classes: str) -> NounInfo:
    return NounInfo(word, word, classes[0], frozenset(classes), False)


def test_the_table_is_well_formed() -> None:
    for noun, units in SIZES.items():
        assert noun == noun.lower().strip()
        for unit, (lo, hi) in units.items():
            assert unit in UNITS and 0 < lo <= hi, (noun, unit)


def test_lookup_by_noun_then_head_then_role_then_class() -> None:
    assert size_of("classroom")["m"] == (6, 12)
    assert size_of("muddy football pitch")["m"] == SIZES["pitch"]["m"]
    assert size_of("zzz", role="panel")["cm"] == (8, 40)
    assert size_of("zzz", classes={"person"})["km/h"] == (3, 6)
    assert size_of("zzz") == {}


@pytest.mark.parametrize("seed", range(15))
def test_a_rooms_sides_and_a_planes_speed_are_believable(seed: int) -> None:
    sk = "A <area> is <num> m long and <num> m wide. What is the area of the <area> in m2?"
    nouns = [_noun("classroom", "place", "surface")]
    out = render_typed_output(
        sk + " | n1 * n2", ["classroom"], topic="area and perimeter", seed=seed, nouns=nouns
    )
    sides = [int(x) for x in re.findall(r"(\d+) m\b", out.problem_text)]
    assert all(6 <= x <= 12 for x in sides), out.problem_text

    speed = "A <vehicle> travels <num> km in <num> hours. What is its average speed in km per hour?"
    plane = [_noun("airplane", "vehicle")]
    cast = cast_story(speed, plane, seed=seed)
    text = fill_numbers(
        speed, "n1 / n2", topic="speed", seed=seed, sizes=size_hints(speed, cast, plane)
    )
    km, hours = (int(x) for x in re.findall(r"\d+", text))
    assert km % hours == 0 and 400 <= km // hours <= 900, text


def test_without_sizes_the_topic_ranges_stay() -> None:
    sk = "A rope is <num> m long. <name> cuts off <num> m. How many m are left?"
    assert fill_numbers(sk, "n1 - n2", topic="measurement", seed=1) == fill_numbers(
        sk, "n1 - n2", topic="measurement", seed=1, sizes=()
    )


def _told(skeleton: str, equation: str, nouns: list[NounInfo], topic: str, seed: int) -> str:
    cast = cast_story(skeleton, nouns, seed=seed)
    return fill_numbers(
        skeleton, equation, topic=topic, seed=seed, sizes=size_hints(skeleton, cast, nouns)
    )


@pytest.mark.parametrize("seed", range(12))
def test_journeys_last_believable_hours_and_lakes_are_not_seas(seed: int) -> None:
    ride = (
        "<name> rides a horse along the <route> at <num> km per hour. "
        "The ride lasts <num> hours. How many km does <name> ride?"
    )
    speed, hours = (int(x) for x in re.findall(r"\d+", _told(ride, "n1 * n2", [], "speed", seed)))
    # a ride of hours is a walk or a trot; a factor of 1 hour is trivial
    assert 8 <= speed <= 16 and 2 <= hours <= 3

    lake = (
        "A boat sails across a lake at <num> km per hour. "
        "The crossing takes <num> hours. How many km wide is the lake?"
    )
    speed, hours = (int(x) for x in re.findall(r"\d+", _told(lake, "n1 * n2", [], "speed", seed)))
    assert 2 <= speed * hours <= 30

    # the author's own words set the pace of their sentence, before the noun they slow down
    jam = (
        "A bus in the city moves at only <num> km per hour because of the traffic. "
        "It drives for <num> hours. How many km does the bus travel?"
    )
    speed, hours = (int(x) for x in re.findall(r"\d+", _told(jam, "n1 * n2", [], "speed", seed)))
    assert 10 <= speed <= 30 and hours <= 2
