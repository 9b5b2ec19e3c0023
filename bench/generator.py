"""Generator speed: the project's ONNX paths against CTranslate2 and PyTorch, in one process.

For the same checkpoint and prompts (greedy, batch 1, one thread), times, interleaved prompt by
prompt so every path sees the same machine load:

- ``onnx_python_loop``: ``serving.decode_loop.OnnxSeq2SeqGenerator`` (today's serving loop), fp32,
  and its dynamic int8 variant when the quantize stage wrote one (``--int8-dir``);
- ``onnx_one_file_loop_mha`` / ``onnx_one_file_loop``: the one-file graph export-backend ships
  (``export.generation_graph.build_loop_model``: greedy in an ONNX ``Loop`` with the lean step,
  with / without fused ``MultiHeadAttention``), from the same export (and the int8 variant);
- ``onnx_one_file_loop_optimum_body``: the same Loop around optimum's own decoder-with-past;
- ``onnx_one_file_beamsearch``: ORT's ``BeamSearch`` contrib op (num_beams=1);
- ``torch_generate``: PyTorch ``generate(num_beams=1, do_sample=False)``;
- ``ct2_fp32`` / ``ct2_int8``: CTranslate2 (the peer), converted from the same checkpoint with
  ``ctranslate2.converters.TransformersConverter``.

Ratios are against ``onnx_python_loop`` fp32 (the project's loop), measured in the same run; the
greedy ids of every path are compared with it. ``--shape t5-small`` builds a random-weight T5 of
t5-small's shape (512 wide, 6+6 layers, 8 heads, vocab 32,128) saved locally; ``--shape default``
uses the pipeline checkpoint and export when present, else the configured architecture with random
weights. CTranslate2 is a bench-only dependency (``pip install -e '.[bench]'``).

    nice -n 10 .venv/bin/python bench/generator.py [--shape default|t5-small|both]
        [--prompts 12] [--max-new-tokens 48] [--repeats 2] [--threads 1]
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

T5_SMALL = {
    "d_model": 512,
    "d_ff": 2048,
    "d_kv": 64,
    "num_layers": 6,
    "num_decoder_layers": 6,
    "num_heads": 8,
    "vocab_size": 32128,
}
Path_fn = Callable[[list[int]], list[int]]


def _dir_mb(paths: list[Path]) -> float:
    return round(sum(p.stat().st_size for p in paths if p.is_file()) / 2**20, 2)


def _word_tokenizer(ckpt: Path, vocab: int) -> None:
    """A word-level tokenizer of ``vocab`` ids (pad 0, eos 1, unk 2): CTranslate2 needs one."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{f"w{i}": i for i in range(3, vocab)}}
    tok = Tokenizer(models.WordLevel(words, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    ).save_pretrained(str(ckpt))


def random_setup(
    workdir: Path, model_cfg: dict[str, Any], n_prompts: int, seed: int
) -> tuple[Path, Path, list[list[int]]]:
    """Random-weight T5 saved as a checkpoint (+ tokenizer), exported; random-token prompts."""
    import numpy as np
    import torch
    from transformers import GenerationConfig, T5Config, T5ForConditionalGeneration

    from export.generator_onnx import export_onnx

    torch.manual_seed(seed)
    cfg = dict(model_cfg)
    vocab = int(cfg.pop("vocab_size", 2000))
    t5 = T5Config(vocab_size=vocab, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, **cfg)
    model = T5ForConditionalGeneration(t5).eval()
    model.generation_config = GenerationConfig(
        decoder_start_token_id=0, eos_token_id=1, pad_token_id=0, max_new_tokens=48
    )
    ckpt = workdir / "ckpt"
    model.save_pretrained(ckpt)
    _word_tokenizer(ckpt, vocab)
    onnx_dir = workdir / "onnx"
    export_onnx(T5ForConditionalGeneration.from_pretrained(ckpt).eval(), ckpt, onnx_dir, opset=18)
    rng = np.random.default_rng(seed)
    prompts = [[*rng.integers(3, vocab, size=36).tolist(), 1] for _ in range(n_prompts)]
    return ckpt, onnx_dir, prompts


def ct2_paths(ckpt: Path, workdir: Path, n: int, threads: int) -> dict[str, Path_fn]:
    """CTranslate2 fp32 and int8 translators of the checkpoint, mapped to ids."""
    import ctranslate2
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(ckpt / "tokenizer.json"))
    out: dict[str, Path_fn] = {}
    for quant in ("float32", "int8"):
        target = workdir / f"ct2_{quant}"
        ctranslate2.converters.TransformersConverter(str(ckpt)).convert(
            str(target), quantization=quant, force=True
        )
        tr = ctranslate2.Translator(
            str(target), device="cpu", inter_threads=1, intra_threads=threads
        )

        def run(ids: list[int], tr: Any = tr) -> list[int]:
            src = [tok.id_to_token(i) for i in ids]
            res = tr.translate_batch([src], beam_size=1, max_decoding_length=n)
            return [int(tok.token_to_id(t)) for t in res[0].hypotheses[0]]

        out[f"ct2_{'fp32' if quant == 'float32' else 'int8'}"] = run
    return out


