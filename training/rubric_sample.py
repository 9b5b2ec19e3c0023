"""Blind rubric sample: draw requests, write the problems with ids only, keep the key apart.

``python -m training.rubric_sample --requests A.json [B.json ...] --n 100 --out DIR`` draws
``n`` requests (seeded) from the request files ({topic, keywords, prompt_prefix} lists), writes
``DIR/items.json`` (what a blind rater sees: id, topic, keywords, prefix, text, stated_answer)
and ``DIR/key.json`` (what produced each item and what the automatic checks said), so a rater
who has seen neither the code nor the metrics rates ``items.json`` against
``docs/generator_eval.md``'s rubric. ``--selector model --model REF`` (the default) runs a
generator artifact through the HTTP endpoint's policy; ``--selector rules`` renders the typed-role
skeleton bank with the rule-based selector (``data.word_problems.skeletons.choose_skeleton``): the
baseline the trained generator must match.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from core.atomic import atomic_write_json

logger = logging.getLogger(__name__)


def load_requests(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """Every request of the files, each checked for its three fields."""
    out = []
    for path in paths:
        items = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(items, list):
            raise ValueError(f"{path}: expected a JSON list of requests")
        for i, r in enumerate(items):
            if not isinstance(r, dict) or not {"topic", "keywords"} <= set(r):
                raise ValueError(f"{path}: item {i}: needs 'topic' and 'keywords'")
            out.append(
                {
                    "topic": r["topic"],
                    "keywords": list(r["keywords"]),
                    "prompt_prefix": r.get("prompt_prefix", ""),
                    "from": str(path),
                }
            )
    return out


def _rater_item(i: int, req: Mapping[str, Any], text: str, answer: float | None) -> dict[str, Any]:
    """What the blind rater sees of request ``i``'s problem, whoever wrote it (no model, skeleton
    or check result: those go to the key under the same id)."""
    from serving.numbers import format_answer

    return {
        "id": f"p{i:03d}",
        "topic": req["topic"],
        "keywords": req["keywords"],
        "prefix": req["prompt_prefix"],
        "text": text,
        "stated_answer": None if answer is None else format_answer(answer, text),
    }


def rules_items(
    requests: Sequence[dict[str, Any]], *, lexicon_path: Path, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(items, key) for the rule-based selector over the skeleton bank."""
    from data.word_problems.skeletons import choose_skeleton, load_bank, render_request
    from serving.lexicon import Lexicon
    from serving.topics import canonical_topic

    bank = load_bank()
    lexicon = Lexicon.load(lexicon_path)
    rng = random.Random(seed)
    items, key = [], []
    for i, req in enumerate(requests):
        topic = canonical_topic(req["topic"]) or req["topic"]
        sk = choose_skeleton(bank, topic, req["keywords"], lexicon, rng)
        r = render_request(
            sk,
            req["keywords"],
            prompt_prefix=req["prompt_prefix"],
            lexicon=lexicon,
            seed=rng.randrange(2**31),
        )
        items.append(_rater_item(i, req, r.text, r.answer))
        key.append(
            {
                "id": items[-1]["id"],
                "skeleton": sk.source,
                "equation": r.equation,
                "bindings": [[b.keyword, b.role, b.index] for b in r.bindings],
                "keywords_unused": [list(u) for u in r.unused],
                "request_from": req["from"],
            }
        )
    return items, key


def model_items(
    requests: Sequence[dict[str, Any]], *, model_ref: str, seed: int, max_length: int = 96
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(items, key) from a generator artifact through the HTTP endpoint's policy
    (``serving.generator``: seeded samples, retried on the checks), as a teacher gets them."""
    from serving.generator import load_generator
    from serving.settings import ServingSettings
    from serving.topics import canonical_topic

    model = load_generator(model_ref, ServingSettings.from_env())
    items, key = [], []
    for i, req in enumerate(requests):
        topic = canonical_topic(req["topic"]) or req["topic"]
        res = model.generate(
            topic=topic,
            keywords=req["keywords"],
            prompt_prefix=req["prompt_prefix"],
            max_length=max_length,
            seed=seed + i,
        )
        items.append(_rater_item(i, req, res.generated_problem_text, res.answer))
        key.append(
            {
                "id": items[-1]["id"],
                "model": str(model_ref),
                "version": model.manifest.get("version"),
                "equation": res.equation,
                "consistent": res.consistent,
                "attempts": res.attempts,
                "reason": res.reason,
                "keywords_unused": [list(u) for u in res.keywords_unused],
                "story_defects": list(res.story_defects),
                "request_from": req["from"],
            }
        )
    return items, key


CRITERIA = (
    "solvable",
    "accurate",
    "sensible",
    "keywords_natural",
    "on_topic",
    "grade_ok",
    "meets_all",
)


def summarize(sample_dir: Path) -> dict[str, Any]:
    """Share of each criterion over every ``ratings*.json`` of a rated sample directory."""
    ratings: list[dict[str, Any]] = []
    for path in sorted(Path(sample_dir).glob("ratings*.json")):
        ratings += json.loads(path.read_text(encoding="utf-8"))
    if not ratings:
        raise ValueError(f"{sample_dir}: no ratings*.json")
    n = len(ratings)
    return {"n": n, **{c: round(sum(bool(r[c]) for r in ratings) / n, 3) for c in CRITERIA}}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point (see the module doc)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--summarize", type=Path, help="print the shares of a rated sample dir")
    ap.add_argument("--requests", type=Path, nargs="+")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lexicon", type=Path, default=Path("outputs/lexicon/nouns.tsv"))
    ap.add_argument("--selector", choices=["rules", "model"], default="model")
    ap.add_argument("--model", default="champion", help="artifact path, version or alias")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    if args.summarize is not None:
        print(json.dumps(summarize(args.summarize)))
        return 0
    if not args.requests or args.out is None:
        ap.error("--requests and --out are required to draw a sample")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    requests = load_requests(args.requests)
    rng = random.Random(args.seed)
    drawn = rng.sample(requests, min(args.n, len(requests)))
    if args.selector == "rules":
        items, key = rules_items(drawn, lexicon_path=args.lexicon, seed=args.seed)
    else:
        items, key = model_items(drawn, model_ref=args.model, seed=args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "items.json", items)
    atomic_write_json(args.out / "key.json", key)
    unused = sum(len(k["keywords_unused"]) for k in key)
    n_kw = sum(len(i["keywords"]) for i in items)
    logger.info("%d items -> %s; keywords unused %d of %d", len(items), args.out, unused, n_kw)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
