"""Keyword extraction for real word problems: content nouns by stopwords and frequency.

Real corpora come without the keywords a teacher would ask for, so we pick the 2-3 words that
best stand for the problem's content: not a stopword, not a name (capitalised inside a sentence),
frequent in the problem, and preferably a noun (preceded by a number or a determiner). A corpus
document frequency, when given, down-weights words that appear in most problems ("money", "each").
No downloads: the stopword list is written here.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping

from serving.keywords import singular

__all__ = ["document_frequency", "extract_keywords", "singular"]

_STOPWORD_TEXT = """
a about above after again against all almost along already also although always am among an
and another any anything are around as at away back be became because become been before
being below between both but by can cannot could did do does doing done down during each
either else enough even ever every few for from further get gets getting give gives given
go goes going got had has have having he her here hers herself him himself his how however
i if in into is it its itself just last least left less let like little long lot lots made
make makes many may me more most much must my myself need needs new next no nor not now of
off often on once one only or other others our ours out over own per put puts rest same
several she should since so some still such than that the their theirs them themselves then
there these they this those though through to together too total toward under until up upon
us used uses using very was we were what when where whether which while who whom whose why
will with within without would yet you your yours
altogether amount answer average bought buy buys cost costs equal equally find first half
number numbers second third twice times took take takes want wants wanted went day days week
weeks remaining remain remains bring brought found gave keep kept sold sell sells spent spend
spends paid pay pays received receive said asked ate eat eats tell told know knew think
thought see saw look looked start started end ended include includes included use finished
finish full whole part parts zero two three four five six seven eight nine ten eleven twelve
hundred thousand dozen
"""
STOPWORDS: frozenset[str] = frozenset(_STOPWORD_TEXT.split())
_DETERMINER_TEXT = "a an the each every of some her his their per"
_DETERMINERS = frozenset(_DETERMINER_TEXT.split())
_SENTENCE_END = frozenset(".?!")


def _candidates(text: str) -> list[tuple[str, bool]]:
    """(lowercased word, looks like a noun) for each non-stopword, non-name word in order."""
    out = []
    prev_token = "."
    for m in re.finditer(r"[A-Za-z][A-Za-z'-]*[A-Za-z]|[A-Za-z]|\d+(?:[.,]\d+)*|[.?!]", text):
        tok = m.group(0)
        if tok[0].isalpha():
            low = tok.lower()
            sentence_start = prev_token in _SENTENCE_END
            is_name = tok[0].isupper() and not sentence_start
            if low not in STOPWORDS and not is_name and len(low) > 2 and "'" not in low:
                nounish = prev_token[0].isdigit() or prev_token.lower() in _DETERMINERS
                out.append((low, nounish))
        prev_token = tok
    return out


def document_frequency(texts: Iterable[str]) -> tuple[Counter[str], int]:
    """How many texts each (singular) candidate word appears in, and the number of texts."""
    df: Counter[str] = Counter()
    n = 0
    for text in texts:
        n += 1
        df.update({singular(w) for w, _ in _candidates(text)})
    return df, n


def extract_keywords(
    text: str,
    k: int = 3,
    *,
    doc_freq: Mapping[str, int] | None = None,
    n_docs: int = 0,
) -> list[str]:
    """Up to ``k`` keywords of ``text`` (lowercase, as written there), in order of appearance.

    Score = term frequency + 1 if the word follows a number or determiner (noun-like), times the
    inverse document frequency when ``doc_freq``/``n_docs`` are given. Plural and singular forms
    of one word count as one.
    """
    if k < 1:
        raise ValueError(f"k: must be >= 1, got {k}")
    tf: Counter[str] = Counter()
    nounish: Counter[str] = Counter()
    first_form: dict[str, str] = {}
    first_pos: dict[str, int] = {}
    for pos, (word, is_noun) in enumerate(_candidates(text)):
        key = singular(word)
        tf[key] += 1
        nounish[key] += int(is_noun)
        first_form.setdefault(key, word)
        first_pos.setdefault(key, pos)
    scores = {}
    for key, freq in tf.items():
        score = freq + (1.0 if nounish[key] else 0.0)
        if doc_freq is not None and n_docs > 0:
            score *= math.log((1 + n_docs) / (1 + doc_freq.get(key, 0))) + 1.0
        scores[key] = score
    best = sorted(scores, key=lambda w: (-scores[w], first_pos[w]))[:k]
    return [first_form[w] for w in sorted(best, key=first_pos.__getitem__)]
