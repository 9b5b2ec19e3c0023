"""Stage ``export_generator``: ONNX export of the generator with past key/values + parity gate.

Exports into a temporary directory, opens it with the serving loop
(:class:`serving.decode_loop.OnnxSeq2SeqGenerator`), compares greedy ids and first-step logits
with PyTorch on test prompts, and only then renames it to ``outputs/onnx/generator/`` and writes
``metrics/generator_export.json``. A failed gate leaves no output behind.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from data.params import Range
from pipelines import paths
from pipelines.common import (
    atomic_path,
    atomic_write_json,
    build_config,
    load_section,
    stage_main,
)
from serving.limits import DEFAULT_MAX_LENGTH

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportGeneratorConfig:
    """The ``export_generator`` params section, validated once (every key is required: the
    values live in params.yaml)."""

    opset: Annotated[int, Range(14, 21, integer=True)]
    n_parity_prompts: Annotated[int, Range(1, 10_000, integer=True)]
    min_match_share: Annotated[float, Range(0.0, 1.0)]
    logits_atol: Annotated[float, Range(0.0, 1.0, lo_open=True)]
    num_threads: Annotated[int, Range(1, 64, integer=True)]


def run(
    cfg: ExportGeneratorConfig,
    *,
    model_dir: Path,
    test_file: Path,
    onnx_dir: Path,
    metrics_file: Path,
    max_new_tokens: int = DEFAULT_MAX_LENGTH,
) -> dict[str, Any]:
    """Export, gate, and publish; returns the metrics written.

    Parity is checked over ``max_new_tokens`` greedy tokens: by default what a request decodes
    when it names no length (``serving.limits.DEFAULT_MAX_LENGTH``, the generator's one length
    knob; not a params key).
    """
    import torch
    from transformers import AutoTokenizer

    from data.word_problems.corpus import read_jsonl
    from export import generator_onnx as gx
    from serving.decode_loop import OnnxSeq2SeqGenerator
    from training.generator import encode_text

    torch.set_num_threads(cfg.num_threads)
    # The exporter patches the model it traces (HF generate then rejects it): give it its own copy.
    model = gx.load_torch_model(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    records = read_jsonl(
        test_file, required=(), nonempty=("prompt", "target"), limit=cfg.n_parity_prompts
    )
    prompts = [r["prompt"] for r in records]
    max_source_len = _max_source_len(model_dir)
    input_ids = [encode_text(tokenizer, p, max_source_len) for p in prompts]

    with atomic_path(onnx_dir) as tmp:
        files = gx.export_onnx(gx.load_torch_model(model_dir), model_dir, tmp, opset=cfg.opset)
        generator = OnnxSeq2SeqGenerator(
            tmp, intra_op_num_threads=cfg.num_threads, graph_optimization_level="all"
        )
        report = gx.check_parity(
            model,
            generator,
            prompts,
            input_ids,
            max_new_tokens=max_new_tokens,
            atol=cfg.logits_atol,
            min_match_share=cfg.min_match_share,
        )
        draft = gx.manifest_draft(
            tmp,
            opset=cfg.opset,
            model_config=model.config,
            max_new_tokens=int(model.generation_config.max_new_tokens or max_new_tokens),
        )
        draft["parity"] = {
            **report.as_metrics(),
            "min_match_share": cfg.min_match_share,
            "logits_atol": cfg.logits_atol,
        }
        atomic_write_json(tmp / "manifest.draft.json", draft)
        logger.info("exported %s", files)
    sizes = {k: int(v) for k, v in draft["sizes_bytes"].items() if k.endswith(".onnx")}
    metrics = {
        **report.as_metrics(),
        "onnx_total_mb": round(sum(sizes.values()) / 2**20, 3),
        **{f"size_mb.{k}": round(v / 2**20, 3) for k, v in sizes.items()},
    }
    atomic_write_json(metrics_file, metrics)
    return metrics


def _max_source_len(model_dir: Path) -> int:
    """Prompt truncation length saved by training (same encoding as the evaluation)."""
    import json

    path = model_dir / "training_config.json"
    if path.is_file():
        value = json.loads(path.read_text()).get("max_source_len")
        if isinstance(value, int) and value > 0:
            return value
    return 512


def main() -> None:
    """Entry point of `python -m pipelines.export_generator` (paths declared in paths.py)."""
    section = load_section("export_generator")
    run(
        build_config(ExportGeneratorConfig, section, "params.yaml:export_generator"),
        max_new_tokens=DEFAULT_MAX_LENGTH,  # serving's default request length
        **paths.stage_args("export_generator"),
    )


if __name__ == "__main__":
    stage_main(main)
