"""Typed roles: the noun positions of a word-problem skeleton and which nouns may fill them.

One definition shared by the corpus builder (training targets), the realizer (serving, metrics,
the backend drop-in) and the checks. Stdlib only (serving-reachable).

Why: a keyword slot without a type let any noun land in any position ("A cookie held 18 jars").
Every noun position of a skeleton now names its role (``<cont>``, ``<food:pl>``), the lexicon
gives every noun its semantic classes (``serving.lexicon``), and a keyword may fill a role only
when one of its classes is one the role accepts. Names, pronouns and the nouns nobody asked for
are roles too, filled once per problem from pools, so the person and the items a question asks
about are the ones the problem introduced.

A role token in decoded text is ``<role>`` / ``<role:pl>`` (first instance) or ``<role2>`` /
``<role2:pl>`` (a second, different noun of the same role). Names are ``<name>``, ``<name2>``,
``<name3>``; pronouns ``<he>`` ``<him>`` ``<his>`` refer to ``<name>``, ``<he2>`` ``<him2>``
``<his2>`` to ``<name2>``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from serving.role_pools import CONTENTS, HOLDERS, SCENE_POOLS
from serving.role_pools import pool as _pool

_V = TypeVar("_V")


@dataclass(frozen=True)
class Role:
    """A noun position: the classes a filler may have, whether it must be countable, the pool
    of everyday nouns (singular, plural) it takes when no keyword fills it, and a gloss."""

    name: str
    accepts: frozenset[str]
    countable: bool | None  # True: count nouns only; False: mass nouns only; None: either
    pool: tuple[tuple[str, str], ...]
    gloss: str
    rejects: frozenset[str] = frozenset()  # classes that rule a noun out (liquids are not stuff)


ROLES: tuple[Role, ...] = (
    Role(
        "thing",
        frozenset({"object", "food", "plant", "clothing", "toy", "panel"}),
        True,
        _pool(
            "sticker",
            "marble",
            "pencil",
            "card",
            "shell",
            "crayon",
            "bead",
            "stamp",
            "button",
            "balloon",
            "badge",
            "ribbon",
        ),
        "a countable thing a child can hold, collect, give, buy or count",
        # a cinema or a fair is not a thing to hold, nor a tent (serving.lexicon.LARGE)
        frozenset({"place", "event", "person", "large"}),
    ),
    Role(
        "food",
        frozenset({"food"}),
        True,
        _pool(
            "apple",
            "cookie",
            "muffin",
            "cupcake",
            "orange",
            "egg",
            "strawberry/strawberries",
            "banana",
            "sandwich/sandwiches",
            "pear",
        ),
        "a countable food that is eaten, baked, picked or packed",
    ),
    Role(
        "animal",
        frozenset({"animal"}),
        None,
        _pool("duck", "rabbit", "chicken", "sheep/sheep", "goat", "bird", "horse", "cow"),
        "an animal",
    ),
    Role(
        "cont",
        frozenset({"container"}),
        True,
        _pool("box/boxes", "bag", "basket", "crate"),
        "a container that holds things or liquid",
    ),
    Role(
        "people",
        frozenset({"person"}),
        True,
        # visitors, guests and players belong to a scene: "shares the cookies among 3
        # visitors" and "20 players sign up for the picnic" read oddly
        _pool("child/children", "student", "friend"),
        "people (a common noun: students, passengers, players)",
    ),
    Role(
        "vehicle",
        frozenset({"vehicle"}),
        True,
        _pool("bus/buses", "train", "car", "boat", "van", "truck"),
        "a vehicle that carries people or things",
    ),
    Role(
        "mover",
        frozenset({"vehicle", "animal", "person"}),
        True,
        _pool("car", "train", "cyclist", "bus/buses", "runner", "horse"),
        "anything that travels by itself: a vehicle, an animal or a person",
    ),
    Role(
        "place",
        frozenset({"place", "store"}),
        None,
        _pool("park", "town square"),
        "a place or building people visit or where things are",
        frozenset({"stall"}),  # nobody takes the train to a lemonade stand
    ),
    Role(
        "store",
        frozenset({"store"}),
        True,
        _pool("shop", "market"),
        "a shop or market where things are bought",
    ),
    Role(
        "event",
        frozenset({"event"}),
        True,
        _pool("school fair", "party/parties", "picnic", "concert", "sports day"),
        "an event or occasion (party, fair, game, trip)",
    ),
    Role(
        "liquid",
        frozenset({"liquid"}),
        False,
        _pool("water/water", "juice/juice", "milk/milk", "lemonade/lemonade"),
        "a liquid measured in litres or millilitres",
    ),
    Role(
        "stuff",
        frozenset({"substance", "food"}),
        False,
        _pool("flour/flour", "rice/rice", "sand/sand", "sugar/sugar", "soil/soil"),
        "a dry substance measured by mass (kg, g)",
        frozenset({"liquid"}),
    ),
    Role(
        "strip",
        frozenset({"strip"}),
        True,
        _pool("ribbon", "rope", "piece of string/pieces of string", "wire", "plank", "pipe"),
        "a long thin thing measured by length (ribbon, rope, plank)",
    ),
    Role(
        "area",
        frozenset({"surface"}),
        True,
        _pool("garden", "field", "playground", "patio", "yard", "lawn"),
        "a flat area measured in metres (garden, field, floor, rug)",
    ),
    Role(
        "panel",
        frozenset({"panel"}),
        True,
        _pool("photo", "tile", "card", "poster", "window", "napkin"),
        "a small flat object measured in centimetres (photo, tile, frame)",
    ),
    Role(
        "activity",
        frozenset({"activity"}),
        None,
        _pool(
            "homework/homework",
            "piano practice/piano practice",
            "reading/reading",
            "drawing/drawing",
        ),
        "an activity or lesson that takes time",
    ),
    Role(
        "route",
        frozenset({"route"}),
        True,
        _pool("road", "path", "track", "trail"),
        "a road, path, track or trail travelled along",
    ),
    Role(
        "big",
        frozenset({"large"}),
        True,
        _pool("table", "bench/benches", "tent"),
        "a large thing that is set up, hired or filled with people (tent, table, bench)",
    ),
    # Keyword-only roles (no pool): a noun the skeleton is written around, which only a
    # teacher's keyword can be. "13 frogs on the lily pads" and "a delivery van carries 40
    # parcels" host a second keyword that no everyday noun could stand in for: "13 frogs on the
    # stickers" is what a pool noun would write. ``serving.constrain`` offers such a skeleton
    # only to a request whose keyword plays the role.
    Role(
        "spot",
        # leaves, branches and lily pads: a rated "72 minibeasts sit on 6 magnifying glasses"
        # showed that an object is seldom a place where animals sit
        frozenset({"plant"}),
        None,
        (),
        "where animals sit, perch or gather: a keyword only (lily pads, a bird feeder)",
        frozenset({"person", "event", "place", "food", "clothing", "toy"}),
    ),
    Role(
        "cargo",
        frozenset({"object", "food", "toy", "container", "clothing"}),
        True,
        (),
        "what a vehicle carries or delivers: a keyword only (parcels, crates)",
        frozenset({"person", "place", "event", "animal"}),
    ),
    Role(
        "tile",
        frozenset({"panel", "shape"}),  # not any object: "480 tablets to cover a field"
        True,
        (),
        "the pieces that cover a flat area: a keyword only (paving slabs, fabric squares)",
        frozenset({"person", "place", "event", "large", "food", "container"}),
    ),
)
ROLE_BY_NAME: dict[str, Role] = {r.name: r for r in ROLES}
ROLE_NAMES: tuple[str, ...] = tuple(r.name for r in ROLES)


def scene_pools(words: Sequence[str]) -> dict[str, tuple[tuple[str, str], ...]]:
    """The pools, role by role, that the scene words of a problem set (:data:`SCENE_POOLS`):
    each word is looked up whole, then by its head; the first word to set a role wins."""
    out: dict[str, tuple[tuple[str, str], ...]] = {}
    for w in words:
        for role, pool in (_lookup(SCENE_POOLS, w) or {}).items():
            out.setdefault(role, pool)
    return out


def _lookup(table: Mapping[str, _V], noun: str) -> _V | None:
    """``table``'s entry for ``noun`` (any case and spacing), else for its head, else None."""
    key = " ".join(noun.lower().split())
    for k in (key, key.rsplit(" ", 1)[-1]):
        if k in table:
            return table[k]
    return None


