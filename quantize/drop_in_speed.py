"""Each generator variant timed as the backend's drop-in runs it: the one-file graph
``export-backend`` would build from it (fused step; the draft loop where its weights allow),
one prompt a call, a typed-role model's request decoded within its skeleton-bank trie.

Why beside the Python loop's latency: the two paths rank the variants differently. In the
Python loop (the HTTP app) dynamic int8 and fp32 cost the same at this model size; in the
one-file graph fp32 drafts and verifies several tokens a step, which the int8 variant cannot
(its MatMul inputs are quantized across the drafted rows), so fp32 is the faster drop-in.
``quantize_generator.speed_path`` says which latency ``fastest_passing`` ranks by.
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def drop_in_latencies(
    model_dirs: Mapping[str, Path],
    records: Sequence[Mapping[str, Any]],
    *,
    max_new_tokens: int,
    threads: int,
) -> dict[str, dict[str, Any]]:
    """Per variant: median ms a record through its one-file graph (None for a variant that has
    no one-file form: not a drop-in), and the graph's step kind (``export.generation_graph``
    metadata), timed interleaved record by record as ``quantize.generator.evaluate_variants``
    times the Python loop."""
    import json

    from tokenizers import Tokenizer
    from tqdm import tqdm

    from export.draft_loop import bank_sequences
    from export.generation_graph import (
        GenerationGraphError,
        GenerationSettings,
        build_loop_model,
        one_file_session,
        save_generation_model,
    )
    from serving.decode_loop import TOKENIZER_FILE
    from serving.generator import request_tries
    from serving.one_file import OneFileDecoder

    runs: dict[str, Any] = {}
    steps: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, d in model_dirs.items():
            settings = GenerationSettings.from_config(
                json.loads((d / "generation_config.json").read_text())
            )
            eos = settings.eos_token_id
            try:
                model = build_loop_model(
                    d, settings, fused_attention=True, draft=bank_sequences(d, eos=eos)
                )
            except GenerationGraphError as exc:  # static int8 (QDQ): no one-file form
                logger.warning("%s: not timed as a drop-in (%s)", name, exc)
                steps[name] = "none"
                continue
            steps[name] = {p.key: p.value for p in model.metadata_props}.get("step", "")
            path = Path(tmp) / f"{name}.onnx"
            save_generation_model(model, path)
            decoder = OneFileDecoder(
                one_file_session(path, threads=threads),
                Tokenizer.from_file(str(d / TOKENIZER_FILE)),
                eos_token_id=eos,
            )
            tries = request_tries(d, decoder.encode, records) or [None] * len(records)
            ids = [decoder.encode(str(r["prompt"])) for r in records]
            runs[name] = (decoder, ids, tries)
        times: dict[str, list[float]] = {n: [] for n in runs}
        for decoder, ids, tries in runs.values():  # warm-up, not timed
            decoder.generate(ids[0], max_new_tokens=max_new_tokens, trie=tries[0])
        for i in tqdm(range(len(records)), desc="drop-in latency", leave=False):
            for name, (decoder, ids, tries) in runs.items():
                t0 = time.perf_counter()
                decoder.generate(ids[i], max_new_tokens=max_new_tokens, trie=tries[i])
                times[name].append((time.perf_counter() - t0) * 1e3)
    out: dict[str, dict[str, Any]] = {
        n: {
            "latency_ms_median": float(statistics.median(times[n])) if n in times else None,
            "step": steps[n],
        }
        for n in model_dirs
    }
    logger.info("drop-in latency (ms): %s", {n: v["latency_ms_median"] for n, v in out.items()})
    return out
