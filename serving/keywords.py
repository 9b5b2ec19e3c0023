"""Is a requested keyword in a generated problem? One matcher for metrics and serving.

``training.text_metrics`` scores keyword coverage with it and ``serving.generator`` uses it to
retry samples that miss a keyword, so what the metric counts is what the API checks.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_WORDS = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")


def singular(word: str) -> str:
    """A canonical singular key that merges 'apple'/'apples', 'box'/'boxes', 'cookie'/'cookies'.

    Crude on purpose (no dictionary): both forms of a word must map to the same key, which is
    not always a real word ('cookie' -> 'cooky').
    """
    w = word.lower()
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 3 and w.endswith("ie"):
        return w[:-2] + "y"
    if len(w) > 4 and w.endswith(("ches", "shes", "xes", "sses", "zes")):
        return w[:-2]
    if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        return w[:-1]
    return w


def _words(text: str) -> list[str]:
    return [singular(w) for w in _WORDS.findall(text.lower())]


def _forms(keyword: str) -> list[str]:
    """The keyword as typed plus inflect's singular and plural (``serving.realize.noun_forms``),
    so irregular inflections count too ("mouse" finds "mice", "geese" finds "goose")."""
    from serving.realize import RealizeError, noun_forms

    try:
        return [keyword, *noun_forms(keyword)]
    except RealizeError:
        return [keyword]


def keyword_present(keyword: str, text: str) -> bool:
    """Whole-word, case-insensitive match of any inflection (``"box"`` finds ``"3 boxes"``)."""
    words = _words(text)
    for form in dict.fromkeys(_forms(keyword)):
        kw = _words(form)
        n = len(kw)
        if kw and any(words[i : i + n] == kw for i in range(len(words) - n + 1)):
            return True
    return False


def missing_keywords(text: str, keywords: Sequence[str]) -> list[str]:
    """The requested keywords not present in ``text``, in request order."""
    return [k for k in keywords if not keyword_present(k, text)]