def contents_of(container: str) -> tuple[tuple[str, str], ...]:
    """The everyday contents of ``container`` (singular; a phrase, else its head), () if none."""
    return _lookup(CONTENTS, container) or ()


def holders_of(thing: str) -> tuple[tuple[str, str], ...]:
    """The everyday holders of ``thing`` (singular; a phrase, else its head), () if none."""
    return _lookup(HOLDERS, thing) or ()


MAX_INSTANCES = 2  # <thing>, <thing2>
MAX_NAMES = 3
PRONOUNS = ("he", "him", "his")

# (name, subject, object, possessive pronoun)
NAMES: tuple[tuple[str, str, str, str], ...] = (
    ("Maya", "she", "her", "her"),
    ("Liam", "he", "him", "his"),
    ("Aisha", "she", "her", "her"),
    ("Noah", "he", "him", "his"),
    ("Sofia", "she", "her", "her"),
    ("Kenji", "he", "him", "his"),
    ("Priya", "she", "her", "her"),
    ("Mateo", "he", "him", "his"),
    ("Emma", "she", "her", "her"),
    ("Omar", "he", "him", "his"),
    ("Lena", "she", "her", "her"),
    ("Tom", "he", "him", "his"),
    ("Zara", "she", "her", "her"),
    ("Diego", "he", "him", "his"),
    ("Chloe", "she", "her", "her"),
    ("Samir", "he", "him", "his"),
    ("Hana", "she", "her", "her"),
    ("Lucas", "he", "him", "his"),
    ("Grace", "she", "her", "her"),
    ("Ben", "he", "him", "his"),
)


