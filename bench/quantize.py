"""Size and speed of the generator's int8 variants against fp32, measured in one run.

Usage: .venv/bin/python bench/quantize.py [--model-dir DIR] [--prompts N] [--rounds R]

By default it quantizes `outputs/onnx/generator` (the exported model) with the settings in
params.yaml. Without an exported model it exports a random-weight T5 of the architecture in
`train_generator.model` (size and speed depend on the architecture, not on the weights; quality
numbers then mean nothing and come from `metrics/quantize.json` instead). Variants are timed in
interleaved rounds on the same prompts with one intra-op thread, so machine noise hits all alike;
ratios are what we report.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import add_out, write_report  # noqa: E402  (after the repo is on sys.path)

logger = logging.getLogger("bench.quantize")


def random_model(out: Path, prompts: list[str], arch_override: dict | None = None) -> Path:
    """Export a random T5 with the configured architecture and a word-level tokenizer."""
    import torch
    from optimum.exporters.onnx import onnx_export_from_model
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers
    from transformers import T5Config, T5ForConditionalGeneration

    from pipelines.common import load_section

    arch = dict(load_section("train_generator")["model"])
    arch.update(arch_override or {})
    vocab_size = int(load_section("prepare_text").get("vocab_size", 2000))
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for p in prompts:
        for w in p.split():
            if len(vocab) < vocab_size:
                vocab.setdefault(w, len(vocab))
    for i in range(len(vocab), vocab_size):
        vocab[f"<extra_{i}>"] = i
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_special_tokens([AddedToken(s, special=True) for s in ("<pad>", "</s>", "<unk>")])
    torch.manual_seed(0)
    cfg = T5Config(
        vocab_size=vocab_size,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
        **{k: v for k, v in arch.items() if k != "dropout_rate"},
    )
    model = T5ForConditionalGeneration(cfg).eval()
    onnx_export_from_model(
        model, str(out), task="text2text-generation-with-past", do_validation=False
    )
    tok.save(str(out / "tokenizer.json"))
    return out


def main() -> None:
    """Build the variants, time them interleaved, print size and speed ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=ROOT / "outputs/onnx/generator")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--repeats", "--rounds", type=int, default=3, help="timed passes")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    add_out(parser)
    parser.add_argument(
        "--arch",
        type=json.loads,
        default=None,
        help='random model only: T5Config overrides, e.g. \'{"d_model": 512, "d_ff": 2048}\'',
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from pipelines.common import build_config, load_section
    from pipelines.quantize_generator import QuantizeConfig, build_variants
    from quantize import generator as qg
    from serving.decode_loop import OnnxSeq2SeqGenerator
    from serving.onnx_files import ENCODER_FILE

    cfg = build_config(QuantizeConfig, load_section("quantize_generator"), "quantize_generator")
    test_file = ROOT / "outputs/text/test.jsonl"
    if test_file.is_file():
        lines = test_file.read_text().splitlines()
        prompts = [json.loads(line)["prompt"] for line in lines[: args.prompts * 2]]
    else:
        prompts = [
            f"generate word problem about topic{i} using keywords apple, pear: grade {i}"
            for i in range(args.prompts * 2)
        ]
    calib, evals = prompts[: args.prompts], prompts[args.prompts :][: args.prompts] or prompts
    work = Path(tempfile.mkdtemp(prefix="bench-quantize-"))
    src = args.model_dir
    source = "exported model"
    if args.arch is not None or not (src / ENCODER_FILE).is_file():
        src = random_model(work / "random", prompts, args.arch)
        source = f"random-weight T5 (train_generator.model + {args.arch or {}})"
    names = list(build_variants(cfg, src, work, calib, args.max_new_tokens))
    gens = {n: OnnxSeq2SeqGenerator(work / n, intra_op_num_threads=1) for n in names}
    per_prompt: dict[str, list[float]] = {n: [] for n in names}
    per_token: dict[str, list[float]] = {n: [] for n in names}
    for g in gens.values():
        g.generate(evals[0], max_new_tokens=args.max_new_tokens)  # warm-up
    for _ in range(args.repeats):
        for p in evals:
            for n in names:  # interleaved: the same moment of machine load for every variant
                t0 = time.perf_counter()
                ids = gens[n].generate(p, max_new_tokens=args.max_new_tokens)
                ms = (time.perf_counter() - t0) * 1e3
                per_prompt[n].append(ms)
                per_token[n].append(ms / max(len(ids), 1))
    base_size = qg.size_mb(work / "fp32")
    base_prompt = statistics.median(per_prompt["fp32"])
    base_token = statistics.median(per_token["fp32"])
    rows = []
    print(f"source: {source} ({src}); {len(evals)} prompts x {args.repeats} rounds, 1 thread")
    print(
        f"{'variant':<14}{'size MB':>9}{'size %':>8}{'ms/prompt':>11}{'speedup':>9}"
        f"{'ms/token':>10}{'speedup/tok':>12}"
    )
    for n in names:
        size = qg.size_mb(work / n)
        mp, mt = statistics.median(per_prompt[n]), statistics.median(per_token[n])
        row = {
            "variant": n,
            "size_mb": round(size, 3),
            "size_ratio": round(size / base_size, 3),
            "ms_per_prompt": round(mp, 2),
            "speedup": round(base_prompt / mp, 2),
            "ms_per_token": round(mt, 3),
            "speedup_per_token": round(base_token / mt, 2),
        }
        rows.append(row)
        print(
            f"{n:<14}{size:>9.2f}{100 * size / base_size:>7.1f}%{mp:>11.1f}"
            f"{base_prompt / mp:>8.2f}x{mt:>10.2f}{base_token / mt:>11.2f}x"
        )
    write_report({"source": source, "rows": rows}, args.out)


if __name__ == "__main__":
    main()
