"""The open-vocabulary test split: teacher-style requests whose keywords no training record holds.

Why: the template test split holds out *combinations* of template keywords, so every test noun was
seen in training and the metrics said "done" while real requests ("boxes", "bosses", "pizza")
got broken text. Here every keyword is a noun that occurs, in no inflection, in any
record of the corpus (train, val or test): nouns that follow a number in the real corpora's
held-out files (GSM8K test, MAWPS dev: never trained on) when they are present, and the written
list :data:`data.word_problems.heldout_nouns.HELDOUT_NOUNS` (alone when they are absent). Requests
carry realistic prefixes and cycle through the given topics; everything is seeded.
"""

from __future__ import annotations

import logging
import random
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data.word_problems.keywords import STOPWORDS
from data.word_problems.templates import PREFIXES
from serving.keywords import singular
from serving.prompt import format_prompt
from serving.realize import noun_forms

logger = logging.getLogger(__name__)

# What teachers type before a request: every wording the templates know, plus two held out.
UNSEEN_PREFIXES: tuple[str, ...] = (
    *PREFIXES,
    "For a grade 2 class, easy numbers:",
    "For a grade 5 class, harder numbers:",
)
KEYWORD_COUNT_WEIGHTS: tuple[float, ...] = (0.35, 0.45, 0.2)  # 1, 2, 3 keywords per request
_WORD = re.compile(r"[a-z]+(?:['-][a-z]+)*")
# A number, then the counted word: "12 bracelets", "1,200 tickets", "3.5 pounds".
_COUNTED = re.compile(r"(?<![\w.])\d{1,3}(?:,\d{3})*(?:\.\d+)?\s+([a-z]{3,})\b")
# Counted words that are not things a teacher asks a problem about.
_NOT_NOUNS = frozenset(
    (
        "more", "less", "times", "percent", "minutes", "hours", "seconds", "days", "weeks",
        "months", "years", "dollars", "cents", "pounds", "ounces", "feet", "inches", "miles",
        "meters", "metres", "grams", "liters", "litres", "gallons", "quarts", "pints", "cups",
        "pieces", "people", "others", "ones", "pairs", "rows", "groups", "sets", "points",
        "degrees", "yards",
    )
)  # fmt: skip


@dataclass
class UnseenReport:
    """What the split was built from (written to metrics/text.json)."""

    list_nouns: int = 0
    list_nouns_unseen: int = 0
    corpus_files: dict[str, str] = field(default_factory=dict)
    corpus_nouns_unseen: int = 0
    missing_files: list[str] = field(default_factory=list)
    n_requests: int = 0
    keywords_by_source: dict[str, int] = field(default_factory=dict)
    topics: dict[str, int] = field(default_factory=dict)
    keyword_counts: dict[str, int] = field(default_factory=dict)


def record_words(records: Iterable[Mapping[str, Any]]) -> set[str]:
    """Lower-case words of every record's problem, keywords and prefix (crude singulars too)."""
    words: set[str] = set()
    for rec in records:
        text = " ".join([str(rec.get("problem", "")), str(rec.get("prompt_prefix", ""))])
        text += " " + " ".join(map(str, rec.get("keywords", [])))
        found = _WORD.findall(text.lower())
        words.update(found)
        words.update(singular(w) for w in found)
    return words


def keyword_words(keyword: str) -> set[str]:
    """Every word of every inflection of ``keyword`` (as typed, inflect's singular and plural,
    and the crude ``serving.keywords.singular`` key), lower case."""
    forms = {keyword, *noun_forms(keyword)}
    words = {w for f in forms for w in _WORD.findall(f.lower())}
    return words | {singular(w) for w in words}


def is_unseen(keyword: str, vocabulary: set[str]) -> bool:
    """True when no word of any inflection of ``keyword`` is in ``vocabulary``."""
    return not keyword_words(keyword) & vocabulary


def corpus_nouns(texts: Iterable[str]) -> list[str]:
    """Plural nouns counted by a number in ``texts`` ("12 bracelets"), most frequent first."""
    counts: Counter[str] = Counter()
    for text in texts:
        for m in _COUNTED.finditer(text):
            word = m.group(1)
            if word in STOPWORDS or word in _NOT_NOUNS:
                continue
            sing, plural = noun_forms(word)
            if plural == word and sing != word:  # a real plural: a countable noun
                counts[word] += 1
    return sorted(counts, key=lambda w: (-counts[w], w))


