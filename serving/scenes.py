"""Scenes: when a keyword that fits no role of the maths can open the problem as its setting.

A place, an event, a time of day or a project may open a problem that names none of its own, as
a teacher would write "At the birthday party, ...", "On sports day, ...", "For the craft project,
...": raters count a bakery or an evening the problem leaves out as a keyword not used, and one
scene sentence is how a teacher would have put it. :func:`setting_phrase` says how a noun opens a
problem, :func:`allows_setting` whether a skeleton can take it (``serving.story.bind`` asks both).
Split from ``serving.story`` so the rules of a scene read on their own. Stdlib only.
"""

from __future__ import annotations

import re

from serving.lexicon import NounInfo
from serving.realize import noun_forms

_TOKEN_OR_TEXT = re.compile(r"<[a-z]+[0-9]?(?::pl)?>")


def literal_text(skeleton: str) -> str:
    """The skeleton without its tokens (what it says in words)."""
    return _TOKEN_OR_TEXT.sub(" ", skeleton)


SETTING = "setting"
"""The binding of a keyword that sets the scene: "At the bakery, ...", "In the evening, ..."."""

# A place, an event or a time of day may open a problem that names no place or time of its
# own (as a teacher would write "At the birthday party, ..."): raters count a bakery or an evening
# that the problem leaves out as a keyword not used, and one scene sentence is how a teacher
# would have put it. One setting per problem; never for a skeleton that already has a scene.
_SCENE_TOKENS = re.compile(r"<(?:place|store|event|route|vehicle)\d?(?::pl)?>")
_SCENE_WORDS = re.compile(
    r"\b(?:garden|school|zoo|pond|farm|warehouse|orchard|market|stall|shop|store|lake|coast|"
    r"beach|city|town|hall|playground|park|library|museum|cinema|class|classroom|kitchen|field|"
    r"pool|trip|journey|race|game|match|tournament|marathon|party|fair|concert|sale|camp|camping|"
    r"bakery|cafe|station|club|restaurant|theatre|stadium|gym|bus|train|car|plane|airport|"
    r"bedroom|room|garage|shed|office|studio)s?\b",
    re.I,
)
_TIME_WORDS = re.compile(
    r"\b(?:morning|afternoon|evening|night|day|days|week|weekend|monday|tuesday|wednesday|"
    r"thursday|friday|saturday|sunday|holiday|holidays|lunch|lunchtime|am|pm|o'clock|"
    r"today|tomorrow|yesterday)\b|\d:\d|<num>\s*:",
    re.I,
)
_OPENER = re.compile(r"^(?:at|in|on|for|during|after|before|when|last|this|every)\b", re.I)
_PERSON_FIRST = re.compile(
    r"^(?:<name\d?>|(?:<num>|\d+|an?|the) <(?:people|mover|animal)\d?(?::pl)?>"
    r"|<people\d?(?::pl)?>)",
    re.I,
)
# a problem that opens on one of its roles ("Maya ...", "A <cont> held ..."), not on nouns of
# its own ("a bag of food for the goats", "a square has 4 sides"), can take a scene
_ROLE_FIRST = re.compile(r"^(?:(?:<num>|\d+|an?|the)\s+)?<[a-z]+\d?(?::pl)?>", re.I)
_GOODS = re.compile(r"<(?:thing|food)\d?(?::pl)?>")
_ON_EVENTS = frozenset(
    {"trip", "journey", "holiday", "outing", "visit", "ride", "walk", "hike", "tour", "excursion"}
    | {"climb", "drive"}
)
_IN_TIMES = frozenset({"morning", "afternoon", "evening"})
# times named without an article: "At sunrise", "At dusk"
_AT_TIMES = frozenset({"sunrise", "sunset", "dawn", "dusk", "midnight", "noon"})
# times that can be a scene; a unit of time ("minutes", "hours") never is ("During the minutes")
_SCENE_TIMES = (
    _IN_TIMES
    | {
        "night",
        "weekend",
        "day",
        "break",
        "lunchtime",
        "playtime",
        "holiday",
        "holidays",
        "summer",
        "winter",
        "spring",
        "autumn",
        "term",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    }
    | _AT_TIMES
)
_ON_PLACES = frozenset(
    {"floor", "pitch", "court", "beach", "farm", "island", "track", "stage", "lawn", "field"}
)

