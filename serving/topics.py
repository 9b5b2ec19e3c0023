"""The generator's declared topics, their synonyms, and which equations fit each topic. Stdlib only.

A request names a topic the way a teacher would ("sums", "Times tables", "percent"); serving maps
it to one canonical topic before prompting (the model was trained on the canonical names only)
and answers 422 with this list for anything else, instead of a problem about something else.
``topic_fidelity`` (``metrics/generator.json``) is the share of generated problems whose equation
fits the requested topic (:func:`equation_fits_topic`).

``TEMPLATE_TOPICS`` must equal ``data.word_problems.templates.TOPIC_NAMES`` (a test checks it;
serving cannot import ``data``); ``CORPUS_TOPICS``, its last three, are the operation mixes
``data.word_problems.adapters.topic_from_equation`` labels real problems with. An artifact lists
the topics it was trained on in its manifest (``manifest["topics"]``); for an artifact without
that key serving assumes :data:`DEFAULT_TOPICS`, the 11 topics of the artifacts built before.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# What older artifacts were trained on, without the operation mixes below (and assumed for an
# artifact whose manifest lists no topics).
LEGACY_TOPICS: tuple[str, ...] = (
    "addition",
    "subtraction",
    "multiplication",
    "division",
    "fractions",
    "percentages",
    "speed",
    "money",
    "measurement",
    "area and perimeter",
    "time",
)
# The operation mixes data.word_problems.adapters.topic_from_equation labels real problems with;
# the templates write them too.
CORPUS_TOPICS: tuple[str, ...] = (
    "addition and subtraction",
    "multiplication and division",
    "mixed operations",
)
TEMPLATE_TOPICS: tuple[str, ...] = LEGACY_TOPICS + CORPUS_TOPICS
SUPPORTED_TOPICS: tuple[str, ...] = TEMPLATE_TOPICS
DEFAULT_TOPICS: tuple[str, ...] = LEGACY_TOPICS

# synonym -> canonical topic; keys are matched after normalisation (case, spaces, '&', '-', '_')
# and also in the singular ("Sums" finds "sum"). docs/serving.md prints this table.
SYNONYMS: dict[str, str] = {
    "add": "addition",
    "adding": "addition",
    "add up": "addition",
    "adding up": "addition",
    "sum": "addition",
    "plus": "addition",
    "subtract": "subtraction",
    "subtracting": "subtraction",
    "minus": "subtraction",
    "take away": "subtraction",
    "taking away": "subtraction",
    "difference": "subtraction",
    "multiply": "multiplication",
    "multiplying": "multiplication",
    "times": "multiplication",
    "times table": "multiplication",
    "multiplication table": "multiplication",
    "product": "multiplication",
    "divide": "division",
    "dividing": "division",
    "sharing": "division",
    "sharing equally": "division",
    "quotient": "division",
    "fraction": "fractions",
    "half": "fractions",
    "halves": "fractions",
    "parts of a whole": "fractions",
    "percent": "percentages",
    "per cent": "percentages",
    "percentage": "percentages",
    "%": "percentages",
    "speed distance time": "speed",
    "distance speed time": "speed",
    "distance and speed": "speed",
    "speed and distance": "speed",
    "velocity": "speed",
    "coin": "money",
    "shopping": "money",
    "price": "money",
    "cost": "money",
    "dollar": "money",
    "measure": "measurement",
    "measuring": "measurement",
    "length": "measurement",
    "mass": "measurement",
    "weight": "measurement",
    "capacity": "measurement",
    "unit": "measurement",
    "area": "area and perimeter",
    "perimeter": "area and perimeter",
    "perimeter and area": "area and perimeter",
    "area perimeter": "area and perimeter",
    "geometry": "area and perimeter",
    "shape": "area and perimeter",
    "telling time": "time",
    "elapsed time": "time",
    "clock": "time",
    "duration": "time",
    "hours and minutes": "time",
    "add and subtract": "addition and subtraction",
    "adding and subtracting": "addition and subtraction",
    "plus and minus": "addition and subtraction",
    "multiply and divide": "multiplication and division",
    "multiplying and dividing": "multiplication and division",
    "mixed": "mixed operations",
    "all operations": "mixed operations",
    "multi step": "mixed operations",
    "multistep": "mixed operations",
    "two step": "mixed operations",
    "order of operations": "mixed operations",
}

_NON_WORD = re.compile(r"[^a-z0-9% ]+")
_SPACES = re.compile(r"\s+")


def normalise_topic(name: str) -> str:
    """Lower case, '&' -> 'and', '-'/'_' -> space, other punctuation dropped, spaces collapsed."""
    text = name.lower().replace("&", " and ").replace("-", " ").replace("_", " ")
    return _SPACES.sub(" ", _NON_WORD.sub("", text)).strip()


def _singular_word(word: str) -> str:
    """A crude singular for plural tolerance ("sums" -> "sum", "quotients" -> "quotient")."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("ches", "shes", "xes", "sses")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _singular_key(key: str) -> str:
    return " ".join(_singular_word(w) for w in key.split(" "))