def _draw(
    rng: random.Random, pools: Mapping[str, Sequence[str]], share: float, taken: set[str]
) -> tuple[str, str] | None:
    """One (keyword, source) not yet in ``taken`` (by singular); corpus nouns with ``share``."""
    corpus = [s for s in pools if s != "list" and pools[s]]
    order = ["list"]
    if corpus and rng.random() < share:
        order = [rng.choice(corpus), "list"]
    elif corpus:
        order = ["list", rng.choice(corpus)]
    for source in order:
        pool = pools.get(source) or ()
        free = [w for w in pool if noun_forms(w)[0].lower() not in taken]
        if free:
            word = rng.choice(free)
            return word, source
    return None


def build_unseen_requests(
    *,
    n: int,
    seed: int,
    topics: Sequence[str],
    vocabulary: set[str],
    list_nouns: Sequence[str],
    corpus_pools: Mapping[str, Sequence[str]],
    corpus_share: float,
    prefixes: Sequence[str] = UNSEEN_PREFIXES,
    weights: Sequence[float] = KEYWORD_COUNT_WEIGHTS,
    plural_share: float = 0.5,
    lexicon: Any = None,
    planner: Any = None,
) -> tuple[list[dict[str, Any]], UnseenReport]:
    """``n`` requests (records with ``id, topic, keywords, prompt_prefix, prompt,
    keyword_sources``) over ``topics`` in turn; keywords never in ``vocabulary``.

    ``corpus_pools`` maps a corpus name to its held-out nouns (plurals, as written there); the
    written list gives singulars, asked in the plural with ``plural_share``. Raises ValueError
    when too few unseen nouns are left for the largest request.
    """
    if not topics:
        raise ValueError("unseen split: no topics to draw requests for")
    report = UnseenReport(list_nouns=len(list_nouns))
    pools: dict[str, list[str]] = {
        "list": sorted({w for w in list_nouns if is_unseen(w, vocabulary)})
    }
    report.list_nouns_unseen = len(pools["list"])
    for name, words in corpus_pools.items():
        pools[name] = [w for w in words if is_unseen(w, vocabulary)]
    report.corpus_nouns_unseen = sum(len(v) for k, v in pools.items() if k != "list")
    n_distinct = len({noun_forms(w)[0].lower() for v in pools.values() for w in v})
    if n_distinct < len(weights):
        raise ValueError(
            f"unseen split: only {n_distinct} unseen nouns left; need at least {len(weights)}"
        )
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    sources: Counter[str] = Counter()
    for i in range(n):
        topic = topics[i % len(topics)]
        k = rng.choices(range(1, len(weights) + 1), weights=weights)[0]
        keywords: list[str] = []
        kw_sources: list[str] = []
        taken: set[str] = set()
        while len(keywords) < k:
            drawn = _draw(rng, pools, corpus_share, taken)
            if drawn is None:
                break
            word, source = drawn
            sing, plural = noun_forms(word)
            if source == "list" and rng.random() < plural_share:
                word = plural
            taken.add(sing.lower())
            keywords.append(word)
            kw_sources.append(source)
        prefix = rng.choice(list(prefixes))
        rec: dict[str, Any] = {
            "id": f"unseen-{i:04d}",
            "topic": topic,
            "keywords": keywords,
            "prompt_prefix": prefix,
            "prompt": format_prompt(topic, keywords, prefix),
            "keyword_sources": kw_sources,
        }
        if lexicon is not None:  # a typed-role model: classes in the prompt, nouns kept
            from serving.lexicon import describe
            from serving.roles import plan_roles

            nouns = describe(lexicon, keywords)
            roles = planner.plan(topic, nouns) if planner is not None else plan_roles(nouns)
            rec["prompt"] = format_prompt(topic, keywords, prefix, roles=roles)
            rec["nouns"] = [x.to_json() for x in nouns]
        out.append(rec)
        sources.update(kw_sources)
    report.n_requests = len(out)
    report.keywords_by_source = dict(sorted(sources.items()))
    report.topics = dict(sorted(Counter(r["topic"] for r in out).items()))
    report.keyword_counts = dict(sorted(Counter(str(len(r["keywords"])) for r in out).items()))
    return out, report


def heldout_corpus_texts(source: str, path: Path) -> list[str]:
    """Problem texts of a real corpus's held-out file (read with the corpus's own reader)."""
    from data.word_problems.adapters import READERS

    raw, _ = READERS[source](path)
    return [r.problem for r in raw]