_IN_PLACES = frozenset(
    {
        "classroom",
        "kitchen",
        "bedroom",
        "room",
        "hall",
        "garden",
        "forest",
        "woods",
        "gym",
        "class",
        "playground",
        "field",
        "city",
        "town",
        "village",
        "countryside",
        "yard",
    }
)
# work a problem's people do something for: "For the school survey, Maya asks ..."
_FOR_HEADS = frozenset(
    {"project", "survey", "experiment", "assignment", "challenge", "display", "collection"}
)
_MEALS = frozenset({"breakfast", "lunch", "dinner", "tea", "supper", "lunchtime"})
_WEEKDAYS = frozenset(
    {"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}
)


def setting_phrase(info: NounInfo) -> str | None:
    """The opening phrase that makes ``info``'s keyword the scene, or None for a noun that
    cannot be one (a thing, a person, a food): "At the bakery", "On the school trip",
    "In the evening", "During the school day", "On the motorway"."""
    if info.proper or not info.known:
        return None
    kw = " ".join(info.keyword.split())
    head = noun_forms(kw)[0].lower().rsplit(" ", 1)[-1]
    classes = info.classes
    named = info.typed_capitalised and " " not in kw
    if named and classes & {"event", "time"} and head not in _WEEKDAYS:
        # a festival is named, not counted: "At Diwali", "During Ramadan"
        return f"At {kw}" if "event" in classes else f"During {kw}"
    if named and "place" in classes:
        return f"In {kw}"  # a town or a country: "In Edinburgh"
    if "route" in classes:
        return f"On the {kw}"
    if "event" in classes:
        if kw.lower() == "sports day" or head in _WEEKDAYS:
            return f"On {kw}"
        if kw.lower() in _MEALS:
            return f"At {kw}"  # "At lunch", not "At the lunch"
        return f"On the {kw}" if head in _ON_EVENTS else f"At the {kw}"
    if classes & {"place", "store"} and not classes & {"person", "food", "animal"}:
        if head in _ON_PLACES:
            return f"On the {kw}"
        return f"In the {kw}" if head in _IN_PLACES else f"At the {kw}"
    if head in _FOR_HEADS and classes & {"activity", "abstract", "event"}:
        return f"For the {kw}"  # "For the craft project, Maya cuts ..."
    if "time" in classes and info.primary == "time" and head in _SCENE_TIMES:
        if head in _IN_TIMES:
            return f"In the {kw}"
        if head == "night":
            return "At night"
        if kw.lower() in _AT_TIMES:
            return f"At {kw.lower()}"
        if head == "weekend":
            return f"At the {kw}"
        if head in _WEEKDAYS:
            return f"On {kw[:1].upper()}{kw[1:]}"
        if head == "day" and " " not in kw:  # "During the day" says nothing
            return None
        return f"During the {kw}"
    return None


def allows_setting(skeleton: str, info: NounInfo) -> bool:
    """Whether ``skeleton`` can take ``info``'s keyword as its scene: it opens without a scene
    of its own ("At the fair, ..."), names no place, event or vehicle, and, for a time of day,
    no clock time or day of its own."""
    text = " ".join(skeleton.split())
    words = literal_text(text)
    phrase_of = setting_phrase(info) or ""
    if _OPENER.match(text) or _SCENE_TOKENS.search(text):
        return False
    if ("event" in info.classes or phrase_of.startswith("For ")) and not _PERSON_FIRST.match(text):
        # "On the school trip, a picture book has 4 pages" reads as nonsense: an occasion is
        # a scene only for a problem whose people act in it ("At the fair, Maya buys ...")
        return False
    if "store" in info.classes and not _GOODS.search(text):
        # "At the toy shop, Ben buys a pair of sneakers": a shop is a scene only where the
        # goods are roles, which the shop's own pool fills (``serving.roles.SCENE_POOLS``)
        return False
    if not _ROLE_FIRST.match(text):
        # "At the lemonade stand, a bag of food for the goats costs $10": a scene opens a
        # problem about its own roles, not one written about nouns of its own
        return False
    phrase = setting_phrase(info) or ""
    if phrase.startswith(("In the", "At night", "During", "On ")) and "time" in info.classes:
        return not _TIME_WORDS.search(text)
    if info.keyword.lower() in _MEALS and _TIME_WORDS.search(text):
        return False  # "At lunch, Lena's summer holiday lasts 2 weeks"
    return not _SCENE_WORDS.search(words)


def open_with(text: str, phrase: str, skeleton: str) -> str:
    """``text`` opened by ``phrase``: the first word loses its capital unless it is a name."""
    first = skeleton.lstrip()
    keep = first.startswith("<name") or first[:1].isdigit() or first.startswith("<num>")
    body = text if keep or not text[:1].isupper() else text[:1].lower() + text[1:]
    return f"{phrase}, {body}"
