"""Plausible sizes: a noun's length, speed or duration bounds the numbers drawn for it."""

from __future__ import annotations

import re

import pytest

from serving.lexicon import NounInfo
from serving.numbers import fill_numbers
from serving.sizes import SIZES, UNITS, size_of
from serving.story import cast_story, render_any, size_hints


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
    out = render_any(
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


def _numbers(text: str) -> list[int]:
    return [int(x) for x in re.findall(r"\d+", text)]


@pytest.mark.parametrize("seed", range(12))
def test_how_many_of_a_noun_one_problem_counts_is_believable(seed: int) -> None:
    tent = _noun("tents", "large", "object")
    trip = _noun("camping trip", "event")
    camp = (
        "There are <num> <people:pl> at the <event> . Each <big> has room for <num> of them, "
        "and the <big:pl> are set out in <num> equal rows. How many <big:pl> are in each row?"
    )
    people, room, _rows = _numbers(
        _told(camp, "n1 / n2 / n3", [tent, trip], "multiplication and division", seed)
    )
    # a camping trip has tens of campers, a tent sleeps a handful: 468 and 18 were drawn before
    assert 8 <= people <= 40 and 2 <= room <= 8

    cookies = [_noun("cookies", "food"), _noun("trays", "container")]
    trays = (
        "<name> buys <num> <cont:pl> of <food:pl> with <num> <food:pl> in each <cont> . "
        "<he> shares them equally among <num> <people:pl> . How many <food:pl> does each get?"
    )
    n_trays, per_tray, _ = _numbers(_told(trays, "n1 * n2 / n3", cookies, "division", seed))
    assert 1 <= n_trays <= 6 and 6 <= per_tray <= 24

    teams = (
        "<num> teams take part in a tournament. Each team has <num> players. "
        "How many players are there?"
    )
    n_teams, players = _numbers(_told(teams, "n1 * n2", [], "multiplication", seed))
    assert 2 <= n_teams <= 16 and 5 <= players <= 15


@pytest.mark.parametrize("seed", range(8))
def test_amounts_and_the_floor_of_a_named_room(seed: int) -> None:
    flour = (
        "<name> is baking a cake. The recipe needs <num> grams of flour, and <he> has only "
        "<num> grams. How many more grams of flour does <he> need?"
    )
    need, have = _numbers(_told(flour, "n1 - n2", [], "measurement", seed))
    assert 100 <= need <= 600 and need % 50 == 0 and have % 50 == 0  # not 1750 g, not 437 g

    fruit = (
        "<name> has <num> kg of <stuff> . <he> uses <num> kg and puts the rest into bags of "
        "<num> kg. How many bags does <he> fill?"
    )
    stuff = [NounInfo("fruit", "fruit", "food", frozenset({"food"}), True)]
    kg = _numbers(_told(fruit, "(n1 - n2) / n3", stuff, "mixed operations", seed))
    assert kg[0] <= 10  # a picnic's fruit, not 52 kg

    # the skeleton's own words narrow each other: a bedroom's floor is not 9 m long
    room = (
        "The floor of <name> 's bedroom is <num> m long and <num> m wide. "
        "What is the area of the floor in square metres?"
    )
    assert all(3 <= x <= 6 for x in _numbers(_told(room, "n1 * n2", [], "area", seed)))


def test_an_easy_grade_keeps_small_counts_the_noun_allows() -> None:
    sk = "<name> buys <num> <cont:pl> of <thing:pl> with <num> <thing:pl> in each <cont> ."
    nouns = [_noun("pencils", "object"), _noun("pencil cases", "container")]
    for seed in range(10):
        cast = cast_story(sk + " How many <thing:pl> ?", nouns, seed=seed)
        text = fill_numbers(
            sk + " How many <thing:pl> ?",
            "n1 * n2",
            topic="multiplication",
            prompt_prefix="An easy one for grade 3:",
            seed=seed,
            sizes=size_hints(sk, cast, nouns),
        )
        cases, per_case = _numbers(text)
        assert cases <= 12 and per_case <= 12, text  # the grade's range inside the noun's


@pytest.mark.parametrize("seed", range(8))
def test_what_one_container_holds_bounds_its_contents(seed: int) -> None:
    sk = (
        "There were <num> <food:pl> in a <cont> . The children ate <num> of them. "
        "How many <food:pl> are still in the <cont> ?"
    )
    nouns = [_noun("cookies", "food"), _noun("jar", "container")]
    whole, _eaten = _numbers(_told(sk, "n1 - n2", nouns, "subtraction", seed))
    assert whole <= 60  # a cookie jar, not 127 cookies