def _lookup_tables() -> tuple[dict[str, str], dict[str, str]]:
    """(exact table, singular table); a singular key two topics share stays exact-only."""
    exact = {normalise_topic(t): t for t in SUPPORTED_TOPICS}
    for synonym, topic in SYNONYMS.items():
        key = normalise_topic(synonym)
        if exact.get(key, topic) != topic:
            raise ValueError(f"synonym {synonym!r} maps to {topic!r} and {exact[key]!r}")
        exact[key] = topic
    singular: dict[str, str] = {}
    clashes: set[str] = set()
    for key, topic in exact.items():
        sing = _singular_key(key)
        if singular.get(sing, topic) != topic:
            clashes.add(sing)  # "times" (multiplication) vs "time": exact matches only
        singular[sing] = topic
    return exact, {k: v for k, v in singular.items() if k not in clashes}


_EXACT, _SINGULAR = _lookup_tables()


def canonical_topic(name: str, supported: Iterable[str] | None = None) -> str | None:
    """The canonical topic a request's ``name`` means, or None when it means none we serve.

    ``supported`` restricts the answer (an artifact's own topic list); a name that is itself in
    ``supported`` is accepted even if this module does not know it.
    """
    if not isinstance(name, str):
        return None
    key = normalise_topic(name)
    allowed = None if supported is None else {normalise_topic(t): t for t in supported}
    if allowed is not None and key in allowed:
        return allowed[key]
    topic = _EXACT.get(key) or _SINGULAR.get(_singular_key(key))
    if topic is None or (allowed is not None and normalise_topic(topic) not in allowed):
        return None
    return topic if allowed is None else allowed[normalise_topic(topic)]


def _word_forms(word: str, *, plural: bool) -> list[str]:
    """The spellings of one normalised word a request may use: itself, and with ``plural`` every
    word :func:`_singular_word` maps to it ("sum" -> sum, sums)."""
    if not plural:
        return [word]
    candidates = {word, word + "s", word + "es"}
    if word.endswith("y"):
        candidates.add(word[:-1] + "ies")
    return sorted(w for w in candidates if _singular_word(w) == word)


def _word_regex(forms: list[str]) -> str:
    # Any case, as normalise_topic lower-cases; letters only as [Aa] classes (JSON Schema
    # patterns have no case-insensitive flag, and str.lower() maps a few non-ASCII letters,
    # such as the Kelvin sign, to ASCII ones: those are refused, not guessed).
    def one(form: str) -> str:
        return "".join(f"[{c}{c.upper()}]" if c.isalpha() else re.escape(c) for c in form)

    alts = [one(f) for f in forms]
    return alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"


# Between two words: spaces, '-' or '_' (normalise_topic reads them as one space); "and" may
# also be written '&'.
_SEP = "[ _-]+"
_AND = "(?:[ _-]+[Aa][Nn][Dd][ _-]+|[ _-]*&[ _-]*)"


def _key_regex(key: str, *, plural: bool) -> str:
    words = key.split(" ")
    out = _word_regex(_word_forms(words[0], plural=plural))
    after_and = False
    for word in words[1:]:
        if word == "and":
            out += _AND
            after_and = True
            continue
        out += ("" if after_and else _SEP) + _word_regex(_word_forms(word, plural=plural))
        after_and = False
    return out


