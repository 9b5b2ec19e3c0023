"""Quality metrics of generated word problems (used by train_generator, export and quantize gates).

Every metric looks at what a user gets: each raw decoded text goes through
``serving.realize.render_output`` (keyword slots rendered, then number slots), the one
post-processing serving uses. ROUGE-L, BLEU, keywords, well-formedness, diversity and copying
look at the rendered problem; consistency checks it against its rendered equation. The
open-vocabulary metrics (:func:`unseen_metrics`) add grammar defects (``serving.grammar``) and
topic fidelity (``serving.topics``). All values are in [0, 1].
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from serving.consistency import check_consistency
from serving.keywords import keyword_present
from serving.numbers import format_answer
from serving.prompt import TARGET_SEP
from serving.realize import RenderedProblem

_DIGIT = re.compile(r"\d")
UNSEEN_PREFIX = "unseen"


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


def render_one(pred: str, request: Mapping[str, Any], index: int) -> RenderedProblem:
    """``render_output`` of one decoded text for its request: keywords, topic and grade, and
    seed ``index`` (the number values of ``<num>`` slots), so a metric run is reproducible."""
    from serving.lexicon import nouns_from_record
    from serving.story import render_any

    return render_any(
        pred,
        list(request.get("keywords", ())),
        topic=str(request.get("topic", "")),
        prompt_prefix=str(request.get("prompt_prefix", "")),
        seed=index,
        nouns=nouns_from_record(request),  # typed roles: what the lexicon knows of each keyword
    )


def render_all(
    preds: Sequence[str],
    keywords: Sequence[Sequence[str]],
    requests: Sequence[Mapping[str, Any]] | None = None,
) -> list[RenderedProblem]:
    """``render_output`` of every raw decoded text with its request's keywords (and topic and
    prefix when ``requests`` are given; prediction ``i`` gets number seed ``i``)."""
    reqs = requests if requests is not None else [{} for _ in preds]
    if len(reqs) != len(preds):
        raise ValueError(f"render_all: {len(preds)} predictions, {len(reqs)} requests")
    return [
        render_one(p, {**r, "keywords": list(k)}, i)
        for i, (p, k, r) in enumerate(zip(preds, keywords, reqs, strict=True))
    ]


def generation_metrics(
    preds: list[str],
    refs: list[str],
    keywords: list[list[str]],
    train_problems: set[str],
    requests: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, float]:
    """rouge_l, bleu, keyword_coverage, well_formed_rate, answer_consistency, distinct_2, copy_rate.

    ``preds``/``refs`` are raw targets (``problem ||| equation`` with keyword and number slots),
    both rendered with ``keywords[i]``, the keywords requested for ``preds[i]``;
    ``train_problems`` holds the training problems' texts (for copy_rate); ``requests`` (the
    records: topic, prompt_prefix) let ``<num>`` slots get values for their topic and grade,
    prediction and reference ``i`` with the same seed, so equal shapes get equal numbers.
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
    rendered = render_all(preds, keywords, requests)
    pred_problems = [r.problem_text for r in rendered]
    ref_problems = [r.problem_text for r in render_all(refs, keywords, requests)]
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
        "answer_consistency": sum(
            check_consistency(r.problem_text, r.equation_text).ok for r in rendered
        )
        / n,
        "distinct_2": distinct_n(pred_problems, 2),
        "copy_rate": sum(_norm(p) in train_norm for p in pred_problems) / n,
    }