def interleaved(paths: dict[str, Path_fn], prompts: list[list[int]], repeats: int) -> dict:
    """Median ms / prompt and tokens / s per path, every prompt run by every path in turn."""
    for fn in paths.values():
        fn(prompts[0])  # warm-up
    lat: dict[str, list[float]] = {k: [] for k in paths}
    toks = dict.fromkeys(paths, 0)
    for _ in range(repeats):
        for ids in prompts:
            for name, fn in paths.items():
                t0 = time.perf_counter()
                out = fn(ids)
                lat[name].append((time.perf_counter() - t0) * 1e3)
                toks[name] += len(out)
    return {
        k: {
            "median_ms": round(statistics.median(v), 2),
            "tokens_per_s": round(toks[k] / (sum(v) / 1e3), 1),
            "mean_tokens": round(toks[k] / len(v), 1),
        }
        for k, v in lat.items()
    }


def build_paths(
    ckpt: Path, onnx_dir: Path, int8_dir: Path | None, workdir: Path, n: int, threads: int
) -> dict[str, Path_fn]:
    """Every path of the bench over the same checkpoint."""
    import json as _json

    import torch

    from export.generation_graph import (
        GenerationSettings,
        build_beam_search_model,
        build_loop_model,
        dir_slot_guard,
        one_file_session,
        run_greedy,
        save_generation_model,
    )
    from export.generator_onnx import load_torch_model, torch_greedy_ids
    from serving.decode_loop import OnnxSeq2SeqGenerator
    from serving.realize import banned_slot_ids

    torch.set_num_threads(threads)
    paths: dict[str, Path_fn] = {}
    dirs = {"fp32": onnx_dir, **({"int8": int8_dir} if int8_dir else {})}

    def python_loop(g: OnnxSeq2SeqGenerator) -> Path_fn:
        return lambda ids: g.generate(ids, max_new_tokens=n)

    def one_file(sess: Any, eos: int) -> Path_fn:
        return lambda ids: run_greedy(sess, ids, max_new_tokens=n, eos_token_id=eos)

    for tag, d in dirs.items():
        paths[f"onnx_python_loop_{tag}"] = python_loop(
            OnnxSeq2SeqGenerator(d, intra_op_num_threads=threads)
        )
        settings = GenerationSettings.from_config(
            _json.loads((d / "generation_config.json").read_text())
        )
        # the shipped candidates first: lean step with fused MultiHeadAttention, exact lean step
        # (an int8 export has no fp32 weights to read: the Loop keeps optimum's body there)
        graphs: list[tuple[str, Callable[..., Any], dict[str, Any]]] = [
            ("loop", build_loop_model, {}),
        ]
        if tag == "fp32":
            graphs += [
                ("loop_mha", build_loop_model, {"fused_attention": True}),
                ("loop_optimum_body", build_loop_model, {"lean": False}),
                ("beamsearch", build_beam_search_model, {}),
            ]
        for kind, build, kwargs in graphs:
            one = workdir / f"one_file_{kind}_{tag}.onnx"
            save_generation_model(build(d, settings, **kwargs), one)
            sess = one_file_session(one, threads=threads)
            paths[f"onnx_one_file_{kind}_{tag}"] = one_file(sess, settings.eos_token_id)
    model = load_torch_model(ckpt)
    guard = dir_slot_guard(onnx_dir)  # the keyword-slot guard every ONNX path applies
    paths["torch_generate"] = lambda ids: torch_greedy_ids(
        model, ids, max_new_tokens=n, banned=banned_slot_ids(ids, guard)
    )
    paths.update(ct2_paths(ckpt, workdir, n, threads))
    return paths


