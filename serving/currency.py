"""The currency a teacher asks for: "Year 3, pounds and pence:" gets £, not $.

Blind raters failed problems whose prices were in dollars when the prefix asked for pounds and
pence. Skeletons write prices with ``$`` (the numbers are drawn for it, ``serving.numbers``);
the told problem is written in the prefix's currency at the end, one rule for the HTTP app, the
practice sets and the drop-in (``serving.story.render_any``). Pounds and euros are
written with the same amounts as dollars (a ticket costs 5-15 of any of them); rupees are not
offered: their amounts would need ranges of their own. Stdlib only (serving-reachable).
"""

from __future__ import annotations

import re

SYMBOLS = ("$", "£", "€")
# "pounds" alone is money unless the prefix weighs ("pounds and ounces")
_POUNDS = re.compile(
    r"£|\bpence\b|\bpenny\b|\bgbp\b|\bsterling\b|\bpounds?\b(?!.*\b(?:ounces?|oz|weigh))", re.I
)
_EUROS = re.compile(r"€|\beuros?\b|\beur\b", re.I)
_WORDS = {
    "£": {"dollars": "pounds", "dollar": "pound", "cents": "pence", "cent": "penny"},
    "€": {"dollars": "euros", "dollar": "euro"},
}


def asked_currency(prompt_prefix: str) -> str:
    """The currency symbol the prefix asks for: "£", "€", else "$"."""
    p = prompt_prefix or ""
    if _POUNDS.search(p):
        return "£"
    if _EUROS.search(p):
        return "€"
    return "$"


def in_currency(text: str, symbol: str) -> str:
    """``text`` with its dollar prices and money words in the currency ``symbol``."""
    if symbol == "$":
        return text
    out = text.replace("$", symbol)
    for word, local in _WORDS.get(symbol, {}).items():
        out = re.sub(rf"\b{word}\b", local, out)
        out = re.sub(rf"\b{word.capitalize()}\b", local.capitalize(), out)
    return out
