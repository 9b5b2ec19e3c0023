"""Nightly quests throughput: bank generation (problems/s) and drawing (learners/s), both engines.

Bank: ``training.quests.build_bank`` with the shipped generator variant of ``dvc repro``
(``outputs/onnx/generator_variants/<shipped>``), ``--bank-size`` problems for each of
``--topics`` topics at grade 4, through the practice-set endpoint's own checks. Drawing:
``pipelines.quests.draw_all`` over ``--learners`` synthetic learners x 14 topics in parts of
1,000 learners, local and on a Dask LocalCluster (2 workers). Prints one JSON line.

    .venv/bin/python bench/quests.py [--learners 20000] [--bank-size 12] [--topics 14]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    import pandas as pd

    from features.engine import DaskConfig
    from pipelines.engines import DaskEngine, Engine, LocalEngine
    from pipelines.quests import (
        QUANTIZE_METRICS,
        VARIANTS_DIR,
        draw_all,
        open_source,
        shipped_variant,
    )
    from serving.topics import SUPPORTED_TOPICS
    from training.quests import QuestsConfig, bank_index, build_bank

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--learners", type=int, default=20_000)
    ap.add_argument("--bank-size", type=int, default=12)
    ap.add_argument("--topics", type=int, default=len(SUPPORTED_TOPICS))
    args = ap.parse_args()

    topics = list(SUPPORTED_TOPICS[: args.topics])
    source, _ = open_source(shipped_variant(VARIANTS_DIR, QUANTIZE_METRICS))
    cfg = QuestsConfig(bank_size=args.bank_size)  # grade 4, seed 0: the section's defaults
    t0 = time.perf_counter()
    bank = build_bank(source, topics, cfg)
    bank_s = time.perf_counter() - t0
    index = bank_index(bank)

    rng = np.random.default_rng(0)
    users = [f"u{i:06d}" for i in range(args.learners)]
    out: dict[str, object] = {
        "bank_problems": len(bank),
        "bank_seconds": round(bank_s, 2),
        "bank_problems_per_s": round(len(bank) / bank_s, 1),
        "learners": args.learners,
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        parts = []
        for i, start in enumerate(range(0, len(users), 1000)):
            block = users[start : start + 1000]
            frame = pd.DataFrame(
                {
                    "user_id": np.repeat(block, len(topics)),
                    "topic_id": topics * len(block),
                    "weakness_probability": rng.uniform(0, 1, len(block) * len(topics)),
                    "action_level": "review",
                }
            )
            parts.append(root / f"part-{i:05d}.parquet")
            frame.to_parquet(parts[-1], index=False)
        for engine in ("local", "dask"):
            dest = root / engine
            dest.mkdir()
            t0 = time.perf_counter()
            chosen: Engine = LocalEngine()
            if engine == "dask":
                chosen = DaskEngine(DaskConfig(memory_limit="1GiB"))
            n, rows, _ = draw_all(parts, dest, index, cfg, engine=chosen)
            secs = time.perf_counter() - t0
            out[f"draw_{engine}_seconds"] = round(secs, 2)
            out[f"draw_{engine}_learners_per_s"] = round(n / secs, 0)
            out[f"draw_{engine}_rows"] = rows
    print(json.dumps(out))


if __name__ == "__main__":
    main()