# Names a teacher may type that the pool does not draw: their pronouns, so "Sophie gives 1/4 of
# them to her friend" rather than "... to Sophie's friend". A name in neither list is repeated.
_SHE = (
    "Sophie Sophia Olivia Amelia Isla Ava Mia Ella Lily Emily Isabella Poppy Freya Evie Ruby "
    "Daisy Alice Florence Willow Rosie Phoebe Evelyn Harper Matilda Elsie Ivy Jessica Chloe "
    "Charlotte Ellie Zoe Zoey Anna Hannah Sarah Leah Lucy Katie Amy Laura Julia Nora Layla "
    "Fatima Amira Maryam Aaliyah Nia Imani Mei Yuki Sakura Ananya Diya Saanvi Ines Lucia Elena "
    "Maria Rosa Carmen Abigail Madison Avery Ella Scarlett Victoria Grace Naomi Beth Megan Holly "
    "Jasmine Kayla Molly Tia Sara Lara Nina Eva Emilia Esme Imogen Martha Sydney Chelsea Georgia "
    "Savannah Brooklyn India Asia Sierra Adelaide Regina Lourdes"
)
_HE = (
    "Leo Oliver George Harry Jack Charlie Jacob Oscar James William Henry Alfie Freddie Archie "
    "Theo Arthur Thomas Joshua Ethan Isaac Max Finn Mason Logan Elijah Daniel Samuel Joseph "
    "Adam Ali Ahmed Hamza Yusuf Ibrahim Musa Kwame Kofi Jamal Raj Arjun Rohan Aarav Hiro Kenta "
    "Wei Jun Carlos Javier Pablo Luis Marco Luca Matteo Felix Hugo Ryan Dylan Tyler Nathan "
    "Aiden Caleb Owen Luke Sam Ben Tom Alex Jake Peter Paul David Michael Chris Kai Zain Omar "
    "Jordan Austin Dallas Devon Lincoln Orlando Kent Denver Cairo"
)
NAME_PRONOUNS: dict[str, tuple[str, str, str]] = {
    **{n.lower(): ("she", "her", "her") for n in _SHE.split()},
    **{n.lower(): ("he", "him", "his") for n in _HE.split()},
    **{n[0].lower(): n[1:] for n in NAMES},
}