def dynamic_int8(onnx_dir: Path, out: Path) -> Path:
    """The quantize stage's dynamic int8 variant (its recipe from params.yaml) of ``onnx_dir``."""
    from pipelines.common import load_section
    from quantize.generator import make_dynamic

    q = load_section("quantize_generator")
    make_dynamic(
        onnx_dir,
        out,
        weight_type=q["weight_type"],
        per_channel=q["per_channel"],
        reduce_range=q["reduce_range"],
        op_types=q["op_types_to_quantize"],
        exclude_patterns=q["dynamic_exclude_nodes"],
    )
    return out


def bench_setup(
    name: str,
    ckpt: Path,
    onnx_dir: Path,
    int8_dir: Path | None,
    prompts: list[list[int]],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Time every path on one setup; ratios vs the fp32 Python loop; ids compared with it."""
    with tempfile.TemporaryDirectory() as tmp:
        if int8_dir is None:  # no quantize-stage variant: build it with the stage's recipe
            int8_dir = dynamic_int8(onnx_dir, Path(tmp) / "int8")
        paths = build_paths(ckpt, onnx_dir, int8_dir, Path(tmp), args.max_new_tokens, args.threads)
        ref = paths["onnx_python_loop_fp32"]
        want = [ref(p) for p in prompts]
        same = {
            k: sum(fn(p) == w for p, w in zip(prompts, want, strict=True))
            for k, fn in paths.items()
        }
        results = interleaved(paths, prompts, args.repeats)
    base = results["onnx_python_loop_fp32"]["median_ms"]
    for k, r in results.items():
        r["vs_python_loop_fp32"] = round(base / r["median_ms"], 2)
        r["ids_equal_python_loop_fp32"] = f"{same[k]}/{len(prompts)}"
    return {
        "setup": name,
        "prompts": len(prompts),
        "max_new_tokens": args.max_new_tokens,
        "threads": args.threads,
        "results": results,
        "onnx_mb": _dir_mb(sorted(onnx_dir.glob("*.onnx"))),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model-dir", type=Path, default=REPO / "outputs/models/generator")
    ap.add_argument("--onnx-dir", type=Path, default=REPO / "outputs/onnx/generator")
    ap.add_argument(
        "--int8-dir", type=Path, default=REPO / "outputs/onnx/generator_variants/dynamic_int8"
    )
    ap.add_argument("--test-file", type=Path, default=REPO / "outputs/text/test.jsonl")
    ap.add_argument("--shape", choices=["default", "t5-small", "both"], default="both")
    ap.add_argument("--prompts", type=int, default=12)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--random", action="store_true", help="random weights for the default shape")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON report here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import onnxruntime as ort

    ort.set_default_logger_severity(3)  # the one-file graph's optional inputs warn at load

    from pipelines.common import load_section

    reports = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.shape in ("default", "both"):
            use_pipeline = (
                not args.random
                and (args.model_dir / "config.json").is_file()
                and (args.onnx_dir / "encoder_model.onnx").is_file()
            )
            if use_pipeline:
                from serving.decode_loop import OnnxSeq2SeqGenerator

                gen = OnnxSeq2SeqGenerator(args.onnx_dir)
                records = [json.loads(x) for x in args.test_file.read_text().splitlines() if x]
                prompts = [gen.encode(r["prompt"]) for r in records[: args.prompts]]
                int8 = args.int8_dir if (args.int8_dir / "encoder_model.onnx").is_file() else None
                reports.append(
                    bench_setup(
                        "pipeline checkpoint", args.model_dir, args.onnx_dir, int8, prompts, args
                    )
                )
            else:
                cfg = {**load_section("train_generator")["model"], "vocab_size": 2000}
                ckpt, onnx_dir, prompts = random_setup(work / "d", cfg, args.prompts, args.seed)
                reports.append(
                    bench_setup(
                        "default shape, random weights", ckpt, onnx_dir, None, prompts, args
                    )
                )
        if args.shape in ("t5-small", "both"):
            ckpt, onnx_dir, prompts = random_setup(work / "s", T5_SMALL, args.prompts, args.seed)
            reports.append(
                bench_setup("t5-small shape, random weights", ckpt, onnx_dir, None, prompts, args)
            )
    text = json.dumps(reports, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
