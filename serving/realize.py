"""Keyword slots: put requested nouns into training text as slots, and render them back.

A small model cannot copy an arbitrary noun through a 2,000-piece vocabulary, so (like the number
slots of :mod:`serving.prompt`) the decoder target refers to the i-th requested keyword by slot:
``<ki>`` for its singular, ``<kis>`` for its plural. :func:`delexicalize` builds such targets from
real text; :func:`realize` renders a decoded text for the keywords of the request, with the
inflection library ``inflect`` choosing plurals, singulars and ``a``/``an``; :func:`render_output`
is the one post-processing of a raw decoded string shared by evaluation, serving and the backend
export. Stdlib + inflect only (serving-reachable).

Rendering rules (docs/serving.md):
- ``<ki>`` -> singular, ``<kis>`` -> plural of keyword i; a count word decides over the slot: after
  ``1``/``one``/``a``/``an``/``each``/``every``/``another`` the singular, after another number
  (``3``, ``2.5``, ``1,000``) or ``two``.. / ``many`` / ``several`` / ``both`` the plural.
- ``a``/``an`` before any word but an acronym is chosen from the word that follows (``an hour``,
  ``a unicorn``, ``an 8``); training text always writes ``a`` before a slot.
- A slot index with no keyword (``<k5>`` for two keywords) stays in the text as written, so the
  ``unknown_token`` grammar check flags it: never a silent wrong word.
- Spaces that decoding puts around slot tokens are removed before punctuation; every sentence
  starts with a capital letter.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import inflect

from serving.prompt import TARGET_SEP, parse_target

MAX_SLOTS = 8  # <k1> .. <k8>, as many as serving.limits.MAX_KEYWORDS
SLOT_TOKENS: tuple[str, ...] = tuple(
    tok for i in range(1, MAX_SLOTS + 1) for tok in (f"<k{i}>", f"<k{i}s>")
)
"""Every keyword slot string, for the tokenizer's added (non-special) tokens."""

_SLOT = re.compile(r"<k(\d+)(s?)>")


def slot_guard(token_to_id: Callable[[str], int | None]) -> tuple[tuple[int, int], ...]:
    """(singular id, plural id) of each keyword slot the tokenizer knows.

    The prompt's marker of keyword i is its singular slot token ``<ki>`` (``serving.prompt``), so
    the singular id is also the marker to look for in a prompt. Empty when the tokenizer has no
    slot tokens (nothing to guard).
    """
    out = []
    for i in range(1, MAX_SLOTS + 1):
        sing, plural = token_to_id(f"<k{i}>"), token_to_id(f"<k{i}s>")
        if sing is not None and plural is not None and sing >= 0 and plural >= 0:
            out.append((int(sing), int(plural)))
    return tuple(out)


def banned_slot_ids(input_ids: Iterable[int], guard: Sequence[tuple[int, int]]) -> tuple[int, ...]:
    """Slot token ids a decoder must not write for this prompt: those of every keyword index
    whose marker is not in ``input_ids`` (a two-keyword request never gets ``<k3s>``).

    Why: a model trained on four-keyword requests wrote ``<k4s>`` for three keywords,
    a slot nothing can render. Every decoder (PyTorch evaluation, the ONNX loop serving drives,
    the one-file graph) applies this same rule, so their greedy ids stay equal.
    """
    present = set(int(i) for i in input_ids)
    return tuple(t for sing, plural in guard if sing not in present for t in (sing, plural))


_SPACES = re.compile(r"\s+")

# One engine per process: inflect's engine is stateless for these calls (no user definitions).
_ENGINE = inflect.engine()
_CLASSICAL = inflect.engine()
_CLASSICAL.classical(all=True)  # "cacti", "indices": extra spellings accepted when matching

