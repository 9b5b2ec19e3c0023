"""Copy augmentation: extra training records whose entity keyword is a word seen nowhere else.

Why: the scratch generator learns which noun goes with which sentence shape from co-occurrence.
Asked for a held-out combination ("fence, yard" when training only had fences around farms and
parks) it wrote "A farm is ..." and missed the keyword; that was most of the remaining keyword
misses. In an augmented record the entity keyword (an object, container, item, place, ...) is
replaced, in the prompt's keywords and in the problem, by a nonce noun from
:data:`COPY_LEXICON`: the only way to predict that noun is to copy it from the prompt, so the
model learns to copy the requested noun into whatever shape it writes. Shape-selecting keywords
("area", "perimeter", "discount", "friend") are never replaced, so the keyword -> shape signal
stays intact.

Only the training split is augmented, after the split: the lexicon shares no word with the
template vocabulary (tested), so no augmented record can recreate a held-out (topic, keyword
set) combination, and val / test stay untouched.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Any

from data.word_problems import templates as tpl
from serving.keywords import keyword_present, singular
from serving.realize import noun_forms

# (singular, plural); consonant-initial so "a <noun>" stays grammatical.
COPY_LEXICON: tuple[tuple[str, str], ...] = (
    ("lantern", "lanterns"),
    ("pebble", "pebbles"),
    ("feather", "feathers"),
    ("magnet", "magnets"),
    ("candle", "candles"),
    ("whistle", "whistles"),
    ("helmet", "helmets"),
    ("teapot", "teapots"),
    ("compass", "compasses"),
    ("kettle", "kettles"),
    ("pillow", "pillows"),
    ("saddle", "saddles"),
    ("robot", "robots"),
    ("rocket", "rockets"),
    ("turnip", "turnips"),
    ("walnut", "walnuts"),
    ("dumpling", "dumplings"),
    ("pancake", "pancakes"),
    ("marker", "markers"),
    ("thimble", "thimbles"),
    ("tent", "tents"),
    ("wagon", "wagons"),
    ("ladder", "ladders"),
    ("barn", "barns"),
    ("cabin", "cabins"),
    ("meadow", "meadows"),
    ("pond", "ponds"),
    ("tunnel", "tunnels"),
    ("gadget", "gadgets"),
    ("parrot", "parrots"),
    ("puppet", "puppets"),
    ("dragon", "dragons"),
    ("goblet", "goblets"),
    ("sponge", "sponges"),
)
_WORD = re.compile(r"[A-Za-z]+(?:['-][A-Za-z]+)*")


def entity_words() -> frozenset[str]:
    """Singular keys of the template nouns a request names as things (not shape words)."""
    words: set[str] = set()
    for group in (tpl.OBJECTS, tpl.CONTAINERS, tpl.ITEMS, tpl.CUPS):
        for noun in group:
            words.update({noun.one, noun.many})
    words.update(tpl.VEHICLES)
    for values in tpl.WORDS.values():
        words.update(values)
    return frozenset(singular(w) for w in words if " " not in w)


def _nonce_form(word: str, key: str, nonce: tuple[str, str]) -> str:
    """The nonce noun in the number of ``word`` (whose singular key is ``key``)."""
    plural = word.lower() != key and word.lower().endswith("s")
    return nonce[1] if plural else nonce[0]


def _swap_word(
    text: str, key: str, nonce: tuple[str, str], forms: frozenset[str] = frozenset()
) -> str:
    """Replace every word whose singular key is ``key`` (or that is one of ``forms``, the
    keyword's inflections: "scarf" for "scarves") by the nonce noun, keeping number and
    capitalisation; "an <nonce>" becomes "a <nonce>" (the lexicon is consonant-initial)."""

    def repl(m: re.Match[str]) -> str:
        word = m.group(0)
        if singular(word) != key and word.lower() not in forms:
            return word
        new = _nonce_form(word, key, nonce)
        return new.capitalize() if word[0].isupper() else new

    out = _WORD.sub(repl, text)
    for form in nonce:
        out = re.sub(rf"\b([Aa])n ({form})\b", r"\1 \2", out)
    return out


def copy_augment(
    records: Sequence[dict[str, Any]], *, share: float, seed: int
) -> list[dict[str, Any]]:
    """About ``share * len(records)`` new records (see module doc); ``records`` are unchanged.

    A record qualifies when one of its single-word keywords is a template entity word present in
    its problem; records without one are skipped, so fewer may come back.
    """
    from data.word_problems.corpus import number_slots, rebuild_record

    if not 0.0 <= share <= 1.0:
        raise ValueError(f"copy_augment: share must be in [0, 1], got {share!r}")
    rng = random.Random(seed)
    entities = entity_words()  # disjoint from the lexicon (tested): no nonce is re-swapped
    chosen = rng.sample(range(len(records)), round(share * len(records)))
    out = []
    for i in sorted(chosen):
        rec = records[i]
        candidates = [
            k
            for k in rec["keywords"]
            if " " not in k and singular(k) in entities and keyword_present(k, rec["problem"])
        ]
        if not candidates:
            continue
        kw = rng.choice(candidates)
        nonce = rng.choice(COPY_LEXICON)
        key = singular(kw)
        forms = frozenset(f.lower() for f in noun_forms(kw))
        new_kw = _nonce_form(kw, key, nonce)
        slots = number_slots(rec)
        if slots:
            slots["skeleton"] = _swap_word(slots["skeleton"], key, nonce, forms)
        out.append(
            rebuild_record(
                rec,
                rec_id=f"{rec['id']}-copy",
                keywords=[new_kw if k == kw else k for k in rec["keywords"]],
                problem=_swap_word(rec["problem"], key, nonce, forms),
                source=f"{rec['source']}+copy",
                **slots,
            )
        )
    return out


_ONSETS: tuple[str, ...] = (
    *("b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w"),
    *("z", "br", "cl", "dr", "fl", "gr", "pl", "st", "tr"),
)
_VOWELS = ("a", "e", "i", "o", "u", "a", "e", "o")
_CODAS = ["", "", "", "n", "m", "r", "t", "l", "x", "sk"]


def pseudo_word(rng: random.Random) -> str:
    """A pronounceable nonsense noun ("dorapin", "klesu"): a keyword no tokenizer piece knows."""
    n = rng.choice((2, 2, 3))
    word = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(n))
    return word + rng.choice(_CODAS)


def keyword_swap(
    records: Sequence[dict[str, Any]], *, share: float, seed: int
) -> tuple[list[dict[str, Any]], int]:
    """Records where about ``share`` ask for pseudo-words instead of their thing keywords.

    Why: with keyword slots the target does not depend on which noun was asked for, but the
    encoder still reads the keyword's pieces, and a teacher's noun ("walruses") is made of
    pieces the model never saw next to a slot. A rebuilt record asks for a pseudo-word
    (:func:`pseudo_word`, in the keyword's number) in place of each thing keyword (template
    entity words; every keyword of a real-corpus record); its target is unchanged and its
    problem text is the target rendered with the new keywords. Shape words ("perimeter",
    "discount") are kept. Returns (records in the same order, number rebuilt).
    """
    from data.word_problems.corpus import number_slots, rebuild_record
    from serving.prompt import TARGET_SEP
    from serving.realize import delexicalize, realize

    if not 0.0 <= share <= 1.0:
        raise ValueError(f"keyword_swap: share must be in [0, 1], got {share!r}")
    rng = random.Random(seed)
    entities = entity_words()
    out: list[dict[str, Any]] = []
    changed = 0
    for rec in records:
        if rng.random() >= share:
            out.append(rec)
            continue
        real = not str(rec["source"]).startswith("templates")
        new_kws = []
        for kw in rec["keywords"]:
            if " " not in kw and (real or singular(kw) in entities):
                sing, plural = noun_forms(kw)
                word = pseudo_word(rng)
                new_kws.append(noun_forms(word)[1] if kw == plural != sing else word)
            else:
                new_kws.append(kw)
        if new_kws == list(rec["keywords"]):
            out.append(rec)
            continue
        slots = number_slots(rec)
        lexical = delexicalize(rec["problem"], list(rec["keywords"]))
        if lexical is None:
            out.append(rec)
            continue
        try:
            if slots:  # the skeleton is the target's text with the new keywords rendered
                slots["skeleton"] = realize(rec["target"].partition(TARGET_SEP)[0], new_kws)
            new = rebuild_record(
                rec,
                keywords=new_kws,
                problem=realize(lexical, new_kws),
                source=f"{rec['source']}+swap",
                **slots,
            )
        except ValueError:  # a pseudo-word the realizer inflects oddly: keep the original
            out.append(rec)
            continue
        if new["target"] != rec["target"]:  # rendering did not round-trip: keep the original
            out.append(rec)
            continue
        out.append(new)
        changed += 1
    return out, changed


# Openers that hold any countable noun a teacher may type (an animal, a person, an object,
# a place): "{x}" is one plural or two joined by "and".
CONTEXT_FRAMES: tuple[str, ...] = (
    "The class is learning about {x}.",
    "Today's maths lesson is about {x}.",
    "This week the maths club is talking about {x}.",
    "The story is about {x}.",
    "Everyone in the class likes {x}.",
    "The school project this week is about {x}.",
)


def context_keywords(
    records: Sequence[dict[str, Any]],
    *,
    share: float,
    seed: int,
    max_keywords: int = 4,
    two_share: float = 0.4,
) -> tuple[list[dict[str, Any]], int]:
    """Records where about ``share`` also ask for 1-2 extra nouns, written in an opener.

    Why: teachers often send three nouns, and for many topics a nonsense pairing
    ("What is its average brownie in km per hour?") was the only place a second noun could
    go: every template shape has one or two thing roles, so the model dropped the third
    keyword (coverage 0.66 on 3-keyword requests) or put a noun into a shape word's slot. A
    rebuilt record asks for pseudo-words (:func:`pseudo_word`) at random positions of its
    keyword list, and its problem starts with a :data:`CONTEXT_FRAMES` sentence naming them
    (plural), so the target has a slot for every requested keyword whatever the topic.
    Pseudo-words occur in no real corpus, so no held-out request is recreated. Returns
    (records in the same order, number rebuilt).
    """
    from data.word_problems.corpus import number_slots, rebuild_record

    if not 0.0 <= share <= 1.0:
        raise ValueError(f"context_keywords: share must be in [0, 1], got {share!r}")
    if not 0.0 <= two_share <= 1.0:
        raise ValueError(f"context_keywords: two_share must be in [0, 1], got {two_share!r}")
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    changed = 0
    for rec in records:
        kws = list(rec["keywords"])
        room = max_keywords - len(kws)
        if room < 1 or rng.random() >= share:
            out.append(rec)
            continue
        n_extra = 1 if room == 1 or rng.random() < 1.0 - two_share else 2
        taken = {singular(k) for k in kws}
        extras: list[str] = []
        while len(extras) < n_extra:
            word = pseudo_word(rng)
            if singular(word) not in taken and word == singular(word):
                taken.add(word)
                extras.append(word)
        plurals = [noun_forms(w)[1] for w in extras]
        frame = rng.choice(CONTEXT_FRAMES).format(x=" and ".join(plurals))
        new_kws = list(kws)
        for word, plural in zip(extras, plurals, strict=True):
            new_kws.insert(rng.randint(0, len(new_kws)), plural if rng.random() < 0.5 else word)
        slots = number_slots(rec)
        if slots:  # the opener holds no number: the equation's n<i> keep their places
            slots["skeleton"] = f"{frame} {slots['skeleton']}"
        try:
            new = rebuild_record(
                rec,
                keywords=new_kws,
                problem=f"{frame} {rec['problem']}",
                source=f"{rec['source']}+context",
                **slots,
            )
        except ValueError:  # a pseudo-word the realizer inflects oddly: keep the original
            out.append(rec)
            continue
        out.append(new)
        changed += 1
    return out, changed
