"""The generator bench's shape probe (a random-weight T5 of a given shape on random prompts,
every path decoding the full length: the second table of ``bench/generator.py``) and the
interleaved single-prompt timer both of its tables use. Run through ``bench/generator.py``."""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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

    from bench.beam_search_graph import build_beam_search_model
    from export.generation_graph import (
        GenerationSettings,
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
