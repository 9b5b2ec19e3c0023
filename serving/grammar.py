"""Surface defects of a generated word problem, one definition for the metric and for serving.

``grammar_defect_rate`` in ``metrics/generator.json`` is the share of outputs for which
:func:`grammar_defects` is not empty. The checks are deliberately conservative (a clean template
problem must never be flagged) and name one of five classes:

- ``doubled_word``: the same word, or the same two/three-word phrase, twice in a row
  ("A boxes boxes held"); "had had" and "that that" are English.
- ``article``: ``a``/``an`` wrong for the next word ("a apple", "an unicorn"; ``inflect``'s rules,
  numbers read aloud: "an 8") or before a plural noun ("A boxes held").
- ``number_agreement``: a count and its noun disagree ("1 apples", "3 apple"). The noun is the
  word right after the count; its number is known for the request's keywords (both forms), for
  a short list of nouns common in school problems, and, for "1 <word>", when inflect reads the
  word as a regular plural. Adjectives in between ("3 red apple") are not inspected.
- ``question``: the text does not end with exactly one question sentence ending in ``?`` that
  starts with a question word or auxiliary (after an optional introductory clause: "At the same
  speed, how far ..."), or the question repeats its auxiliary ("How many dollars do 3 yo-yos
  does he have?").
- ``unknown_token``: a leftover slot (``<k3>``, ``n2``), a tokenizer marker (``<unk>``, ``</s>``,
  ``▁``, ``|||``), a stray ``<``, ``>`` or ``|`` (a cut separator: "to||"), a control or
  replacement character, or a token with no letter or digit other than a dash, ``+``, ``=``,
  ``&``, ``×``, ``÷``.
Stdlib + inflect (through :mod:`serving.realize`), serving-reachable.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Sequence

from serving.realize import article_for, noun_forms, singular_of_plural


def _words(text: str) -> frozenset[str]:
    """A word set written as one space-separated string (long lists stay readable)."""
    return frozenset(text.split())


DEFECT_CLASSES: tuple[str, ...] = (
    "doubled_word",
    "article",
    "number_agreement",
    "question",
    "unknown_token",
)

_WORD = re.compile(r"[A-Za-z]+(?:['-][A-Za-z]+)*")
_DOUBLING_OK = frozenset({"had", "that"})
_ARTICLE = re.compile(r"(?<![\w'-])(an?|An?|AN?)\s+([^\s]+)")
_NOT_AFTER_ARTICLE = frozenset({"is", "and", "or", "of", "to", "was", "has", "=", "+", "-"})
# After the plural, words that show it is the head noun ("a boxes held"), not a noun adjunct
# ("a sports shop", "a glasses case").
_HEAD_FOLLOWERS = _words(
    "is are was were has have had holds held hold costs cost weighs weigh and of in on with "
    "for to that which"
)
_COUNT = re.compile(
    r"(?<![\w.,/$-])(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)\s+([A-Za-z]+)\b(?![-'])"
)
_COUNT_WORD = re.compile(
    r"(?<![\w'-])(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)\s+([A-Za-z]+)\b"
    r"(?![-'])",
    re.IGNORECASE,
)
# Words ending in -s that are not plural nouns ("1 plus 2", "a bus").
_NOT_PLURAL = _words("is was has does goes this his its yes us thus plus minus less")
# Countable nouns common in school word problems: "3 apple" and "1 apples" are errors for them
# (other words may be adjectives or verbs after a count: "3 more", "1 remains"); the request's
# keywords are checked with both their forms.
_COMMON_NOUNS = _words(
    "minute hour day week month year second night lap page dollar cent coin ticket student "
    "child friend book box bag basket apple pencil pen marble sticker card egg cookie "
    "cake sweet candy toy ball flower plant tree car bus train bike seat table chair cup bottle "
    "glass jar litre metre kilometre gram kilogram team group row piece slice lesson question "
    "point game goal animal dog cat bird shell stamp bead button crayon"
)
# Determiners before a count that make "count noun" an adjective ("a 5 day week").
_ATTRIBUTIVE = _words("a an the his her their its my our your this that each every entire whole")
# Unit abbreviations have one form ("1 km", "3 km").
_UNITS = _words("mm cm m km g kg mg ml l kl s h min mph kmh lb lbs oz ft in yd")
_COMMON_PLURALS = frozenset(noun_forms(n)[1] for n in _COMMON_NOUNS)
_QUESTION_STARTS = _words(
    "how what which who whom whose when where why is are was were do does did can could will "
    "would should shall has have had may might must"
)
_CLAUSE_BREAK = re.compile(r"[,;:]|\s[-–—]\s")
_DO = frozenset({"do", "does", "did"})
_WH = _words("how what which who whom whose when where why")
# Openers of an introductory clause before the question ("If they share equally how many ...").
_INTRO = _words("if when after before since because once while suppose assuming given now so then")
# Words that start a new clause, so a second do-form is fine ("... did he use than he did ...").
_CLAUSE = _words("than and or but if when that because while so") | _WH
# Sentence ends, not after a title ("Mrs. Hilt walks ...").
_SENTENCES = re.compile(r"(?<!\bMr\.)(?<!\bMrs\.)(?<!\bMs\.)(?<!\bDr\.)(?<!\bSt\.)(?<=[.?!])\s+")
_SLOT_LIKE = re.compile(r"<[^<>\s]*>|(?<![\w])n\d+(?![\w])|\|\|\||▁")
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cn"})  # control, format, private, unassigned
_OK_SYMBOLS = frozenset({"-", "–", "—", "+", "=", "&", "×", "÷"})


def _doubled(text: str) -> str | None:
    words = [(m.group(0).lower(), m.start(), m.end()) for m in _WORD.finditer(text)]
    # joined[i]: only whitespace between word i and word i + 1 (no number, no punctuation)
    joined = [not text[a[2] : b[1]].strip() for a, b in itertools.pairwise(words)]
    for n in (1, 2, 3):
        for i in range(len(words) - 2 * n + 1):
            if not all(joined[i : i + 2 * n - 1]):
                continue
            first = [w for w, _, _ in words[i : i + n]]
            second = [w for w, _, _ in words[i + n : i + 2 * n]]
            if first == second and not (n == 1 and first[0] in _DOUBLING_OK):
                return text[words[i][1] : words[i + 2 * n - 1][2]]
    return None


def _plural_forms(keywords: Sequence[str]) -> tuple[set[str], set[str]]:
    """(singular-only forms, plural-only forms) of the keywords, lower case."""
    sing, plural = set(), set()
    for kw in keywords:
        s, p = noun_forms(kw)
        if s.lower() != p.lower():
            sing.add(s.lower())
            plural.add(p.lower())
    return sing, plural


def _article(text: str, plural_forms: set[str]) -> str | None:
    for m in _ARTICLE.finditer(text):
        article, word = m.group(1).lower(), m.group(2)
        core = word.strip("\"'()[],.;:!?")
        if not core or word.lower() in _NOT_AFTER_ARTICLE or not core[0].isalnum():
            continue
        if (len(core) == 1 and core.isalpha()) or core[0].isupper():
            continue  # letters, acronyms, names ("an SUV", "an Uber"): pronunciation unknown
        if m.group(1)[0].isupper() and not _at_sentence_start(text, m.start()):
            continue  # "Team A has": a label, not an article
        if article != article_for(core):
            return m.group(0)
        low = core.lower()
        if low in plural_forms:
            return m.group(0)
        if singular_of_plural(low) and low not in _NOT_PLURAL:
            after = text[m.end() :].lstrip()
            nxt = _WORD.match(after)
            if (
                not after
                or word[-1] in ".,;:!?"  # "a cars." : punctuation right after the plural
                or not after[0].isalpha()
                or (nxt and nxt.group(0).lower() in _HEAD_FOLLOWERS)
            ):
                return m.group(0)
    return None


def _at_sentence_start(text: str, start: int) -> bool:
    before = text[:start].rstrip()
    return not before or before[-1] in ".?!:\"'"


def _is_noun_next(rest: str, sing_forms: set[str], plural_forms: set[str]) -> bool:
    """Does ``rest`` start with a noun, making the word before it an adjunct ("3 toy cars")?"""
    nxt = _WORD.match(rest.lstrip())
    if nxt is None:
        return False
    low = nxt.group(0).lower()
    known = sing_forms | plural_forms | _COMMON_NOUNS | _COMMON_PLURALS
    return low in known or (low not in _NOT_PLURAL and singular_of_plural(low) is not None)


def _prev_word(text: str, start: int) -> str:
    before = text[:start].rstrip()
    return before.rsplit(None, 1)[-1].lower() if before else ""


def _number_agreement(text: str, sing_forms: set[str], plural_forms: set[str]) -> str | None:
    found = [
        (m.group(1) == "1", m.group(2).lower(), m.end(), m.start())
        for m in _COUNT.finditer(text)
        if not m.group(1).startswith("0.")  # "0.5 cup" and "0.5 cups" are both written
    ]
    found += [
        (m.group(1).lower() == "one", m.group(2).lower(), m.end(), m.start())
        for m in _COUNT_WORD.finditer(text)
    ]
    for is_one, word, end, start in found:
        if word in _UNITS or _prev_word(text, start) in _ATTRIBUTIVE:
            continue  # "a 4 cup container", "his 8 hour days": a compound adjective
        if is_one:
            bad = word in plural_forms or (word in _COMMON_PLURALS and word not in sing_forms)
        else:
            bad = word in sing_forms or (word in _COMMON_NOUNS and word not in plural_forms)
        if bad and not _is_noun_next(text[end:], sing_forms, plural_forms):
            return text[start:end]
    return None


def _question(text: str) -> str | None:
    stripped = text.strip()
    if not stripped.endswith("?"):
        return "no final '?': " + stripped[-40:]
    if stripped.count("?") != 1:
        return f"{stripped.count('?')} questions"
    last = _SENTENCES.split(stripped)[-1]
    words = [w.lower() for w in _WORD.findall(last)]
    if len(words) < 3:
        return last
    # The question word opens the sentence or a comma clause, or comes within its first three
    # words ("About how many", "In all, how much"), or follows an "If ..." clause.
    clauses = [[w.lower() for w in _WORD.findall(c)] for c in _CLAUSE_BREAK.split(last)]
    asks = (
        words[0] in _QUESTION_STARTS
        or any(c and (c[0] in _QUESTION_STARTS or _WH & set(c[:3])) for c in clauses)
        or (words[0] in _INTRO and any(w in _WH for w in words[1:]))
    )
    if not asks:
        return last
    # "How many dollars do 3 yo-yos does he have?": a second auxiliary do-form with no clause
    # between ("What did she do?" is fine: that "do" is the main verb)
    dos = [i for i, w in enumerate(words) if w in _DO]
    for a, b in itertools.pairwise(dos):
        if words[b] != "do" and not any(w in _CLAUSE for w in words[a + 1 : b]):
            return " ".join(words[a : b + 1])
    return None


def _unknown_token(text: str) -> str | None:
    slot = _SLOT_LIKE.search(text)
    if slot:
        return slot.group(0)
    for c in text:
        if c in "<>|\ufffd" or (unicodedata.category(c) in _BAD_CATEGORIES and c not in "\n\t"):
            return repr(c)
    for token in text.split():
        if not any(c.isalnum() for c in token) and token not in _OK_SYMBOLS:
            return token
    return None


def grammar_defects(text: str, keywords: Sequence[str] = ()) -> list[str]:
    """The defect classes (:data:`DEFECT_CLASSES` order) found in ``text``; empty when clean.

    ``keywords`` are the request's keywords: their singular and plural forms make the article
    and number checks exact for them.
    """
    return list(explain_defects(text, keywords))


def explain_defects(text: str, keywords: Sequence[str] = ()) -> dict[str, str]:
    """Each defect class found in ``text`` with the first offending snippet (for logs, docs)."""
    if not isinstance(text, str):
        raise TypeError(f"text: expected a string, got {type(text).__name__}")
    sing_forms, plural_forms = _plural_forms([k for k in keywords if k.strip()])
    found = {
        "doubled_word": _doubled(text),
        "article": _article(text, plural_forms),
        "number_agreement": _number_agreement(text, sing_forms, plural_forms),
        "question": _question(text),
        "unknown_token": _unknown_token(text),
    }
    return {name: str(found[name]) for name in DEFECT_CLASSES if found[name] is not None}