def judge_unseen(
    rendered: RenderedProblem,
    topic: str,
    keywords: Sequence[str],
    nouns: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """Everything the open-vocabulary metrics ask of one rendered output (also for samples)."""
    from serving.grammar import grammar_defects
    from serving.topics import equation_fits_topic

    problem, equation = rendered.problem_text, rendered.equation_text
    consistency = check_consistency(problem, equation)
    typed: dict[str, Any] = {}
    if nouns is not None:
        from serving.story_checks import check_story

        checks = check_story(rendered, nouns)
        typed = {
            "role_fit": checks.role_fit,
            "entity_consistency": checks.entity_consistency and consistency.ok,
            "keyword_natural": checks.keyword_natural,
            "keywords_unused": [list(u) for u in checks.keywords_unused],
        }
    return {
        **typed,
        "missing_keywords": [k for k in keywords if not keyword_present(k, problem)],
        "keyword_coverage": keyword_coverage(problem, keywords),
        "grammar_defects": list(grammar_defects(problem, list(keywords))),
        "fits_topic": bool(equation is not None and equation_fits_topic(topic, equation)),
        "consistent": consistency.ok,
        "consistency_reason": consistency.reason,
        "well_formed": well_formed(problem),
    }


def unseen_metrics(preds: Sequence[str], records: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Metrics on the open-vocabulary requests (``records`` of ``test_unseen.jsonl``).

    ``keyword_coverage_unseen`` (whole word, any inflection: ``serving.keywords``),
    ``grammar_defect_rate`` (share of outputs with at least one ``serving.grammar`` defect, plus
    one ``grammar_<class>_rate`` per defect class; ``grammar_clean_rate`` is its complement),
    ``topic_fidelity`` (the rendered equation
    uses the topic's operations), ``answer_consistency_unseen`` and ``well_formed_unseen``.
    """
    if not preds:
        raise ValueError("unseen_metrics: no predictions")
    if len(preds) != len(records):
        raise ValueError(
            f"unseen_metrics: lengths differ (preds {len(preds)}, records {len(records)})"
        )
    from serving.lexicon import nouns_from_record

    judged = [
        judge_unseen(
            render_one(p, r, i), str(r["topic"]), list(r["keywords"]), nouns_from_record(r)
        )
        for i, (p, r) in enumerate(zip(preds, records, strict=True))
    ]
    n = len(judged)
    classes: Counter[str] = Counter()
    for j in judged:
        classes.update(set(j["grammar_defects"]))
    out = {
        "keyword_coverage_unseen": sum(j["keyword_coverage"] for j in judged) / n,
        "grammar_defect_rate": sum(bool(j["grammar_defects"]) for j in judged) / n,
        # the same, higher-is-better, for max-drop gates (which all read "a drop is worse")
        "grammar_clean_rate": sum(not j["grammar_defects"] for j in judged) / n,
        "topic_fidelity": sum(j["fits_topic"] for j in judged) / n,
        "answer_consistency_unseen": sum(j["consistent"] for j in judged) / n,
        "well_formed_unseen": sum(j["well_formed"] for j in judged) / n,
    }
    for name in ("doubled_word", "article", "number_agreement", "question", "unknown_token"):
        out[f"grammar_{name}_rate"] = classes.get(name, 0) / n
    out["shape_slot_rate"] = sum(shape_slot(p) for p in preds) / n
    typed = [j for j in judged if "role_fit" in j]
    if typed:  # typed roles: the rubric-aligned checks (docs/generator_eval.md)
        n_kw = sum(len(r["keywords"]) for r in records) or 1
        out["role_fit"] = sum(j["role_fit"] for j in typed) / len(typed)
        out["entity_consistency"] = sum(j["entity_consistency"] for j in typed) / len(typed)
        out["keyword_natural"] = sum(j["keyword_natural"] for j in typed) / len(typed)
        out["keywords_unused_rate"] = sum(len(j["keywords_unused"]) for j in typed) / n_kw
    return out


# Places where the templates write the word a shape is built around ("average speed", "its area
# in", "the new price in", "How much money does"), never a thing: a keyword slot there put a
# requested noun into a role it cannot play ("What is its average librarian in km per hour?").
_SHAPE_SLOT = re.compile(
    r"\baverage <k\d+s?>|\bits <k\d+s?> in\b|\bhow much <k\d+s?> does|\bwhat is the <k\d+s?> \?"
    r"|\bnew <k\d+s?> in\b|\bplay <k\d+s?>",
    re.I,
)


def shape_slot(decoded: str) -> bool:
    """Does a raw decoded text put a keyword slot where a shape word goes (see above)? A
    heuristic reading of the slot text, reported as ``shape_slot_rate``, not gated."""
    return bool(_SHAPE_SLOT.search(decoded.partition(TARGET_SEP)[0]))


def is_unseen_record(rec: Mapping[str, Any]) -> bool:
    """An open-vocabulary request (no reference target) rather than a template test record."""
    return str(rec.get("id", "")).startswith(UNSEEN_PREFIX) or "target" not in rec


def mixed_metrics(
    outputs: Sequence[str], records: Sequence[Mapping[str, Any]], train_problems: set[str]
) -> dict[str, float]:
    """Template metrics on the records with a reference target, open-vocabulary metrics on the
    unseen requests, in one dict: how the quantize stage and promotion score one artifact."""
    test = [(o, r) for o, r in zip(outputs, records, strict=True) if not is_unseen_record(r)]
    unseen = [(o, r) for o, r in zip(outputs, records, strict=True) if is_unseen_record(r)]
    out: dict[str, float] = {}
    if test:
        out.update(
            generation_metrics(
                [o for o, _ in test],
                [str(r["target"]) for _, r in test],
                [list(r["keywords"]) for _, r in test],
                train_problems,
                [r for _, r in test],
            )
        )
    if unseen:
        out.update(unseen_metrics([o for o, _ in unseen], [r for _, r in unseen]))
    if not out:
        raise ValueError("mixed_metrics: no records")
    return out


def served_unseen_metrics(
    service: Any,
    records: Sequence[Mapping[str, Any]],
    *,
    seed: int,
    max_length: int,
    outputs: list[dict[str, Any]] | None = None,
) -> dict[str, float]:
    """The open-vocabulary metrics of what the HTTP endpoint returns, not of one greedy pass.

    ``service`` is a ``serving.generator.GeneratorModel`` (seeded samples, retried up to
    ``generator_max_attempts`` times until a sample is consistent, uses every keyword and has no
    grammar defect: the policy ``POST /word-problem`` runs). Request ``i`` gets seed
    ``seed + i``, so the numbers are reproducible. The greedy metrics stay the ones the gates
    use: they are what the one-file backend graph returns (it decodes greedily, once). With
    ``outputs``, each request and what it got are appended there (:func:`served_samples_page`).
    """
    if not records:
        raise ValueError("served_unseen_metrics: no records")
    sums: Counter[str] = Counter()
    for i, rec in enumerate(records):
        res = service.generate(
            topic=str(rec["topic"]),
            keywords=list(rec["keywords"]),
            prompt_prefix=str(rec.get("prompt_prefix", "")),
            max_length=max_length,
            seed=seed + i,
        )
        rendered = RenderedProblem(
            problem_text=res.generated_problem_text,
            equation_text=res.equation,
            complete=res.generated_problem_text.endswith("?"),
        )
        judged = judge_unseen(rendered, str(rec["topic"]), list(rec["keywords"]))  # served text
        sums["keyword_coverage_unseen"] += judged["keyword_coverage"]
        sums["answer_consistency_unseen"] += res.consistent
        sums["grammar_defect_rate"] += bool(judged["grammar_defects"])
        sums["topic_fidelity"] += judged["fits_topic"]
        sums["mean_attempts"] += res.attempts
        unused = getattr(res, "keywords_unused", ())
        sums["keywords_unused"] += len(unused)
        sums["keywords"] += len(rec["keywords"])
        defects = getattr(res, "story_defects", ())
        sums["story_checks_ok"] += not defects
        for check in ("role_fit", "entity_consistency", "keyword_natural"):
            sums[check] += check not in defects
        if outputs is not None:
            outputs.append(
                {
                    "request": {k: rec.get(k, "") for k in ("topic", "keywords", "prompt_prefix")},
                    "problem": res.generated_problem_text,
                    "equation": res.equation,
                    "answer": None
                    if res.answer is None
                    else format_answer(res.answer, res.generated_problem_text),
                    "consistent": bool(res.consistent),
                    "keywords_unused": [list(u) for u in unused],
                    "story_defects": list(defects),
                }
            )
    n = len(records)
    n_kw = sums.pop("keywords") or 1
    out = {f"served_{k}": v / n for k, v in sorted(sums.items()) if k != "keywords_unused"}
    out["served_keywords_unused_rate"] = sums["keywords_unused"] / n_kw
    return out | {"served_n": float(n)}


def served_metrics(
    model_dir: Path,
    unseen: Sequence[Mapping[str, Any]],
    realistic: Sequence[Mapping[str, Any]] = (),
    *,
    seed: int,
    threads: int,
    max_new_tokens: int,
    outputs: dict[str, list[dict[str, Any]]] | None = None,
) -> dict[str, float]:
    """Open-vocabulary metrics of a generator directory through the HTTP endpoint's policy
    (``serving.generator.GeneratorModel.generate``: seeded samples, retries, checks) with the
    default serving settings (``LUDORA_SERVE_*`` of the environment are ignored here); with
    ``realistic`` requests, the same metrics on them as ``served_realistic_*`` and the share of
    their keywords used (``served_realistic_keywords_used_rate``). What the quantize stage gates
    and what promotion compares: users get this policy, not one free greedy pass. With
    ``outputs``, what each request got is kept under ``"unseen"`` and ``"realistic"``."""
    from serving.decode_loop import OnnxSeq2SeqGenerator
    from serving.generator import GeneratorModel, typed_parts
    from serving.limits import DEFAULT_MAX_LENGTH
    from serving.settings import ServingSettings

    settings = ServingSettings.from_env({})
    engine = OnnxSeq2SeqGenerator(model_dir, intra_op_num_threads=threads)
    service = GeneratorModel(
        artifact_dir=model_dir,
        manifest={},
        engine=engine,
        settings=settings,
        **typed_parts(model_dir, engine),
    )
    max_length = max(max_new_tokens, DEFAULT_MAX_LENGTH)
    kept = outputs if outputs is not None else {}
    out = served_unseen_metrics(
        service, unseen, seed=seed, max_length=max_length, outputs=kept.setdefault("unseen", [])
    )
    if realistic:
        real = served_unseen_metrics(
            service,
            realistic,
            seed=seed,
            max_length=max_length,
            outputs=kept.setdefault("realistic", []),
        )
        out |= {k.replace("served_", "served_realistic_", 1): v for k, v in real.items()}
        out["served_realistic_keywords_used_rate"] = 1.0 - real["served_keywords_unused_rate"]
    return out


def served_samples_page(
    outputs: Mapping[str, Sequence[Mapping[str, Any]]], *, n: int, seed: int, variant: str
) -> str:
    """``n`` seeded outputs of each request set as served (the HTTP policy, on the shipped
    variant), every one printed as it is: what a user reads, so what an engineer should read
    before trusting a metric. A greedy pass of the trained model without the skeleton trie
    writes word salad no user ever gets; it is logged to MLflow, not shown here."""
    import json
    import random

    titles = {
        "realistic": "Realistic requests (theme nouns that fit the topic, grade prefixes)",
        "unseen": "Open-vocabulary requests (random nouns; unusable ones are reported)",
    }
    lines = [
        "# Generator samples, as served",
        "",
        f"What `POST /word-problem` returns on the shipped variant (`{variant}`): the skeleton "
        f"trie, seeded sampling, retries and checks of `serving.generator`. {n} requests of each "
        f"set, drawn with seed {seed}; request i is generated with seed {seed} + i. Written by "
        "the `quantize_generator` stage; do not edit.",
        "",
    ]
    for name in ("realistic", "unseen"):
        rows = list(outputs.get(name, ()))
        if not rows:
            continue
        pick = sorted(random.Random(seed).sample(range(len(rows)), min(n, len(rows))))
        lines += [f"## {titles[name]}", ""]
        for k, i in enumerate(pick, start=1):
            row = rows[i]
            unused = "; ".join(f"{kw} ({why})" for kw, why in row["keywords_unused"]) or "none"
            lines += [
                f"{k}. `{json.dumps(row['request'], ensure_ascii=False)}`",
                "",
                f"   > {row['problem']}",
                "",
                f"   - equation `{row['equation']}` = {row['answer']}; consistent: "
                f"{'yes' if row['consistent'] else '**no**'}; story checks: "
                f"{', '.join(row['story_defects']) or 'ok'}; keywords not used: {unused}",
                "",
            ]
    return "\n".join(lines)
