"""Generator speed: PyTorch ``generate`` vs the ONNX Runtime loop with and without the KV cache.

For the same model and prompts, prints the median latency per prompt and tokens/second of each
path, their ratios, and the model sizes on disk. By default it uses the pipeline's checkpoint and
export (``outputs/models/generator``, ``outputs/onnx/generator``) when present; otherwise it builds
a T5 from ``params.yaml:train_generator.model`` with random weights, exports it to a temp dir and
uses random token prompts (so the figures measure speed only, not quality).

    .venv/bin/python bench/generator.py [--prompts 12] [--max-new-tokens 48] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

logger = logging.getLogger("bench.generator")


def _dir_mb(paths: list[Path]) -> float:
    return round(sum(p.stat().st_size for p in paths if p.is_file()) / 2**20, 2)


def _time_path(
    fn: Callable[[list[int]], list[int]], prompts: list[list[int]], repeats: int
) -> dict[str, float]:
    """Median latency per prompt (ms) and tokens/s over ``repeats`` passes (after a warm-up)."""
    fn(prompts[0])
    lat: list[float] = []
    tokens = 0
    total = 0.0
    for _ in range(repeats):
        for ids in prompts:
            t0 = time.perf_counter()
            out = fn(ids)
            dt = time.perf_counter() - t0
            lat.append(dt * 1e3)
            total += dt
            tokens += len(out)
    return {
        "median_ms": round(statistics.median(lat), 2),
        "tokens_per_s": round(tokens / total, 1),
        "mean_tokens": round(tokens / len(lat), 1),
    }


def _random_setup(workdir: Path, vocab: int, n_prompts: int, seed: int) -> tuple[Path, Path, list]:
    """Random-weight T5 from the params config, saved and exported; random-token prompts."""
    import numpy as np
    import torch
    from transformers import GenerationConfig, T5Config, T5ForConditionalGeneration

    from export.generator_onnx import export_onnx
    from pipelines.common import load_section

    torch.manual_seed(seed)
    model_cfg = dict(load_section("train_generator")["model"])
    cfg = T5Config(
        vocab_size=vocab, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, **model_cfg
    )
    model = T5ForConditionalGeneration(cfg).eval()
    model.generation_config = GenerationConfig(
        decoder_start_token_id=0, eos_token_id=1, pad_token_id=0, max_new_tokens=48
    )
    ckpt = workdir / "ckpt"
    model.save_pretrained(ckpt)
    (ckpt / "tokenizer.json").write_text("{}")  # export copies it; the bench never decodes
    onnx_dir = workdir / "onnx"
    export_onnx(T5ForConditionalGeneration.from_pretrained(ckpt).eval(), ckpt, onnx_dir, opset=18)
    (onnx_dir / "tokenizer.json").unlink()
    rng = np.random.default_rng(seed)
    prompts = [[*rng.integers(3, vocab, size=36).tolist(), 1] for _ in range(n_prompts)]
    return ckpt, onnx_dir, prompts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model-dir", type=Path, default=REPO / "outputs/models/generator")
    ap.add_argument("--onnx-dir", type=Path, default=REPO / "outputs/onnx/generator")
    ap.add_argument("--test-file", type=Path, default=REPO / "outputs/text/test.jsonl")
    ap.add_argument("--prompts", type=int, default=12)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--random", action="store_true", help="force the random-weight model")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import torch

    from export.generator_onnx import load_torch_model, torch_greedy_ids
    from serving.generation import OnnxSeq2SeqGenerator

    torch.set_num_threads(args.threads)
    tmp = tempfile.TemporaryDirectory()
    use_pipeline = (
        not args.random
        and (args.model_dir / "config.json").is_file()
        and (args.onnx_dir / "encoder_model.onnx").is_file()
    )
    if use_pipeline:
        gen = OnnxSeq2SeqGenerator(args.onnx_dir, intra_op_num_threads=args.threads)
        records = [json.loads(line) for line in args.test_file.read_text().splitlines()]
        prompts = [gen.encode(r["prompt"]) for r in records[: args.prompts]]
        ckpt, onnx_dir, source = args.model_dir, args.onnx_dir, "pipeline checkpoint"
    else:
        vocab = 2000
        ckpt, onnx_dir, prompts = _random_setup(Path(tmp.name), vocab, args.prompts, args.seed)
        gen = OnnxSeq2SeqGenerator(onnx_dir, intra_op_num_threads=args.threads)
        source = "random weights, params.yaml train_generator.model"
    model = load_torch_model(ckpt)
    n = args.max_new_tokens

    results = {
        "torch_generate": _time_path(
            lambda ids: torch_greedy_ids(model, ids, max_new_tokens=n), prompts, args.repeats
        ),
        "onnx_kv_cache": _time_path(
            lambda ids: gen.generate(ids, max_new_tokens=n, use_cache=True), prompts, args.repeats
        ),
        "onnx_no_cache": _time_path(
            lambda ids: gen.generate(ids, max_new_tokens=n, use_cache=False), prompts, args.repeats
        ),
    }
    same = sum(
        gen.generate(ids, max_new_tokens=n) == torch_greedy_ids(model, ids, max_new_tokens=n)
        for ids in prompts
    )
    t, c, nc = (
        results[k]["median_ms"] for k in ("torch_generate", "onnx_kv_cache", "onnx_no_cache")
    )
    report: dict[str, Any] = {
        "model": source,
        "n_params": sum(p.numel() for p in model.parameters()),
        "prompts": len(prompts),
        "max_new_tokens": n,
        "threads": args.threads,
        "results": results,
        "ratios": {
            "torch_over_onnx_cache_latency": round(t / c, 2),
            "no_cache_over_cache_latency": round(nc / c, 2),
        },
        "greedy_ids_equal_torch": f"{same}/{len(prompts)}",
        "size_mb": {
            "torch_checkpoint": _dir_mb(sorted(Path(ckpt).glob("*.safetensors"))),
            "onnx_total": _dir_mb(sorted(Path(onnx_dir).glob("*.onnx"))),
            **{p.name: _dir_mb([p]) for p in sorted(Path(onnx_dir).glob("*.onnx"))},
        },
    }
    print(json.dumps(report, indent=2))
    tmp.cleanup()


if __name__ == "__main__":
    main()
