"""Training records from the typed-role skeleton bank (``prepare_text.sources: [skeletons]``).

Each record asks for 1-3 keywords that the skeleton can host: nouns drawn from the lexicon for
its role instances (any WordNet noun whose primary class the role accepts, so the model learns
roles from classes, not from a list of words), sometimes a word the skeleton writes literally
("profit", "wings"), sometimes a person's name. The prompt names each keyword with the role it
plays (``serving.prompt.format_prompt(..., roles=)``; ``word`` for a word the text writes,
``name`` for a name), as serving asks (``serving.planner``); the target is the skeleton itself
(role tokens, ``<num>``, the equation over ``n<i>``), identical whatever nouns were asked:
which keyword plays which role is decided after decoding by ``serving.story``, where the
lexicon is.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from data.word_problems.skeletons import Skeleton, to_target
from data.word_problems.templates import GRADES, PREFIX_STYLES
from serving.arithmetic import evaluate
from serving.lexicon import Lexicon, describe
from serving.prompt import format_prompt, join_target
from serving.roles import (
    KEYWORD_ONLY,
    NAME_LABEL,
    NAMES,
    ROLE_BY_NAME,
    WORD_LABEL,
    fill_pool,
    instances,
    names_used,
)
from serving.story import bind, literal_text, render_any

KEYWORD_COUNT_WEIGHTS = (0.35, 0.45, 0.2)  # 1, 2, 3 keywords
GRADES_TYPED = (1, *GRADES, 6)
# Words of a skeleton's own text that are never offered as a literal keyword.
_STOP = frozenset(
    [
        "how",
        "many",
        "much",
        "what",
        "does",
        "did",
        "do",
        "each",
        "every",
        "more",
        "left",
        "total",
        "altogether",
        "now",
        "then",
        "there",
        "their",
        "they",
        "them",
        "this",
        "that",
        "with",
        "from",
        "into",
        "than",
        "have",
        "has",
        "had",
        "some",
        "same",
        "other",
        "another",
        "first",
        "second",
        "third",
        "last",
        "next",
        "number",
        "numbers",
        "equal",
        "equally",
        "all",
        "both",
        "only",
        "still",
    ]
)
_WORD = re.compile(r"[a-z][a-z'-]{3,}")


def role_candidates(lexicon: Lexicon) -> dict[str, list[str]]:
    """Role -> lexicon lemmas (one or two plain words) whose primary class the role accepts
    and whose countability it allows."""
    out: dict[str, list[str]] = defaultdict(list)
    for lemma, (primary, classes, mass) in lexicon.table.items():
        if not re.fullmatch(r"[a-z]{3,14}( [a-z]{3,12})?", lemma):
            continue
        for role in ROLE_BY_NAME.values():
            accepted = primary in role.accepts or (classes & role.accepts and primary == "object")
            count_ok = role.countable is None or role.countable == (not mass)
            if accepted and count_ok and not classes & role.rejects:
                out[role.name].append(lemma)
    return {k: sorted(v) for k, v in out.items()}


def literal_keywords(skeleton_text: str, lexicon: Lexicon) -> list[str]:
    """Words of the skeleton's text a teacher might type as a keyword (known nouns)."""
    words = {w for w in _WORD.findall(literal_text(skeleton_text).lower()) if w not in _STOP}
    return sorted(w for w in words if lexicon.lookup(w).known)


def _prefix(rng: random.Random) -> str:
    grade = rng.randrange(len(GRADES_TYPED) + 1)
    return rng.choice(PREFIX_STYLES).format(g=GRADES_TYPED[grade - 1]) if grade else ""


def skeleton_records(
    *,
    n: int,
    seed: int,
    bank: Sequence[Skeleton],
    lexicon: Lexicon,
    topics: Sequence[str] | None = None,
    literal_share: float = 0.3,
    name_share: float = 0.05,
) -> list[dict[str, Any]]:
    """``n`` records balanced over the bank's topics (or ``topics``), deterministic for ``seed``."""
    by_topic: dict[str, list[Skeleton]] = defaultdict(list)
    for sk in bank:
        by_topic[sk.topic].append(sk)
    names = [t for t in (topics or sorted(by_topic)) if by_topic.get(t)]
    if not names:
        raise ValueError(f"no skeletons for topics {list(topics or [])}")
    cands = role_candidates(lexicon)
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for i in range(n):
        topic = names[i % len(names)]
        sk = rng.choice(by_topic[topic])
        text, slot_eq = to_target(sk)
        insts = list(instances(text))
        k = rng.choices((1, 2, 3), weights=KEYWORD_COUNT_WEIGHTS)[0]
        keywords: list[str] = []
        labels: dict[str, str] = {}  # keyword -> the role the prompt asks it to play
        # a keyword-only role (serving.roles.KEYWORD_ONLY) always gets a keyword: the bank
        # decodes such a skeleton only for a request whose keyword plays it
        must = [i for i in insts if i.role in KEYWORD_ONLY]
        rest = [i for i in insts if i.role not in KEYWORD_ONLY]
        chosen = must + rng.sample(rest, max(0, min(k - len(must), len(rest))))
        for inst in chosen:
            for _try in range(6):
                word = rng.choice(cands.get(inst.role) or [p[0] for p in fill_pool(inst.role)])
                if ROLE_BY_NAME[inst.role].pool and rng.random() < 0.5:
                    word = ROLE_BY_NAME[inst.role].pool[
                        rng.randrange(len(ROLE_BY_NAME[inst.role].pool))
                    ][0 if rng.random() < 0.5 else 1]
                trial = [*keywords, word]
                if word not in keywords and not bind(text, describe(lexicon, trial))[1]:
                    keywords.append(word)
                    labels[word] = inst.role
                    break
        if any(inst.role not in labels.values() for inst in must):
            continue
        literals = [w for w in literal_keywords(text, lexicon) if w not in labels]
        if literals and (not keywords or rng.random() < literal_share):
            word = rng.choice(literals)
            keywords.append(word)
            labels[word] = WORD_LABEL
        if names_used(text) and rng.random() < name_share:
            word = rng.choice(NAMES)[0]
            keywords.append(word)
            labels[word] = NAME_LABEL
        keywords = list(dict.fromkeys(keywords))[:4]
        if not keywords:
            continue
        rng.shuffle(keywords)
        nouns = describe(lexicon, keywords)
        prefix = _prefix(rng)
        target = join_target(text, slot_eq)
        rendered = render_any(
            target,
            keywords,
            topic=topic,
            prompt_prefix=prefix,
            seed=rng.randrange(2**31),
            nouns=nouns,
        )
        if rendered.equation_text is None:
            continue
        out.append(
            {
                "id": f"skeletons-{i:06d}",
                "topic": topic,
                "keywords": keywords,
                "nouns": [x.to_json() for x in nouns],
                "roles": [labels[k] for k in keywords],
                "prompt_prefix": prefix,
                "problem": rendered.problem_text,
                "equation": rendered.equation_text,
                "answer": float(evaluate(rendered.equation_text)),
                "source": "skeletons",
                "prompt": format_prompt(
                    topic, keywords, prefix, roles=[labels[k] for k in keywords]
                ),
                "target": target,
                "skeleton": text,
                "slot_equation": slot_eq,
                "skeleton_id": sk.source,
            }
        )
    return out