def topic_pattern(supported: Iterable[str]) -> str:
    """A regular expression (JSON Schema / ECMA-262 subset) matching exactly the topic names a
    request may use for ``supported``: each topic and synonym in any case, with '-', '_' or
    spaces between words, '&' for "and", plural or singular words where :func:`canonical_topic`
    reads them so, with spaces around. :func:`request_topic` accepts exactly these names, so the
    published schema and the server agree.
    """
    allowed = {normalise_topic(t) for t in supported}
    exact = allowed | {k for k, t in _EXACT.items() if normalise_topic(t) in allowed}
    singular = {k for k, t in _SINGULAR.items() if normalise_topic(t) in allowed}
    alts = sorted({_key_regex(k, plural=False) for k in exact if k})
    alts += sorted({_key_regex(k, plural=True) for k in singular if k} - set(alts))
    return "^ *(?:" + "|".join(alts) + ") *$"


@functools.lru_cache(maxsize=16)
def _compiled_pattern(supported: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(topic_pattern(supported))


def request_topic(name: str, supported: Iterable[str]) -> str | None:
    """The canonical topic of a request's topic name, or None: :func:`canonical_topic` for the
    names :func:`topic_pattern` publishes, None for the rest (stray punctuation such as
    "shopping*" or "fractions!" once read as a topic, and is not in the published schema)."""
    topics = tuple(supported)
    if not isinstance(name, str) or _compiled_pattern(topics).fullmatch(name) is None:
        return None
    return canonical_topic(name, topics)


def synonyms_for(topics: Iterable[str]) -> dict[str, str]:
    """The synonym table restricted to ``topics`` (what ``GET /api/v1/ai/models`` shows)."""
    keep = set(topics)
    return {s: t for s, t in SYNONYMS.items() if t in keep}


def artifact_topics(manifest: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The topics a generator artifact serves: ``manifest["topics"]``, else DEFAULT_TOPICS."""
    listed = (manifest or {}).get("topics")
    if isinstance(listed, list | tuple) and listed and all(isinstance(t, str) for t in listed):
        return tuple(listed)
    return DEFAULT_TOPICS


def unknown_topic_message(name: str, supported: Sequence[str]) -> str:
    """The one-line 422 message for a topic outside ``supported``."""
    return (
        f"unknown topic {name!r}; supported topics: {', '.join(supported)} "
        "(synonyms such as 'sums' -> addition or 'percent' -> percentages are accepted; "
        "GET /api/v1/ai/models lists them)"
    )


# ----------------------------------------------------------------------------- topic fidelity


@dataclass(frozen=True)
class TopicRule:
    """Which operators a topic's equation may use and must use, and words its text shows.

    ``allowed``: every operator of the equation is one of these. ``any_of``: at least one
    appears. ``all_of``: all appear. ``cue``: a pattern the problem text matches (checked only
    when the text is given).
    """

    allowed: frozenset[str]
    any_of: frozenset[str] = frozenset()
    all_of: frozenset[str] = frozenset()
    cue: str | None = None


_ALL = "+-*/^"
_UNITS = (
    r"mm|cm|m|km|g|kg|ml|l|litres?|liters?|metres?|meters?|grams?|kilograms?|millilitres?|"
    r"inch(?:es)?|feet|foot|ounces?|pounds?|miles?"
)


def _rule(allowed: str, any_of: str | None = None, cue: str | None = None) -> TopicRule:
    """A topic's rule from its operator characters. ``any_of`` defaults to ``allowed``: a topic
    asks for at least one of the operators it allows (an equation with none is no sum of it)."""
    return TopicRule(frozenset(allowed), frozenset(allowed if any_of is None else any_of), cue=cue)


# Read off the sentence shapes of data/word_problems/templates.py, topic by topic, then loosened
# where blind raters called a problem on topic that the rule refused: what is left of a journey
# ("150 - 4 * 21" is speed), the rest of a class after a fraction ("30 - 30 * 1 / 3"), a fence
# less its gate, and a division alone as "multiplication and division" (or a sum alone as
# "addition and subtraction": the pair names the maths the class is on, not both at once).
TOPIC_RULES: dict[str, TopicRule] = {
    "addition": _rule("+"),
    "subtraction": _rule("-"),
    "multiplication": _rule("*^"),
    "division": _rule("/"),
    # a/b of a quantity: '/' (or '*' by a decimal fraction, checked below)
    "fractions": _rule("*/+-", "*/", r"\d+\s*/\s*\d+|fraction|half|halves|third|quarter"),
    # p% of a: '*' or '/' with a 100 (or a decimal fraction, checked below)
    "percentages": _rule("*/+-", "*/", r"%|percent"),
    "speed": _rule(
        "*/+-", "*/", r"\bper\b|\bevery (?:minute|hour|second)\b|speed|\bkm\b|miles|mph"
    ),
    "money": _rule(
        _ALL, cue=r"\$|£|€|\bdollars?\b|\bcents?\b|\bprice|\bcosts?\b|\bmoney\b|\bspen[dt]|\bsav"
    ),
    "measurement": _rule(
        _ALL, cue=rf"\b(?:{_UNITS})\b|\btall\b|\blong\b|\bweigh|\bmass\b|\bheight"
    ),
    "area and perimeter": _rule(
        "*+/^-",
        "*/^",
        r"\barea\b|\bperimeter\b|\bsquare\b|\brectang|\bsides?\b|\bwide\b|\bfence\b|triang",
    ),
    "time": _rule(
        _ALL,
        cue=r"\b(?:minutes?|hours?|days?|weeks?|seconds?|nights?|months?|years?|laps?)\b|o'clock",
    ),
    "addition and subtraction": _rule("+-"),
    "multiplication and division": _rule("*/"),
    # a mix of both kinds (checked below), so no one operator is asked for
    "mixed operations": _rule(_ALL, any_of=""),
}

_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d*)?|\.\d+)|(\*\*|[-+*/^()×÷]))")


def _operators(equation: str) -> tuple[set[str], list[float]] | None:
    """(binary operators, number literals) of an equation; None if it is not plain arithmetic."""
    ops: set[str] = set()
    numbers: list[float] = []
    prev: str | None = None  # "n" after a number or ')', else the operator / '('
    pos = 0
    text = equation.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            if not text[pos:].strip():
                break
            return None
        pos = m.end()
        if m.group(1) is not None:
            numbers.append(float(m.group(1)))
            prev = "n"
            continue
        tok = {"**": "^", "×": "*", "÷": "/"}.get(m.group(2), m.group(2))
        if tok == ")":
            prev = "n"
        elif tok == "(":
            prev = "("
        else:
            if prev == "n":  # binary; a sign after an operator or '(' is unary
                ops.add(tok)
            prev = tok
    return ops, numbers


def topic_operations(topic: str) -> frozenset[str]:
    """The operators a topic's equation must use: at least one of them (both, for the
    two-operation corpus topics); empty for 'mixed operations' (any mix of two kinds)."""
    rule = TOPIC_RULES.get(topic)
    if rule is None:
        raise KeyError(f"unknown topic {topic!r}; allowed: {list(TOPIC_RULES)}")
    return rule.all_of or rule.any_of


def equation_fits_topic(topic: str, equation: str | None, problem: str | None = None) -> bool:
    """Does ``equation`` (numbers, not slots) use the operations ``topic`` implies?

    With ``problem`` the text must also show the topic (a unit, '$', '%', a fraction...), which
    tells a money problem from an area one when both multiply. An unknown topic, a missing or
    non-arithmetic equation never fits.
    """
    rule = TOPIC_RULES.get(topic)
    if rule is None or not equation:
        return False
    parsed = _operators(equation)
    if parsed is None:
        return False
    ops, numbers = parsed
    if not ops or not ops <= rule.allowed:
        return False
    if rule.any_of and not ops & rule.any_of:
        return False
    if rule.all_of and not rule.all_of <= ops:
        return False
    decimal_fraction = any(0 < x < 1 for x in numbers)
    if topic == "fractions" and "/" not in ops and not decimal_fraction:
        return False
    if topic == "percentages" and 100 not in numbers and not decimal_fraction:
        return False
    if topic == "mixed operations" and (ops <= {"+", "-"} or ops <= {"*", "/", "^"}):
        return False
    return problem is None or rule.cue is None or re.search(rule.cue, problem, re.I) is not None