def _suffix(i: int) -> str:
    return "" if i == 1 else str(i)


def role_tokens() -> tuple[str, ...]:
    """Every role, name and pronoun token, for the tokenizer's added tokens."""
    out = []
    for r in ROLES:
        for i in range(1, MAX_INSTANCES + 1):
            out += [f"<{r.name}{_suffix(i)}>", f"<{r.name}{_suffix(i)}:pl>"]
    for i in range(1, MAX_NAMES + 1):
        out.append(f"<name{_suffix(i)}>")
    for i in range(1, 3):
        out += [f"<{p}{_suffix(i)}>" for p in PRONOUNS]
    return tuple(out)


ROLE_TOKEN = re.compile(r"<(?P<role>" + "|".join(ROLE_NAMES) + r")(?P<inst>[2-9]?)(?P<pl>:pl)?>")
NAME_TOKEN = re.compile(r"<name(?P<inst>[2-9]?)>")
PRONOUN_TOKEN = re.compile(r"<(?P<p>he|him|his)(?P<inst>[2-9]?)>")


@dataclass(frozen=True)
class Instance:
    """One role instance of a text: ``("cont", 1)`` for ``<cont>`` and ``<cont:pl>``."""

    role: str
    index: int

    @property
    def key(self) -> str:
        return f"{self.role}{_suffix(self.index)}"


def instances(text: str) -> tuple[Instance, ...]:
    """Role instances of a skeleton text in order of first appearance."""
    seen: dict[str, Instance] = {}
    for m in ROLE_TOKEN.finditer(text):
        inst = Instance(m.group("role"), int(m.group("inst") or 1))
        seen.setdefault(inst.key, inst)
    return tuple(seen.values())


def names_used(text: str) -> tuple[int, ...]:
    """Name indices a text uses (by ``<nameN>`` or by its pronouns), sorted."""
    out = {int(m.group("inst") or 1) for m in NAME_TOKEN.finditer(text)}
    out |= {int(m.group("inst") or 1) for m in PRONOUN_TOKEN.finditer(text)}
    return tuple(sorted(out))


def fits(classes: frozenset[str] | set[str], countable: bool | None, role: str) -> bool:
    """Whether a noun with ``classes`` (and countability) may fill ``role``."""
    r = ROLE_BY_NAME[role]
    if not (set(classes) & r.accepts) or set(classes) & r.rejects:
        return False
    if r.countable is None or countable is None:
        return True
    return r.countable == countable


# What a typed-role model carries beside its tokenizer, from prepare_text to the artifact and the
# backend drop-in: the noun lexicon (serving.lexicon), the trained role plans (serving.planner)
# and the skeleton bank for constrained decoding (serving.constrain). Named here, the lightest
# module that knows the typed roles, so packaging and quantization need not import the realizer.
LEXICON_FILE = "nouns.tsv"
PLANS_FILE = "plans.json"
SKELETONS_FILE = "skeletons.json"
TYPED_FILES = (LEXICON_FILE, PLANS_FILE, SKELETONS_FILE)

WORD_LABEL = "word"  # a keyword no role takes: the problem may still write it ("profit")
NAME_LABEL = "name"