# Singular nouns ending in -s that inflect's singular_noun would strip ("physics" -> "physic").
_INVARIANT = frozenset(
    {"physics", "mathematics", "maths", "economics", "gymnastics", "athletics", "measles"}
    # mass nouns a teacher may type: "learning about homework", never "homeworks"
    | {"homework", "housework", "information", "furniture", "equipment", "luggage", "baggage"}
    | {"advice", "knowledge", "music", "art", "rice", "flour", "sugar", "salt", "sand", "money"}
    | {"traffic", "weather", "research", "evidence", "clothing", "jewellery", "jewelry", "cash"}
    | {"garbage", "rubbish", "scenery", "bread", "butter", "cheese", "milk", "juice", "water"}
    # unit symbols: "102 cm", never "102 cms" (a requested "cm" was rendered "cms")
    | {"mm", "cm", "m", "km", "g", "kg", "mg", "ml", "l", "ft", "yd", "oz", "lb", "mph", "kph"}
)
# Count words that force the singular / the plural of a following slot.
_SINGULAR_CUES = frozenset({"1", "one", "a", "an", "each", "every", "another", "single"})
_PLURAL_TEXT = (
    "two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred "
    "hundreds thousand thousands dozen dozens many several both few these those <num>"
)
_PLURAL_WORDS = frozenset(_PLURAL_TEXT.split())
_NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?")
# Words after which 'a' is not an article ("side a is 5 cm").
_NOT_AFTER_ARTICLE = frozenset({"is", "and", "or", "of", "to", "was", "=", "+", "-", "*", "/"})
_ARTICLE = re.compile(r"(?<![\w'-])(an?|An?|AN?)(\s+)([^\s]+)")
_SENTENCE_START = re.compile(r"(^|[.?!]\s+)([a-z])")


class RealizeError(ValueError):
    """A keyword that cannot be inflected (empty, or not a string)."""


def _clean_keyword(keyword: str) -> str:
    if not isinstance(keyword, str):
        raise RealizeError(f"keyword: expected a string, got {type(keyword).__name__}")
    kw = _SPACES.sub(" ", keyword).strip()
    if not kw:
        raise RealizeError("keyword: must not be empty")
    return kw


def singular_of_plural(word: str) -> str | None:
    """The singular of lower-case ``word`` when ``word`` is a plural, else None.

    ``inflect.singular_noun`` strips an ``s`` from singular words too ("bus" -> "bu", "lens" ->
    "len"), so a word counts as plural only when inflect's singular pluralises back to it AND
    inflect does not know ``word`` as a singular: its own plural of ``word`` is the naive
    ``word + "s"`` ("boxes" -> "boxess"), not a real plural ("bus" -> "buses"). The classical
    engine is asked second, for Latin and Greek plurals ("cacti", "fungi", "indices").
    """
    if word in _INVARIANT or _ENGINE.plural_noun(word) != word + "s":
        return None
    for engine in (_ENGINE, _CLASSICAL):
        sing = engine.singular_noun(word)
        if sing and sing != word and engine.plural_noun(sing) == word:
            return str(sing)
    sing = _ENGINE.singular_noun(word)
    if sing and word == f"{sing}s" and sing.endswith("o"):
        return str(sing)  # inflect pluralises "nacho" as "nachoes": "nachos" is plural too
    return None


