"""Quality metrics of generated word problems (used by train_generator, export and quantize gates).

Every metric works on ``serving.prompt.parse_target`` of each text: ROUGE-L, BLEU, keywords,
well-formedness, diversity and copying look at the problem part; consistency checks the problem
against its equation. All values are in [0, 1].
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from serving.consistency import check_consistency
from serving.keywords import keyword_present
from serving.prompt import parse_target

_DIGIT = re.compile(r"\d")


def keyword_coverage(problem: str, keywords: Sequence[str]) -> float:
    """Share of requested keywords present in the problem (1.0 when none were requested)."""
    if not keywords:
        return 1.0
    return sum(keyword_present(k, problem) for k in keywords) / len(keywords)


def well_formed(problem: str) -> bool:
    """Ends with a question mark, holds at least one number, has no unknown token."""
    p = problem.strip()
    return p.endswith("?") and bool(_DIGIT.search(p)) and "<unk>" not in p


def distinct_n(texts: Sequence[str], n: int = 2) -> float:
    """Distinct n-grams over all n-grams of ``texts`` (lowercased words); 0.0 when none."""
    total = 0
    seen: set[tuple[str, ...]] = set()
    for text in texts:
        toks = text.lower().split()
        grams = [tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)]
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else 0.0


def _norm(text: str) -> str:
    return " ".join(text.split())


def generation_metrics(
    preds: list[str],
    refs: list[str],
    keywords: list[list[str]],
    train_problems: set[str],
) -> dict[str, float]:
    """rouge_l, bleu, keyword_coverage, well_formed_rate, answer_consistency, distinct_2, copy_rate.

    ``preds``/``refs`` are targets (``problem ||| equation``); ``keywords[i]`` are those requested
    for ``preds[i]``; ``train_problems`` holds the training problems' texts (for copy_rate).
    """
    import sacrebleu
    from rouge_score import rouge_scorer

    if not preds:
        raise ValueError("generation_metrics: no predictions")
    if not len(preds) == len(refs) == len(keywords):
        raise ValueError(
            f"generation_metrics: lengths differ (preds {len(preds)}, refs {len(refs)}, "
            f"keywords {len(keywords)})"
        )
    pred_parsed = [parse_target(p) for p in preds]
    pred_problems = [p for p, _ in pred_parsed]
    ref_problems = [parse_target(r)[0] for r in refs]
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    rouge = [
        scorer.score(r, p)["rougeL"].fmeasure
        for p, r in zip(pred_problems, ref_problems, strict=True)
    ]
    bleu = sacrebleu.corpus_bleu(pred_problems, [ref_problems]).score / 100.0
    train_norm = {_norm(t) for t in train_problems}
    n = len(preds)
    return {
        "rouge_l": sum(rouge) / n,
        "bleu": bleu,
        "keyword_coverage": sum(
            keyword_coverage(p, k) for p, k in zip(pred_problems, keywords, strict=True)
        )
        / n,
        "well_formed_rate": sum(well_formed(p) for p in pred_problems) / n,
        "answer_consistency": sum(check_consistency(p, e).ok for p, e in pred_parsed) / n,
        "distinct_2": distinct_n(pred_problems, 2),
        "copy_rate": sum(_norm(p) in train_norm for p in pred_problems) / n,
    }
