"""A blind A/B rating: two models' samples of the same requests, pooled so raters cannot tell
which model wrote what.

Why: two ratings of two models by different raters on different days differ by as much as the
models do (a rater's strictness moves meets-all by 5-10 points), so a change is judged on one
pool. Both samples are drawn with ``training.rubric_sample`` from the same requests and seed;
``pool`` keeps one item per distinct text (equal outputs are rated once, for both), shuffles
them and splits them into parts, one per rater, with fresh ids; ``mapping.json`` (kept from the
raters) says which model's item each pooled id stands for. ``score`` maps the raters'
``ratings_*.json`` back, writes each sample's ``ratings_ab.json`` beside its items and returns
the shares per model::

    python -m training.rubric_ab pool eval/rubric/generator-v15-x eval/rubric/generator-v18-x \
        --out eval/rubric/ab-x --parts 8
    python -m training.rubric_ab score eval/rubric/ab-x
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.atomic import atomic_write_json
from training.rubric_sample import CRITERIA

MAPPING = "mapping.json"


def _yes(value: Any) -> bool:
    """A rater's verdict: JSON true, or "yes"/"true" where a rater wrote words."""
    if isinstance(value, str):
        return value.strip().lower() in ("yes", "true", "1")
    return bool(value)


def pool(samples: Sequence[Path], out: Path, *, parts: int, seed: int = 7) -> int:
    """Pool the ``items.json`` of ``samples`` into ``out/part<i>.json`` and ``out/mapping.json``;
    returns how many distinct items there are."""
    if parts < 1:
        raise ValueError(f"parts: {parts}; allowed: 1 or more")
    by_text: dict[tuple[Any, ...], dict[str, Any]] = {}
    mapping: dict[str, list[list[str]]] = {}
    for sample in samples:
        path = Path(sample) / "items.json"
        for item in json.loads(path.read_text(encoding="utf-8")):
            key = (item["topic"], tuple(item["keywords"]), item["prefix"], item["text"])
            if key not in by_text:
                pooled_id = f"x{len(by_text):03d}"
                by_text[key] = {**item, "id": pooled_id}
                mapping[pooled_id] = []
            mapping[by_text[key]["id"]].append([str(sample), item["id"]])
    items = list(by_text.values())
    random.Random(seed).shuffle(items)
    out.mkdir(parents=True, exist_ok=True)
    for i in range(parts):
        atomic_write_json(out / f"part{i}.json", items[i::parts])
    atomic_write_json(out / MAPPING, mapping)
    return len(items)


def score(out: Path) -> dict[str, dict[str, Any]]:
    """Per sample directory: ``n`` rated and the share of each criterion; each sample's
    ``ratings_ab.json`` is written beside its items."""
    mapping = json.loads((out / MAPPING).read_text(encoding="utf-8"))
    rated: dict[str, dict[str, Any]] = {}
    for path in sorted(out.glob("ratings_*.json")):
        for r in json.loads(path.read_text(encoding="utf-8")):
            rated[r["id"]] = r
    per: dict[str, dict[str, dict[str, bool]]] = {}
    for pooled_id, r in rated.items():
        for sample, item_id in mapping.get(pooled_id, []):
            per.setdefault(sample, {})[item_id] = {c: _yes(r[c]) for c in CRITERIA}
    shares: dict[str, dict[str, Any]] = {}
    for sample, ratings in sorted(per.items()):
        rows = [{"id": i, **v} for i, v in sorted(ratings.items())]
        atomic_write_json(Path(sample) / "ratings_ab.json", rows)
        n = len(rows)
        shares[sample] = {
            "n": n,
            **{c: round(sum(v[c] for v in ratings.values()) / n, 3) for c in CRITERIA},
        }
    return shares


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point (see the module doc)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pool", help="pool samples into rating parts")
    p.add_argument("samples", type=Path, nargs="+")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--parts", type=int, default=8)
    p.add_argument("--seed", type=int, default=7)
    s = sub.add_parser("score", help="map the ratings back and print the shares per sample")
    s.add_argument("out", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "pool":
        n = pool(args.samples, args.out, parts=args.parts, seed=args.seed)
        print(f"{n} distinct items in {args.parts} parts -> {args.out}")
    else:
        print(json.dumps(score(args.out), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