def _same_case(word: str, like: str) -> str:
    """``word`` in the case pattern of ``like`` (lower, Title or UPPER)."""
    if like.isupper() and len(like) > 1:
        return word.upper()
    if like[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


@functools.lru_cache(maxsize=4096)
def noun_forms(keyword: str) -> tuple[str, str]:
    """(singular, plural) of a keyword, via inflect; a multi-word keyword inflects its last word,
    and one of the form "X of Y" its X ("bags of flour" -> ("bag of flour", "bags of flour")).

    A keyword given in the plural maps to its singular ("boxes" -> ("box", "boxes")); singular
    words ending in -s stay singular ("bus" -> ("bus", "buses")); invariant nouns give the same
    word twice ("sheep", "news", "series"). The keyword's case is kept ("Apples" -> "Apple").
    """
    kw = _clean_keyword(keyword)
    counted, of, content = kw.partition(" of ")
    if of and counted and content:
        # "bags of flour", "a cup of tea": the bag is counted, not the flour
        one, many = noun_forms(counted)
        return f"{one} of {content}", f"{many} of {content}"
    head, _, last = kw.rpartition(" ")
    prefix = f"{head} " if head else ""
    low = last.lower()
    sing = singular_of_plural(low)
    if sing is not None:
        return prefix + _same_case(sing, last), kw
    if low in _INVARIANT or _ENGINE.singular_noun(low) == low:
        return kw, kw  # sheep, fish, news, series: inflect keeps them as they are
    return kw, prefix + _same_case(str(_ENGINE.plural_noun(low)), last)


def _match_forms(keyword: str) -> tuple[str, str, tuple[str, ...]]:
    """(singular, plural, extra plural spellings accepted when matching)."""
    sing, plural = noun_forms(keyword)
    counted, of, content = sing.partition(" of ")
    head, _, last = counted.rpartition(" ")
    prefix = f"{head} " if head else ""
    classical = prefix + str(_CLASSICAL.plural_noun(last)) + (f" of {content}" if of else "")
    # The keyword as typed counts too (a plural-looking singular the user meant as plural).
    extra = tuple(sorted({classical, _clean_keyword(keyword)} - {sing, plural}))
    return sing, plural, extra


def _phrase(form: str) -> str:
    """A regex for a (multi-word) form: any run of spaces between its words."""
    return r"\s+".join(re.escape(w) for w in form.split(" "))


def _prev_token(text: str, end: int) -> str:
    """The whitespace-delimited token just before position ``end`` (lower case, '' if none)."""
    before = text[:end].rstrip()
    return before.rsplit(None, 1)[-1].lower() if before else ""


def _count_cue(token: str) -> str | None:
    """'sing' / 'plural' when ``token`` is a count word that decides a noun's number."""
    if token in _SINGULAR_CUES:
        return "sing"
    if token in _PLURAL_WORDS:
        return "plural"
    if _NUMBER.fullmatch(token):
        return "plural" if token != "1" else "sing"
    return None


@functools.lru_cache(maxsize=1024)
def _delex_pattern(
    keywords: tuple[str, ...],
) -> tuple[re.Pattern[str], tuple[str, ...], dict[int, int]]:
    """(pattern, slot of each alternative, keyword index -> index of the keyword owning its
    forms). Longest forms first; a form two keywords share belongs to the earlier one."""
    alternatives: list[tuple[str, str, int]] = []  # (form, slot "i" / "is" / "i?", index)
    for i, kw in enumerate(keywords, start=1):
        sing, plural, extra = _match_forms(kw)
        if sing == plural:
            alternatives.append((sing, f"{i}?", i))
        else:
            alternatives.append((plural, f"{i}s", i))
            alternatives.append((sing, f"{i}", i))
        alternatives.extend((form, f"{i}s", i) for form in extra)
    owner: dict[str, int] = {}
    ordered: list[tuple[str, str]] = []
    for form, slot, i in sorted(alternatives, key=lambda a: (-len(a[0]), a[2])):
        if form.lower() not in owner:
            owner[form.lower()] = i
            ordered.append((form, slot))
    # a keyword whose forms all belong to an earlier one ("apple" after "apples") is found with it
    same = {
        i: min(owner[f.lower()] for f, _, j in alternatives if j == i)
        for i in range(1, len(keywords) + 1)
    }
    pattern = re.compile(
        "|".join(
            rf"(?P<g{j}>(?<![\w-]){_phrase(form)}(?![\w-]))" for j, (form, _) in enumerate(ordered)
        ),
        re.IGNORECASE,
    )
    return pattern, tuple(slot for _, slot in ordered), same


def delexicalize(text: str, keywords: Sequence[str]) -> str | None:
    """Replace each keyword (whole word, any inflection, any case) by its slot; None if one lacks.

    Plural forms become ``<kis>``, singular forms ``<ki>`` (an invariant noun after a number
    other than 1 becomes ``<kis>``); ``an`` before a slot becomes ``a`` (the realizer chooses).
    Longer keywords are matched first, so "ice cream" wins over "cream".
    """
    if isinstance(keywords, str):
        raise RealizeError("keywords: expected a sequence of strings, got one string")
    if len(keywords) > MAX_SLOTS:
        raise RealizeError(
            f"keywords: at most {MAX_SLOTS} keywords have slots, got {len(keywords)}"
        )
    if not keywords:
        return text
    pattern, slots, same = _delex_pattern(tuple(_clean_keyword(k) for k in keywords))
    found: set[int] = set()

    def to_slot(m: re.Match[str]) -> str:
        slot = slots[int(m.lastgroup[1:]) if m.lastgroup else 0]
        index = int(slot.rstrip("s?"))
        found.add(index)
        if slot.endswith("?"):
            plural = _count_cue(_prev_token(m.string, m.start())) == "plural"
            return f"<k{index}s>" if plural else f"<k{index}>"
        return f"<k{slot}>"

    out = pattern.sub(to_slot, text)
    if any(same[i] not in found for i in same):
        return None
    return re.sub(r"(?<![\w'-])([Aa])n(\s+<k\d+s?>)", r"\1\2", out)


@functools.lru_cache(maxsize=8192)  # pure; binding a request's skeletons asks ~90 times
def article_for(word: str) -> str:
    """'a' or 'an' before ``word`` (inflect's rules; numbers read aloud: 'an 8', 'an 11')."""
    core = word.strip("\"'()[],.;:!?")
    if not core:
        return "a"
    if core[0].isdigit():
        digits = re.match(r"[\d,]*", core)
        whole = (digits.group(0) if digits else "").replace(",", "")
        if not whole:
            return "a"
        lead = whole[: len(whole) % 3 or 3]
        return "an" if lead.startswith("8") or lead in ("11", "18") else "a"
    return str(_ENGINE.a(core)).split(" ", 1)[0]


def _fix_articles(text: str) -> str:
    def fix(m: re.Match[str]) -> str:
        article, space, word = m.group(1), m.group(2), m.group(3)
        core = word.strip("\"'()[],.;:!?")
        if word.lower() in _NOT_AFTER_ARTICLE or not word[0].isalnum():
            return m.group(0)
        if len(core) > 1 and core.isupper():
            return m.group(0)  # acronyms: inflect says "a SUV"; leave the model's choice
        want = article_for(word)
        if article.isupper() and len(article) > 1:
            want = want.upper()
        elif article[0].isupper():
            want = want.capitalize()
        return want + space + word

    return _ARTICLE.sub(fix, text)


def fix_spacing(text: str) -> str:
    """Collapse whitespace; no space before ``. , ; : ? !``, ``'s`` or ``)``, none after ``(``
    or after ``$`` before a number."""
    out = _SPACES.sub(" ", text).strip()
    out = re.sub(r"\s+([.,;:?!)])", r"\1", out)
    out = re.sub(r"\(\s+", "(", out)
    out = re.sub(r"\$\s+(?=\d|<num>)", "$", out)
    out = re.sub(r"(?<=\d|>)\s+%", "%", out)
    out = re.sub(r"(?<=\d|>)\s*/\s*(?=\d|<num>)", "/", out)
    out = re.sub(r"\s+'\s*s\b", "'s", out)
    return out


def _capitalize_sentences(text: str) -> str:
    return _SENTENCE_START.sub(lambda m: m.group(1) + m.group(2).upper(), text)


def realize(text: str, keywords: Sequence[str]) -> str:
    """Render the keyword slots of a decoded problem text (see the module doc for the rules)."""
    if isinstance(keywords, str):
        raise RealizeError("keywords: expected a sequence of strings, got one string")
    forms = [noun_forms(k) for k in keywords]
    spaced = _SPACES.sub(" ", text).strip()

    def render(m: re.Match[str]) -> str:
        i = int(m.group(1))
        if not 1 <= i <= len(forms):
            return m.group(0)  # unknown slot: left visible for the grammar check
        sing, plural = forms[i - 1]
        cue = _count_cue(_prev_token(m.string, m.start()))
        if cue is None:
            return plural if m.group(2) else sing
        return sing if cue == "sing" else plural

    out = _SLOT.sub(render, spaced)
    return _capitalize_sentences(_fix_unit_counts(_fix_articles(fix_spacing(out))))


# Counting words the model writes itself (time, length, mass, volume, money, people and groups):
# after the number 1 they are singular ("1 minutes" -> "1 minute"). Only that direction: after
# other numbers a singular is often a modifier ("6 child tickets", "a 3 minute walk"). Keyword
# slots agree by their own rule.
_UNIT_WORDS = [
    "second",
    "minute",
    "hour",
    "day",
    "night",
    "week",
    "month",
    "year",
    "page",
    "group",
    "piece",
    "friend",
    "step",
    "lap",
    "point",
    "dollar",
    "cent",
    "litre",
    "liter",
    "millilitre",
    "milliliter",
    "metre",
    "meter",
    "centimetre",
    "centimeter",
    "kilometre",
    "kilometer",
    "millimetre",
    "millimeter",
    "gram",
    "kilogram",
    "mile",
]
_UNIT_NOUNS: tuple[tuple[str, str], ...] = (
    *((w, w + "s") for w in _UNIT_WORDS),
    ("child", "children"),
    ("foot", "feet"),
    ("inch", "inches"),
)
_UNIT_FORMS: dict[str, tuple[str, str]] = {f: pair for pair in _UNIT_NOUNS for f in pair}
_NUMBER_UNIT = re.compile(
    r"(?<![\w.,-])(?P<pre>(?:\b[Aa]n? )?)(?P<num>\d+(?:\.\d+)?) (?P<unit>[A-Za-z]+)\b(?!-)"
)


def _fix_unit_counts(text: str) -> str:
    """A plural counting word right after the number 1 made singular ("1 minutes" -> "1 minute")."""

    def fix(m: re.Match[str]) -> str:
        unit = m.group("unit")
        pair = _UNIT_FORMS.get(unit.lower())
        if pair is None or m.group("pre") or float(m.group("num")) != 1:
            return m.group(0)
        want = pair[0]
        if unit[0].isupper():
            want = want.capitalize()
        return f"{m.group('num')} {want}"

    return _NUMBER_UNIT.sub(fix, text)


def leftover_tokens(text: str) -> tuple[str, ...]:
    """Angle-bracket tokens a typed render left (an unknown role or a name index past 3)."""
    return tuple(m.group(0) for m in re.finditer(r"<[a-z]+\d*(?::pl)?>", text))


def unresolved_slots(text: str) -> tuple[str, ...]:
    """Keyword slots still in ``text`` (after :func:`realize`: indices with no keyword)."""
    return tuple(m.group(0) for m in _SLOT.finditer(text))


def split_decoded(decoded: str) -> tuple[str, str | None, str]:
    """A decoded target as its renderers take it: (the problem's skeleton, its equation or None,
    the tail to put back after the rendered problem: ``" <sep> <equation part>"`` or ``""``).

    Both renderers (:func:`render_output`, ``serving.story.render_any``) draw the numbers for
    the problem from its equation, then re-join the rendered problem with the tail, so
    ``parse_target`` numbers the equation's slots over the text as it is served.
    """
    problem_raw, sep, rest = decoded.partition(TARGET_SEP)
    equation_raw = rest.partition(TARGET_SEP)[0].strip() if sep else ""
    return problem_raw, equation_raw or None, f" {TARGET_SEP} {rest}" if sep else ""


@dataclass(frozen=True)
class RenderedProblem:
    """A decoded string made presentable: text, rendered equation and what is wrong with it.

    ``complete`` is False when the problem does not end with a question (cut by ``max_length``
    or never asked); ``unresolved_slots`` lists slots that had no keyword to render.
    """

    problem_text: str
    equation_text: str | None
    complete: bool
    unresolved_slots: tuple[str, ...] = ()
    # typed roles (serving.story): who played what, and the keywords no role could take
    bindings: tuple[Any, ...] = ()
    keywords_unused: tuple[tuple[str, str], ...] = ()
    skeleton: str = ""


def render_output(
    decoded: str,
    keywords: Sequence[str],
    *,
    topic: str = "",
    prompt_prefix: str = "",
    seed: int = 0,
) -> RenderedProblem:
    """The one post-processing of a raw decoded string: number values, keyword slots, then the
    equation's number slots.

    The text's ``<num>`` slots get values first (``serving.numbers.fill_numbers``, drawn for the
    request's ``topic`` and grade, seeded by ``seed``), so a keyword slot agrees with the number
    before it; keyword slots are rendered next, so the equation's number slots ``n<i>`` are
    numbered over the realized problem text (a keyword slot's digit, as in ``<k2s>``, is not a
    number of the problem): build training targets with ``format_target`` on the lexical text,
    then :func:`delexicalize` them.
    """
    from serving.numbers import fill_numbers

    problem_raw, equation_raw, tail = split_decoded(decoded)
    filled = fill_numbers(
        problem_raw, equation_raw, topic=topic, prompt_prefix=prompt_prefix, seed=seed
    )
    problem_text, equation = parse_target(realize(filled, keywords) + tail)
    return RenderedProblem(
        problem_text=problem_text,
        equation_text=equation,
        complete=problem_text.endswith("?"),
        unresolved_slots=unresolved_slots(problem_text),
    )
