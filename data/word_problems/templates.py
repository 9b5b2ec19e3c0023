"""The embedded word-problem corpus: school-maths templates, deterministic for a seed.

Each topic has a number sampler (constraints that keep answers whole and positive, scaled by a
difficulty level) and at least six sentence shapes. A shape is a text template, an equation
template over the same number slots, and the slots that are its keywords. Counted nouns are
pre-rendered with :func:`count` so the text is grammatical ("1 apple", "3 apples"). The answer is
always computed by ``serving.arithmetic.evaluate`` from the equation, so every record is
consistent by construction (and the tests check it again).

``prompt_prefix`` selects the difficulty: ``"For a grade N class:"`` (N = 2..5, or another
wording of :data:`PREFIX_STYLES`) scales the numbers; the empty prefix draws a level at random.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from serving.arithmetic import evaluate
from serving.numbers import format_number
from serving.roles import NAMES  # one list of first names for templates and typed roles

# ----------------------------------------------------------------------------- vocabulary


@dataclass(frozen=True)
class Noun:
    """A countable noun with its plural (irregular plurals are written out)."""

    one: str
    many: str


def _n(one: str, many: str | None = None) -> Noun:
    return Noun(one, many or one + "s")


OBJECTS: tuple[Noun, ...] = (
    _n("apple"),
    _n("orange"),
    _n("pencil"),
    _n("sticker"),
    _n("marble"),
    _n("book"),
    _n("cookie"),
    _n("card"),
    _n("balloon"),
    _n("shell"),
    _n("crayon"),
    _n("cupcake"),
    _n("stamp"),
    _n("flower"),
    _n("egg"),
    _n("banana"),
    _n("strawberry", "strawberries"),
    _n("button"),
    _n("toy car"),
    _n("seashell"),
    _n("lemon"),
    _n("muffin"),
    _n("bead"),
    _n("ribbon"),
)
CONTAINERS: tuple[Noun, ...] = (
    _n("basket"),
    _n("box", "boxes"),
    _n("bag"),
    _n("jar"),
    _n("crate"),
    _n("packet"),
    _n("tray"),
    _n("tin"),
)
ITEMS: tuple[Noun, ...] = (
    _n("pen"),
    _n("notebook"),
    _n("sandwich", "sandwiches"),
    _n("ball"),
    _n("kite"),
    _n("hat"),
    _n("comic"),
    _n("puzzle"),
    _n("yo-yo"),
    _n("lunch box", "lunch boxes"),
    _n("scarf", "scarves"),
    _n("ruler"),
)
VEHICLES: tuple[str, ...] = ("car", "train", "bus", "truck", "boat", "plane", "tractor")
# Word lists that give the fixed-context shapes a variable keyword, so one (topic, keyword set)
# combination never stands for a whole shape (held-out combinations must leave shapes in train).
WORDS: dict[str, tuple[str, ...]] = {
    "place": ("garden", "field", "playground", "yard", "park", "patio", "lawn", "farm"),
    "sq": ("tile", "photo", "window", "napkin", "card", "board"),
    "cover": ("rug", "carpet", "mat", "blanket"),
    "mat": ("ribbon", "rope", "string", "wire", "tape", "yarn"),
    "dry": ("flour", "rice", "sugar", "sand", "potatoes", "salt"),
    "vessel": ("jug", "tank", "bucket", "barrel", "bowl"),
    "liquid": ("water", "juice", "milk", "lemonade", "soup"),
    "long": ("plank", "pipe", "log", "pole", "rail"),
    "pkg": ("parcel", "suitcase", "sack", "crate", "backpack"),
    "instrument": ("piano", "violin", "guitar", "drums", "flute", "trumpet"),
    "subject": ("maths", "art", "music", "science", "history", "spelling"),
    "hobby": ("reading", "drawing", "swimming", "painting", "cycling", "gardening"),
    "race": ("bike", "car", "horse", "running", "swimming", "boat"),
    "show": ("film", "cartoon", "match", "play", "concert", "documentary"),
    "sport": ("football", "tennis", "chess", "basketball", "hockey", "netball"),
    "veg": ("tomatoes", "carrots", "beans", "roses", "tulips", "peppers"),
    "event": ("show", "concert", "match", "museum", "zoo", "circus"),
    "reading": ("book", "comic", "magazine", "novel", "story"),
}
CUPS: tuple[Noun, ...] = (
    _n("bottle"),
    _n("cup"),
    _n("glass", "glasses"),
    _n("carton"),
    _n("flask"),
)
# Nouns counted by a number in some shapes: slot "<number>_<key>" renders count(number, noun).
COUNTED: dict[str, Noun] = {
    "hour": _n("hour"),
    "day": _n("day"),
    "minute": _n("minute"),
    "week": _n("week"),
    "friend": _n("friend"),
    "litre": _n("litre"),
    "page": _n("page"),
    "night": _n("night"),
    "group": _n("group"),
    "child": _n("child", "children"),
    "piece": _n("piece"),
}
# How teachers word the grade: each wording of grade N means difficulty level N - 2. Drawn at
# random so a request's wording does not decide the sentence shape ("For grade 3:" and "For my
# grade 4 students:" got broken text when only "For a grade N class:" was trained).
PREFIX_STYLES: tuple[str, ...] = (
    "For a grade {g} class:",
    "For grade {g}:",
    "For my grade {g} students:",
    "Grade {g} pupils:",
)
GRADES: tuple[int, ...] = (2, 3, 4, 5)
PREFIXES: tuple[str, ...] = ("", *(s.format(g=g) for s in PREFIX_STYLES for g in GRADES))
N_LEVELS = 4


def level_of_prefix(prefix: str, rng: random.Random) -> int:
    """Difficulty level 0..3 of a prefix (grade 2..5, any wording); the empty prefix draws one."""
    for style in PREFIX_STYLES:
        for level, grade in enumerate(GRADES):
            if prefix == style.format(g=grade):
                return level
    return rng.randrange(N_LEVELS)


def count(n: float, noun: Noun) -> str:
    """``"1 apple"``, ``"3 apples"``: the number with the noun in agreement."""
    return f"{fmt(n)} {noun.one if n == 1 else noun.many}"


fmt = format_number  # numbers as a pupil writes them (the serving number slots write the same)


# ----------------------------------------------------------------------------- shapes


@dataclass(frozen=True)
class Shape:
    """One sentence shape: text and equation templates, keyword slots (or literal words)."""

    text: str
    equation: str
    keywords: tuple[str, ...]


Sampler = Callable[[random.Random, int], dict[str, float]]


def _r(rng: random.Random, lo: int, hi: int) -> int:
    return rng.randint(lo, max(lo, hi))


def _addition(rng: random.Random, lv: int) -> dict[str, float]:
    hi = (10, 20, 50, 200)[lv]
    return {"a": _r(rng, 2, hi), "b": _r(rng, 2, hi), "c": _r(rng, 2, hi)}


def _subtraction(rng: random.Random, lv: int) -> dict[str, float]:
    hi = (6, 15, 40, 150)[lv]
    b, c = _r(rng, 1, hi), _r(rng, 1, hi)
    return {"a": b + c + _r(rng, 1, hi), "b": b, "c": c}


def _multiplication(rng: random.Random, lv: int) -> dict[str, float]:
    hi = (5, 8, 10, 12)[lv]
    return {"a": _r(rng, 2, hi), "b": _r(rng, 2, hi + 3 * lv)}


def _division(rng: random.Random, lv: int) -> dict[str, float]:
    b = _r(rng, 2, (5, 6, 10, 12)[lv])
    q = _r(rng, 2, (5, 8, 10, 15)[lv])
    return {"a": b * q, "b": b, "q": q}


def _fractions(rng: random.Random, lv: int) -> dict[str, float]:
    d = rng.choice(((2, 3, 4), (2, 3, 4, 5), (2, 3, 4, 5, 6, 8), (3, 4, 5, 6, 8, 10))[lv])
    n = rng.choice([k for k in range(1, d) if math.gcd(k, d) == 1])  # 2/3, never 4/6
    a = d * _r(rng, 2, (3, 5, 8, 12)[lv])
    b = _r(rng, 1, a - 1)
    return {"a": a, "n": n, "d": d, "b": b}


def _percentages(rng: random.Random, lv: int) -> dict[str, float]:
    p = rng.choice(
        ((10, 50), (10, 20, 25, 50), (5, 10, 20, 25, 50, 75), (5, 15, 30, 40, 60, 80))[lv]
    )
    a = 20 * _r(rng, 1, (3, 5, 10, 30)[lv])
    return {"a": a, "p": p, "b": a * p // 100}


def _speed(rng: random.Random, lv: int) -> dict[str, float]:
    s = _r(rng, 3, (10, 20, 40, 90)[lv])
    t = _r(rng, 1, (3, 4, 6, 8)[lv])
    t2 = _r(rng, 2, (4, 5, 8, 10)[lv])
    return {"s": s, "t": t, "t2": t2, "d": s * t}


def _money(rng: random.Random, lv: int) -> dict[str, float]:
    hi = (5, 10, 20, 50)[lv]
    q = float(_r(rng, 1, hi))
    p = q + _r(rng, 1, hi)  # p > q: "how much more does the first cost" stays positive
    if lv == 3 and rng.random() < 0.5:
        p += 0.5
    a, b = _r(rng, 2, 6), _r(rng, 2, 6)
    w = _r(rng, 2, 10)
    return {
        "p": p,
        "q": q,
        "a": a,
        "b": b,
        "m": a * p + _r(rng, 1, 2 * hi),
        "w": w,
        "pw": p * w,
        "e": 2 * _r(rng, 2, 5 * hi),
    }


def _measurement(rng: random.Random, lv: int) -> dict[str, float]:
    hi = (10, 30, 80, 300)[lv]
    b = _r(rng, 1, hi)
    k = _r(rng, 2, (4, 6, 9, 12)[lv])
    q = _r(rng, 2, (5, 10, 20, 40)[lv])
    return {"a": b + _r(rng, 1, hi), "b": b, "k": k, "q": q, "kq": k * q}


def _area(rng: random.Random, lv: int) -> dict[str, float]:
    hi = (6, 12, 25, 60)[lv]
    length, width = _r(rng, 2, hi), _r(rng, 2, hi)
    return {"l": length, "w": width, "s": _r(rng, 2, hi), "A": length * width}


def _time(rng: random.Random, lv: int) -> dict[str, float]:
    hi = (20, 45, 90, 180)[lv]
    b = _r(rng, 5, hi)
    return {
        "a": b + _r(rng, 5, hi),
        "b": b,
        "m": _r(rng, 5, (20, 30, 45, 60)[lv]),
        "d": _r(rng, 2, (5, 7, 10, 14)[lv]),
        "h": _r(rng, 1, 9),
        "k": _r(rng, 2, (4, 6, 8, 12)[lv]),
    }


def _add_sub(rng: random.Random, lv: int) -> dict[str, float]:
    hi = (8, 15, 40, 150)[lv]
    a, b = _r(rng, 2, hi), _r(rng, 2, hi)
    return {"a": a, "b": b, "c": _r(rng, 1, a + b - 1)}


def _mul_div(rng: random.Random, lv: int) -> dict[str, float]:
    hi = (5, 8, 10, 12)[lv]
    a, q = _r(rng, 2, hi), _r(rng, 2, hi)
    c = _r(rng, 2, min(a, (4, 5, 6, 10)[lv]))  # c <= a: "the objects from c of the a boxes"
    return {"a": a, "b": c * q, "c": c, "ab": a * c * q}


def _mixed(rng: random.Random, lv: int) -> dict[str, float]:
    hi = (5, 8, 10, 12)[lv]
    a, b = _r(rng, 2, hi), _r(rng, 2, hi + 3 * lv)
    return {
        "a": a,
        "b": b,
        "c": _r(rng, 1, a * b - 1),
        "d": _r(rng, 2, (10, 20, 50, 100)[lv]),
        "m": a * b + _r(rng, 1, 4 * hi),  # money left stays positive
    }


@dataclass(frozen=True)
class Topic:
    """A school-maths topic: its sampler and its sentence shapes."""

    name: str
    sampler: Sampler
    shapes: tuple[Shape, ...]


S = Shape
TOPICS: tuple[Topic, ...] = (
    Topic(
        "addition",
        _addition,
        (
            S(
                "{name} has {a_obj}. {name2} gives {him} {b_obj} more as a present. "
                "How many {objs} does {name} have now?",
                "{a} + {b}",
                ("objs", "present"),
            ),
            S(
                "One {cont} holds {a_obj} and another {cont} holds {b_obj}. "
                "How many {objs} are there altogether?",
                "{a} + {b}",
                ("objs", "cont"),
            ),
            S(
                "{name} picked {a_obj} on Monday and {b_obj} on Tuesday. "
                "How many {objs} did {he} pick in total?",
                "{a} + {b}",
                ("objs", "Monday"),
            ),
            S(
                "A {cont} holds {a_obj}. {name} puts {b_obj} more into the {cont}. "
                "How many {objs} are in the {cont} now?",
                "{a} + {b}",
                ("objs", "cont"),
            ),
            S(
                "{name} collected {a_obj}, {name2} collected {b_obj} and {name3} collected "
                "{c_obj} for the school fair. How many {objs} did they collect altogether?",
                "{a} + {b} + {c}",
                ("objs", "fair"),
            ),
            S(
                "{name} has {a_obj} and buys {b_obj} more at the shop. "
                "How many {objs} does {he} have in total?",
                "{a} + {b}",
                ("objs", "shop"),
            ),
            S(
                "The class {cont} had {a_obj}. The teacher added {b_obj}. "
                "What is the total number of {objs} in the {cont}?",
                "{a} + {b}",
                ("objs", "cont"),
            ),
        ),
    ),
    Topic(
        "subtraction",
        _subtraction,
        (
            S(
                "{name} had {a_obj}. {He} gave {b_obj} to {his} friend {name2}. "
                "How many {objs} does {name} have left?",
                "{a} - {b}",
                ("objs", "friend"),
            ),
            S(
                "A {cont} held {a_obj}. {name} took out {b_obj}. "
                "How many {objs} are left in the {cont}?",
                "{a} - {b}",
                ("objs", "cont"),
            ),
            S(
                "{name} bought {a_obj} and lost {b_obj} on the way home. "
                "How many {objs} does {he} still have?",
                "{a} - {b}",
                ("objs", "home"),
            ),
            S(
                "{name} has {a_obj} and {name2} has {b_obj}. What is the difference between "
                "the number of {objs} {name} has and the number {name2} has?",
                "{a} - {b}",
                ("objs", "difference"),
            ),
            S(
                "{name} needs {a_obj} for a project. {He} already has {b_obj}. "
                "How many more {objs} does {he} need?",
                "{a} - {b}",
                ("objs", "project"),
            ),
            S(
                "A shop had {a_obj} in stock and sold {b_obj} in the morning. "
                "How many {objs} are left?",
                "{a} - {b}",
                ("objs", "shop"),
            ),
            S(
                "{name} had {a_obj}. {He} gave {b_obj} to one friend and {c_obj} to another "
                "friend. How many {objs} does {he} have left?",
                "{a} - {b} - {c}",
                ("objs", "friend"),
            ),
        ),
    ),
    Topic(
        "multiplication",
        _multiplication,
        (
            S(
                "{name} has {a_cont}. Each {cont} holds {b_obj}. "
                "How many {objs} does {he} have in total?",
                "{a} * {b}",
                ("objs", "conts"),
            ),
            S(
                "A shop sells {objs} in {conts} of {b}. {name} buys {a_cont}. "
                "How many {objs} does {he} buy?",
                "{b} * {a}",
                ("objs", "conts", "shop"),
            ),
            S(
                "Each of the {a} children in a class brings {b_obj}. "
                "How many {objs} do the children bring altogether?",
                "{a} * {b}",
                ("objs", "class"),
            ),
            S(
                "{name} puts {b_obj} in each of {a_cont}. "
                "How many {objs} are there in all the {conts}?",
                "{b} * {a}",
                ("objs", "conts"),
            ),
            S(
                "A {cont} holds {b_obj}. How many {objs} are there in {a_cont}?",
                "{b} * {a}",
                ("objs", "cont"),
            ),
            S(
                "{name} reads {b_page} every day for {a_day}. "
                "How many pages does {he} read in all?",
                "{b} * {a}",
                ("pages", "days"),
            ),
            S(
                "There are {a} rows of {objs} with {b_obj} in each row. How many {objs} are there?",
                "{a} * {b}",
                ("objs", "rows"),
            ),
        ),
    ),
    Topic(
        "division",
        _division,
        (
            S(
                "{name} has {a_obj} and shares them equally among {b_friend}. "
                "How many {objs} does each friend get?",
                "{a} / {b}",
                ("objs", "friends"),
            ),
            S(
                "{a} {objs} are packed into {conts} of {b}. How many {conts} are needed?",
                "{a} / {b}",
                ("objs", "conts"),
            ),
            S(
                "A teacher divides {a_obj} equally among {b_group}. "
                "How many {objs} does each group get?",
                "{a} / {b}",
                ("objs", "groups"),
            ),
            S(
                "{name} puts {a_obj} equally into {b_cont}. How many {objs} are in each {cont}?",
                "{a} / {b}",
                ("objs", "cont"),
            ),
            S(
                "There are {a} children in a class. The teacher makes teams of {b}. "
                "How many teams are there?",
                "{a} / {b}",
                ("children", "teams"),
            ),
            S(
                "{name} walks {a} km in {b_day}, the same distance each day. "
                "How many km does {he} walk each day?",
                "{a} / {b}",
                ("km", "days"),
            ),
            S(
                "{name} cuts a piece of {mat} {a} cm long into {b} equal pieces. "
                "How long is each piece in cm?",
                "{a} / {b}",
                ("mat", "pieces"),
            ),
        ),
    ),
    Topic(
        "fractions",
        _fractions,
        (
            S(
                "{name} has {a_obj}. {He} gives {n}/{d} of them to {his} sister. "
                "How many {objs} does {he} give away?",
                "{a} * {n} / {d}",
                ("objs", "sister"),
            ),
            S(
                "A {cont} holds {a_obj}. {n}/{d} of them are used today. How many {objs} are used?",
                "{a} * {n} / {d}",
                ("objs", "cont"),
            ),
            S(
                "There are {a_child} in a class and {n}/{d} of them walk to school. "
                "How many children walk to school?",
                "{a} * {n} / {d}",
                ("children", "school"),
            ),
            S(
                "{name} read {n}/{d} of a {reading} with {a_page}. How many pages did {he} read?",
                "{n} / {d} * {a}",
                ("reading", "pages"),
            ),
            S(
                "{name} has {a_obj} and gives {b_obj} to {name2}. "
                "What fraction of the {objs} does {he} give to {name2}?",
                "{b} / {a}",
                ("objs", "fraction"),
            ),
            S(
                "A {long} is {a} m long. {name} cuts off {n}/{d} of it. "
                "How many metres does {he} cut off?",
                "{n} / {d} * {a}",
                ("long", "metres"),
            ),
            S(
                "A garden has {a} plants and {n}/{d} of them are {veg}. "
                "How many of the plants are {veg}?",
                "{a} * {n} / {d}",
                ("plants", "veg"),
            ),
        ),
    ),
    Topic(
        "percentages",
        _percentages,
        (
            S(
                "A shop has {a_obj}. {p}% of them are sold on Monday. "
                "How many {objs} are sold on Monday?",
                "{a} * {p} / 100",
                ("objs", "shop"),
            ),
            S(
                "There are {a} students in a school and {p}% of them play {sport}. "
                "How many students play {sport}?",
                "{a} * {p} / 100",
                ("students", "sport"),
            ),
            S(
                "A {item} costs ${a}. It is on sale with {p}% off. "
                "How many dollars is the discount?",
                "{a} * {p} / 100",
                ("item", "discount"),
            ),
            S(
                "{name} scored {p}% on {a_subject} test with {a} questions. "
                "How many questions did {he} answer correctly?",
                "{p} / 100 * {a}",
                ("subject", "questions"),
            ),
            S(
                "{name} has {a_obj}. {name2} takes {b_obj}. "
                "What percentage of the {objs} does {name2} take?",
                "{b} / {a} * 100",
                ("objs", "percentage"),
            ),
            S(
                "A {item} costs ${a}. Its price goes up by {p}%. What is the new price in dollars?",
                "{a} * (100 + {p}) / 100",
                ("item", "price"),
            ),
            S(
                "A {item} costs ${a} and is sold at {p}% off. What is the sale price in dollars?",
                "{a} * (100 - {p}) / 100",
                ("item", "sale"),
            ),
        ),
    ),
    Topic(
        "speed",
        _speed,
        (
            S(
                "A {veh} travels at {s} km per hour for {t_hour}. How many km does it travel?",
                "{s} * {t}",
                ("veh", "km"),
            ),
            S(
                "A {veh} travels {d} km in {t_hour}. What is its average speed in km per hour?",
                "{d} / {t}",
                ("veh", "speed"),
            ),
            S(
                "{name} rides a bike at {s} km per hour. How many hours does it take {him} "
                "to ride {d} km?",
                "{d} / {s}",
                ("bike", "hours"),
            ),
            S(
                "A {veh} goes {d} km in {t_hour}. At the same speed, how far does it go "
                "in {t2_hour}?",
                "{d} / {t} * {t2}",
                ("veh", "speed"),
            ),
            S(
                "A machine makes {s_obj} every minute. How many {objs} does it make "
                "in {t2_minute}?",
                "{s} * {t2}",
                ("machine", "objs"),
            ),
            S(
                "A tap fills a tank at {s_litre} per minute. How many minutes does it take "
                "to fill a tank of {d_litre}?",
                "{d} / {s}",
                ("tap", "litres"),
            ),
            S(
                "{name} runs round a track at {s} metres per second. How many metres does {he} "
                "run in {t2} seconds?",
                "{s} * {t2}",
                ("track", "seconds"),
            ),
        ),
    ),
    Topic(
        "money",
        _money,
        (
            S(
                "A {item} costs ${p}. How many dollars do {a_item} cost?",
                "{p} * {a}",
                ("items", "dollars"),
            ),
            S(
                "{name} buys a {item} for ${p} and a {item2} for ${q}. "
                "How many dollars does {he} spend in total?",
                "{p} + {q}",
                ("item", "item2"),
            ),
            S(
                "{name} has ${m}. {He} buys {a_item} that cost ${p} each. "
                "How much money does {he} have left?",
                "{m} - {a} * {p}",
                ("items", "money"),
            ),
            S(
                "{name} puts ${p} into {his} savings every week. How many weeks does it take "
                "{him} to save ${pw}?",
                "{pw} / {p}",
                ("savings", "weeks"),
            ),
            S(
                "Tickets for the {event} cost ${p} for adults and ${q} for children. "
                "How many dollars do {a} adult tickets and {b} child tickets cost?",
                "{a} * {p} + {b} * {q}",
                ("tickets", "event"),
            ),
            S(
                "{name} and {name2} share a prize of ${e} equally. How many dollars does each "
                "of them get?",
                "{e} / 2",
                ("prize", "dollars"),
            ),
            S(
                "A {item} costs ${p} and a {item2} costs ${q}. "
                "How much more does the {item} cost than the {item2}?",
                "{p} - {q}",
                ("item", "item2"),
            ),
        ),
    ),
    Topic(
        "measurement",
        _measurement,
        (
            S(
                "A piece of {mat} is {a} cm long. {name} cuts off {b} cm. "
                "How long is the {mat} now in cm?",
                "{a} - {b}",
                ("mat", "cm"),
            ),
            S(
                "{name} has {k} bags of {dry} that each weigh {q} kg. "
                "What is the total mass of the {dry} in kg?",
                "{k} * {q}",
                ("dry", "kg"),
            ),
            S(
                "A {vessel} holds {a_litre} of {liquid}. {name} pours out {b_litre}. "
                "How many litres are left in the {vessel}?",
                "{a} - {b}",
                ("vessel", "liquid"),
            ),
            S(
                "A {long} is {kq} m long. It is cut into {k} equal pieces. "
                "How long is each piece in m?",
                "{kq} / {k}",
                ("long", "pieces"),
            ),
            S(
                "{name} is {a} cm tall and {name2} is {b} cm taller. What is the height of "
                "{name2} in cm?",
                "{a} + {b}",
                ("height", "cm"),
            ),
            S(
                "One {pkg} weighs {a} kg and another {pkg} weighs {b} kg. "
                "How many kg do the two together weigh?",
                "{a} + {b}",
                ("pkg", "kg"),
            ),
            S(
                "A {cup} holds {q} ml of {liquid}. How many ml of {liquid} do {k} {cups} hold?",
                "{q} * {k}",
                ("cups", "liquid"),
            ),
        ),
    ),
    Topic(
        "area and perimeter",
        _area,
        (
            S(
                "A rectangular {place} is {l} m long and {w} m wide. "
                "What is its area in square metres?",
                "{l} * {w}",
                ("place", "area"),
            ),
            S(
                "A rectangular {place} is {l} m long and {w} m wide. What is its perimeter in m?",
                "2 * ({l} + {w})",
                ("place", "perimeter"),
            ),
            S(
                "A square {sq} has 4 sides that are each {s} cm long. What is its perimeter in cm?",
                "4 * {s}",
                ("sq", "perimeter"),
            ),
            S(
                "A square {sq} has sides of {s} cm. What is the area of the {sq} in square cm?",
                "{s} ^ 2",
                ("sq", "area"),
            ),
            S(
                "A rectangular {place} has an area of {A} square metres and is {l} m long. "
                "How wide is the {place} in m?",
                "{A} / {l}",
                ("place", "area"),
            ),
            S(
                "A {place} is {l} m long and {w} m wide. A fence is put all the way "
                "around it. How many metres of fence are needed?",
                "2 * ({l} + {w})",
                ("place", "fence"),
            ),
            S(
                "A {cover} is {l} m long and {w} m wide. How many square metres of floor "
                "does it cover?",
                "{l} * {w}",
                ("cover", "floor"),
            ),
        ),
    ),
    Topic(
        "time",
        _time,
        (
            S(
                "{name} practises the {instrument} for {m} minutes every day. "
                "How many minutes does {he} practise in {d_day}?",
                "{m} * {d}",
                ("instrument", "minutes"),
            ),
            S(
                "{A_subject} lesson lasts {a} minutes and the break after it lasts {b} minutes. "
                "How many minutes do the lesson and the break last together?",
                "{a} + {b}",
                ("subject", "break"),
            ),
            S(
                "{name} spent {a} minutes on homework and {b} minutes {hobby}. "
                "How many more minutes did {he} spend on homework than {hobby}?",
                "{a} - {b}",
                ("homework", "hobby"),
            ),
            S(
                "A {veh} journey takes {a} minutes. The {veh} has already travelled for "
                "{b} minutes. How many minutes of the journey are left?",
                "{a} - {b}",
                ("veh", "journey"),
            ),
            S(
                "{name} gets {h_hour} of sleep every night. How many hours does {he} sleep "
                "in {d_night}?",
                "{h} * {d}",
                ("sleep", "nights"),
            ),
            S(
                "A {race} race has {k} laps and each lap takes {m} minutes. "
                "How many minutes does the race take?",
                "{k} * {m}",
                ("race", "laps"),
            ),
            S(
                "A {show} is {a} minutes long. {name} has watched {b} minutes of it. "
                "How many minutes of the {show} are left to watch?",
                "{a} - {b}",
                ("show", "minutes"),
            ),
        ),
    ),
)
# The operation mixes real corpora are labelled with (data.word_problems.adapters), written as
# short shapes too, so every supported topic has clean examples with or without those corpora.
TOPICS += (
    Topic(
        "addition and subtraction",
        _add_sub,
        (
            S(
                "{name} had {a_obj}. {He} bought {b_obj} more and then gave {c_obj} to "
                "{his} friend {name2}. How many {objs} does {name} have now?",
                "{a} + {b} - {c}",
                ("objs", "friend"),
            ),
            S(
                "A {cont} held {a_obj}. {name} added {b_obj} and took out {c_obj}. "
                "How many {objs} are in the {cont} now?",
                "{a} + {b} - {c}",
                ("objs", "cont"),
            ),
            S(
                "A shop had {a_obj}. It sold {c_obj} in the morning and got {b_obj} more in the "
                "afternoon. How many {objs} does the shop have now?",
                "{a} - {c} + {b}",
                ("objs", "shop"),
            ),
            S(
                "{name} picked {a_obj} in the garden and {name2} picked {b_obj}. They ate "
                "{c_obj}. How many {objs} are left?",
                "{a} + {b} - {c}",
                ("objs", "garden"),
            ),
            S(
                "There were {a} children on a bus. At the first stop {b} more got on and {c} "
                "got off. How many children are on the bus now?",
                "{a} + {b} - {c}",
                ("children", "bus"),
            ),
            S(
                "{name} has {a_obj} in one {cont} and {b_obj} in another {cont}. {He} gives "
                "away {c_obj}. How many {objs} does {he} have left?",
                "{a} + {b} - {c}",
                ("objs", "cont"),
            ),
        ),
    ),
    Topic(
        "multiplication and division",
        _mul_div,
        (
            S(
                "{name} has {a_cont} with {b_obj} in each {cont}. {He} shares all the {objs} "
                "equally among {c_friend}. How many {objs} does each friend get?",
                "{a} * {b} / {c}",
                ("objs", "conts"),
            ),
            S(
                "A teacher buys {a_cont} of {objs} with {b} in each {cont} and splits them "
                "equally into {c_group}. How many {objs} does each group get?",
                "{a} * {b} / {c}",
                ("objs", "groups"),
            ),
            S(
                "A machine makes {b_obj} every minute for {a_minute}. The {objs} are packed "
                "into {conts} of {c}. How many {conts} are filled?",
                "{b} * {a} / {c}",
                ("objs", "machine"),
            ),
            S(
                "{name} reads {b_page} a day for {a_day}. {He} writes one summary for every "
                "{c} pages. How many summaries does {he} write?",
                "{b} * {a} / {c}",
                ("pages", "days"),
            ),
            S(
                "There are {ab} {objs} shared equally among {a_cont}. {name} takes the "
                "{objs} from {c_cont}. How many {objs} does {name} take?",
                "{ab} / {a} * {c}",
                ("objs", "conts"),
            ),
            S(
                "Each of {a_child} brings {b_obj} to school. The teacher puts all the {objs} "
                "equally into {c_cont}. How many {objs} are in each {cont}?",
                "{a} * {b} / {c}",
                ("objs", "cont"),
            ),
        ),
    ),
    Topic(
        "mixed operations",
        _mixed,
        (
            S(
                "{name} buys {a_cont} with {b_obj} in each {cont} and already has {c_obj}. "
                "How many {objs} does {he} have in total?",
                "{a} * {b} + {c}",
                ("objs", "conts"),
            ),
            S(
                "{name} has {a_cont} with {b_obj} in each {cont}. {He} gives {c_obj} to "
                "{name2}. How many {objs} does {name} have left?",
                "{a} * {b} - {c}",
                ("objs", "cont"),
            ),
            S(
                "A {item} costs ${a} and a {item2} costs ${d}. How many dollars do {b} {items} "
                "and one {item2} cost?",
                "{b} * {a} + {d}",
                ("items", "item2"),
            ),
            S(
                "There are {a} rows of {objs} with {b_obj} in each row, and {c_obj} more on a "
                "table. How many {objs} are there altogether?",
                "{a} * {b} + {c}",
                ("objs", "rows"),
            ),
            S(
                "{name} had ${m} and bought {a_item} that cost ${b} each. {name2} gave {him} "
                "${c}. How much money does {name} have now?",
                "{m} + {c} - {a} * {b}",
                ("items", "money"),
            ),
            S(
                "A {cont} holds {b_obj}. {name} fills {a_cont} and eats {c_obj}. "
                "How many {objs} are left?",
                "{a} * {b} - {c}",
                ("objs", "cont"),
            ),
        ),
    ),
)
TOPIC_NAMES: tuple[str, ...] = tuple(t.name for t in TOPICS)


# ----------------------------------------------------------------------------- generation


@dataclass(frozen=True)
class TemplateProblem:
    """One generated problem, before it becomes a corpus record."""

    topic: str
    keywords: tuple[str, ...]
    prompt_prefix: str
    problem: str
    equation: str
    answer: float
    # The problem with each sampled quantity as the number slot ``<num>`` (literal digits of the
    # shape stay), and the equation over the text's numbers as slots ``n<i>``
    # (serving.numbers draws the values at serving time, so the answer follows from the text).
    skeleton: str = ""
    slot_equation: str = ""


def _slots(rng: random.Random, numbers: dict[str, float]) -> dict[str, str]:
    """Every value a shape may use: names, pronouns, nouns, numbers and counted nouns."""
    (name, he, him, his), n2, n3 = rng.sample(NAMES, 3)
    obj = rng.choice(OBJECTS)
    cont = rng.choice(CONTAINERS)
    item, item2 = rng.sample(ITEMS, 2)
    slots = {
        "name": name,
        "name2": n2[0],
        "name3": n3[0],
        "he": he,
        "He": he.capitalize(),
        "him": him,
        "his": his,
        "obj": obj.one,
        "objs": obj.many,
        "cont": cont.one,
        "conts": cont.many,
        "item": item.one,
        "items": item.many,
        "item2": item2.one,
        "veh": rng.choice(VEHICLES),
        **{key: rng.choice(words) for key, words in WORDS.items()},
    }
    article = "an" if slots["subject"][0] in "aeiou" else "a"  # "an art test"
    slots["a_subject"] = f"{article} {slots['subject']}"
    slots["A_subject"] = f"{article.capitalize()} {slots['subject']}"
    cup = rng.choice(CUPS)
    slots["cup"], slots["cups"] = cup.one, cup.many
    nouns = {"obj": obj, "cont": cont, "item": item, **COUNTED}
    for key, value in numbers.items():
        slots[key] = fmt(value)
        for noun_key, noun in nouns.items():
            slots[f"{key}_{noun_key}"] = count(value, noun)
    return slots


def render(shape: Shape, slots: dict[str, str]) -> tuple[str, str, tuple[str, ...]]:
    """Text, equation and keywords of a shape for the given slot values."""
    text = shape.text.format(**slots)
    equation = shape.equation.format(**slots)
    keywords = tuple(slots.get(k, k) for k in shape.keywords)
    return text, equation, keywords


def render_skeleton(
    shape: Shape, slots: dict[str, str], numbers: dict[str, float]
) -> tuple[str, str]:
    """(skeleton, slot equation) of a shape: every sampled quantity of the text is ``<num>``
    (a counted noun in the plural: the realizer makes "1 apples" singular), and the equation
    names each quantity by its place among the text's numbers, ``n<i>``, literal digits of the
    shape counted too ("has 4 sides that are each <num> cm" -> ``4 * n2``).

    Built from the shape, not by matching values, so equal values ("2 m long and 2 m wide",
    perimeter ``2 * (2 + 2)``) never mix a quantity up with a constant. Raises ValueError for a
    shape whose equation uses a quantity the text does not state, or states one twice.
    """
    import string

    from serving.arithmetic import numbers_in
    from serving.numbers import NUM_TOKEN

    plurals = {"obj": slots["objs"], "cont": slots["conts"], "item": slots["items"]}
    plurals.update({k: noun.many for k, noun in COUNTED.items()})
    masked = dict(slots)
    place: dict[str, int] = {}
    pos = 0
    for literal, field, _spec, _conv in string.Formatter().parse(shape.text):
        pos += len(numbers_in(literal))
        if field is None:
            continue
        key, _, noun_key = field.partition("_")
        if key in numbers and (not noun_key or noun_key in plurals):
            pos += 1
            if key in place:
                raise ValueError(f"shape states {key!r} twice: {shape.text!r}")
            place[key] = pos
    for key in numbers:
        masked[key] = NUM_TOKEN
        for noun_key, plural in plurals.items():
            masked[f"{key}_{noun_key}"] = f"{NUM_TOKEN} {plural}"
    skeleton = shape.text.format(**masked)
    try:
        slot_equation = shape.equation.format(**{k: f"n{i}" for k, i in place.items()})
    except KeyError as exc:
        raise ValueError(f"equation uses {exc} not stated in {shape.text!r}") from exc
    return skeleton, slot_equation


def generate_templates(
    *, n: int, seed: int, topics: tuple[str, ...] = TOPIC_NAMES, max_tries_factor: int = 20
) -> list[TemplateProblem]:
    """``n`` distinct template problems, balanced over ``topics``, deterministic for ``seed``.

    Raises ValueError when ``topics`` names an unknown topic or ``n`` distinct problems cannot be
    drawn (the vocabulary is far larger than any sensible ``n``, so this signals a bad config).
    """
    by_name = {t.name: t for t in TOPICS}
    unknown = [t for t in topics if t not in by_name]
    if unknown:
        raise ValueError(f"unknown template topic(s) {unknown}; allowed: {list(by_name)}")
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[TemplateProblem] = []
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > max_tries_factor * max(n, 1):
            raise ValueError(f"could only draw {len(out)} distinct problems of {n} requested")
        topic = by_name[topics[len(out) % len(topics)]]
        shape = rng.choice(topic.shapes)
        # the empty prefix as often as each grade (it was 1 in 5 before the wordings)
        grade = rng.randrange(len(GRADES) + 1)
        prefix = rng.choice(PREFIX_STYLES).format(g=GRADES[grade - 1]) if grade else ""
        level = level_of_prefix(prefix, rng)
        numbers = topic.sampler(rng, level)
        slots = _slots(rng, numbers)
        text, equation, keywords = render(shape, slots)
        if text in seen:
            continue
        seen.add(text)
        skeleton, slot_equation = render_skeleton(shape, slots, numbers)
        out.append(
            TemplateProblem(
                topic=topic.name,
                keywords=keywords,
                prompt_prefix=prefix,
                problem=text,
                equation=equation,
                answer=evaluate(equation),
                skeleton=skeleton,
                slot_equation=slot_equation,
            )
        )
    return out