KEYWORD_ONLY = frozenset(r.name for r in ROLES if not r.pool)
"""Roles only a keyword plays (no pool): a skeleton with one unbound is never decoded."""


def fill_pool(role: str) -> tuple[tuple[str, str], ...]:
    """The pool of ``role``; a keyword-only role borrows the thing's, for a text that must be
    rendered all the same (a training record, a free decode)."""
    return ROLE_BY_NAME[role].pool or ROLE_BY_NAME["thing"].pool


def role_options(classes: frozenset[str] | set[str], countable: bool | None) -> list[str]:
    """Roles a noun may fill, the most specific first (a bakery is a store before a place),
    keyword-only roles last: a noun is asked to be the spot or the cargo only when nothing
    else fits."""
    fitting = [r for r in ROLES if fits(classes, countable, r.name)]
    return [
        r.name for r in sorted(fitting, key=lambda r: (not r.pool, len(r.accepts), ROLES.index(r)))
    ]


def plan_roles(nouns: Sequence[Any], attempt: int = 0) -> list[str]:
    """The prompt label of each keyword for decoding attempt ``attempt``: the role the model
    is asked to give it (``serving.prompt``), ``name`` for a person's name, ``word`` when no
    role takes it. Attempt 0 asks for every keyword's most specific role; later attempts walk
    through the other combinations, so a retry asks for a different problem."""
    options = []
    for n in nouns:
        if getattr(n, "proper", False):
            options.append([NAME_LABEL])
        else:
            # last, any keyword may be asked for as a word the problem writes ("wheels")
            opts = role_options(n.classes, None if not n.known else not n.mass)
            options.append([*opts, WORD_LABEL])
    out = []
    rest = attempt
    for opts in options:
        out.append(opts[rest % len(opts)])
        rest //= len(opts)
    return out


_FOODS = frozenset(
    {"egg", "sandwich", "apple", "orange", "cookie", "sweet", "biscuit", "bun", "muffin"}
    | {"cupcake", "potato", "yogurt"}
)


_EATEN = re.compile(r"\b(?:eat|eats|ate|eaten|bake|bakes|baked|cook|cooks|cooked)\b", re.I)


DRINKS = frozenset({"water", "milk", "juice", "lemonade"})
_MONEY = frozenset({"coin", "jewel"})
_BOUGHT = re.compile(r"\b(?:spen[dt]s?|buys?|bought|pays? for|paid for)\b[^.?!]*<thing", re.I)


def paired_pools(
    forms: Mapping[str, tuple[str, str]], skeleton: str = "", literal: str = ""
) -> dict[str, Sequence[tuple[str, str]]]:
    """Pools for the roles still to fill that go with a keyword already cast: the contents of
    a container (seed trays hold seeds, even where the skeleton calls its contents food, as
    long as nobody eats or bakes them), the holders of a thing (eggs go in egg boxes).
    ``skeleton`` is the skeleton with its role tokens, ``literal`` its own words only."""
    out: dict[str, Sequence[tuple[str, str]]] = {}
    for key, (sing, _plural) in forms.items():
        role = key.rstrip("0123456789")
        if role in ("cont", "literal"):
            inside = contents_of(sing)
            if inside and {p[0] for p in inside} <= _MONEY and _BOUGHT.search(skeleton):
                continue  # a piggy bank holds coins, and nobody spends its money on coins
            if inside and {p[0] for p in inside} <= DRINKS:
                out.setdefault("liquid", inside)  # water bottles hold water
            elif inside:
                out.setdefault("thing", inside)
                foods = [p for p in inside if p[0].rsplit(" ", 1)[-1] in _FOODS]
                if foods:
                    out.setdefault("food", foods)
                elif not _EATEN.search(literal):
                    out.setdefault("food", inside)
        elif role in ("thing", "food"):
            holders = holders_of(sing)
            if holders:
                out.setdefault("cont", holders)
    return out
