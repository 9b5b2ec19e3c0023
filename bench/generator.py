"""Generator speed: the shipped checkpoint on real prompts against CTranslate2, in one process.

Headline (``--headline``, default on): the pipeline's checkpoint and export (the model users
get) on real prompts: the test split built by the pipeline (``outputs/text/test.jsonl``) and the
open-vocabulary requests (``data/word_problems/requests/*.json`` and the teachers' dev set, turned
into prompts as serving does: lexicon classes, role plan). Greedy, one intra-op thread:

- single-prompt latency, interleaved prompt by prompt so every path sees the same machine load:
  the one-file graph export-backend ships (fused step, and the exact lean step), its int8
  variant (the quantize stage's dynamic int8), serving's Python loop, CTranslate2 fp32 / int8;
- batched throughput (problems / s) at batch 1, 8 and 32 for the one-file graphs and
  CTranslate2 (a batch is padded; the graph stops when every row has written eos);
- ids of every path compared with serving's Python loop of the same precision (fp32 paths with
  the fp32 loop, int8 with the int8 loop), and the target tokens per problem.

The shipped graphs compute the lm head on the tokens the model's skeleton bank writes only
(``serving.constrain.unwritten_ids``); CTranslate2 runs both as it comes (the full vocabulary)
and with a vocabulary map of those tokens (``ct2_vmap_*``, its own narrower output layer).

Shape probe (``--shape t5-small|default|both``, second table; ``bench/generator_probe.py``): a
random-weight T5 on random prompts, every path decoding the full ``--max-new-tokens`` (the older
table of docs/benchmarks.md), with PyTorch ``generate`` and ORT's ``BeamSearch`` op as well.
CTranslate2 is a bench-only dependency (``pip install -e '.[bench]'``).

    nice -n 10 .venv/bin/python bench/generator.py [--prompts 24] [--batches 1 8 32]
        [--shape none|default|t5-small|both] [--repeats 3] [--threads 1] [--out FILE]
        [--saved-graph before_fp32=FILE before_int8=FILE]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.generator_probe import (  # noqa: E402  (after the repo is on sys.path)
    T5_SMALL,
    Path_fn,
    bench_setup,
    dynamic_int8,
    interleaved,
    random_setup,
)
from bench.report import add_out, write_report  # noqa: E402
from serving.onnx_files import ENCODER_FILE  # noqa: E402

logger = logging.getLogger("bench.generator")


def real_prompts(
    onnx_dir: Path, test_file: Path, request_files: list[Path], n: int
) -> dict[str, list[list[int]]]:
    """Up to ``n`` prompt ids per set: the test split's prompts, and the open-vocabulary
    requests turned into prompts as serving does (each keyword's lexicon classes, the planner's
    role plan for the first attempt)."""
    from serving.decode_loop import OnnxSeq2SeqGenerator
    from serving.generator import load_lexicon
    from serving.lexicon import describe
    from serving.planner import load_planner
    from serving.prompt import format_prompt
    from serving.roles import plan_roles

    gen = OnnxSeq2SeqGenerator(onnx_dir)
    records = [json.loads(x) for x in test_file.read_text().splitlines() if x.strip()]
    sets = {"test split": [gen.encode(r["prompt"]) for r in records[:n]]}
    lexicon, planner = load_lexicon(onnx_dir), load_planner(onnx_dir)
    requests = [r for f in request_files if f.is_file() for r in json.loads(f.read_text())]
    # spread over the files (each is sorted by topic): every k-th request
    step = max(1, len(requests) // n)
    prompts = []
    for r in requests[::step][:n]:
        roles = None
        if lexicon is not None:
            nouns = describe(lexicon, list(r["keywords"]))
            roles = planner.plan(r["topic"], nouns) if planner else plan_roles(nouns)
        text = format_prompt(
            r["topic"], list(r["keywords"]), r.get("prompt_prefix", ""), roles=roles
        )
        prompts.append(gen.encode(text))
    if prompts:
        sets["open-vocabulary requests"] = prompts
    return sets


Batch_fn = Callable[[list[list[int]]], list[list[int]]]


def one_file_batch(sess: Any, eos: int, n: int, pad: int) -> Batch_fn:
    """Greedy ids of a padded batch from the one-file graph (Python-loop convention)."""
    import numpy as np

    from export.generation_graph import SEQUENCES_OUTPUT, max_length_feed, strip_sequence

    limit = max_length_feed(sess, n)

    def run(batch: list[list[int]]) -> list[list[int]]:
        width = max(len(ids) for ids in batch)
        ids = np.full((len(batch), width), pad, np.int64)
        mask = np.zeros_like(ids)
        for r, row in enumerate(batch):
            ids[r, : len(row)], mask[r, : len(row)] = row, 1
        feeds = {"input_ids": ids, "attention_mask": mask, "max_length": limit}
        (seq,) = sess.run([SEQUENCES_OUTPUT], feeds)
        return [strip_sequence(row, eos_token_id=eos) for row in seq]

    return run


def ct2_batch(
    ckpt: Path, workdir: Path, n: int, threads: int, written: list[int] | None = None
) -> dict[str, Batch_fn]:
    """CTranslate2 fp32 and int8 translators of the checkpoint over a batch of ids; with
    ``written`` (the token ids the shipped graphs' lm head computes), also each with a
    vocabulary map of those tokens (``ct2_vmap_*``: CTranslate2's own narrower output layer,
    the like-for-like peer of the narrowed graph)."""
    import ctranslate2
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(ckpt / "tokenizer.json"))
    vmap = None
    if written:
        vmap = workdir / "vmap.txt"  # a line without source tokens applies to every input
        vmap.write_text("\t" + " ".join(tok.id_to_token(i) for i in written) + "\n")
    out: dict[str, Batch_fn] = {}
    for quant, tag in (("float32", "fp32"), ("int8", "int8")):
        for mapped in (False, True) if vmap else (False,):
            target = workdir / f"ct2_{quant}{'_vmap' if mapped else ''}"
            ctranslate2.converters.TransformersConverter(str(ckpt)).convert(
                str(target), vmap=str(vmap) if mapped else None, quantization=quant, force=True
            )
            tr = ctranslate2.Translator(
                str(target), device="cpu", inter_threads=1, intra_threads=threads
            )

            def run(batch: list[list[int]], tr: Any = tr, mapped: bool = mapped) -> list[list[int]]:
                src = [[tok.id_to_token(i) for i in ids] for ids in batch]
                res = tr.translate_batch(
                    src,
                    beam_size=1,
                    max_decoding_length=n,
                    max_batch_size=len(batch),
                    use_vmap=mapped,
                )
                return [[int(tok.token_to_id(t)) for t in r.hypotheses[0]] for r in res]

            out[f"ct2_{'vmap_' if mapped else ''}{tag}"] = run
    return out


def _generation_settings(onnx_dir: Path) -> Any:
    """The export's generation settings (start, eos and pad ids, max_new_tokens)."""
    from export.generation_graph import GenerationSettings

    return GenerationSettings.from_config(
        json.loads((onnx_dir / "generation_config.json").read_text())
    )


def _one_file(
    d: Path, settings: Any, path: Path, *, threads: int, fused: bool = True, draft: Any = None
) -> Any:
    """A session on the one-file graph built from export ``d`` (saved at ``path``)."""
    from export.generation_graph import build_loop_model, one_file_session, save_generation_model

    save_generation_model(build_loop_model(d, settings, fused_attention=fused, draft=draft), path)
    return one_file_session(path, threads=threads)


def headline_paths(
    ckpt: Path,
    onnx_dir: Path,
    int8_dir: Path,
    workdir: Path,
    n: int,
    threads: int,
    saved: dict[str, Path] | None = None,
) -> tuple[dict[str, Batch_fn], dict[str, str]]:
    """(path -> batch function, path -> the Python loop it is compared with). ``saved``:
    one-file graphs built earlier (e.g. by another commit), timed beside this code's, each
    compared with the Python loop of the precision its name ends with (``_fp32`` / ``_int8``)."""
    from export.draft_loop import bank_sequences
    from export.generation_graph import one_file_session
    from serving.decode_loop import OnnxSeq2SeqGenerator

    settings = _generation_settings(onnx_dir)
    eos, pad = settings.eos_token_id, settings.pad_token_id
    paths: dict[str, Batch_fn] = {}
    ref: dict[str, str] = {}
    loops = {}
    for tag, d in (("fp32", onnx_dir), ("int8", int8_dir)):
        loop = loops[tag] = OnnxSeq2SeqGenerator(d, intra_op_num_threads=threads)
        paths[f"python_loop_{tag}"] = lambda b, g=loop: [g.generate(x, max_new_tokens=n) for x in b]
        ref[f"python_loop_{tag}"] = f"python_loop_{tag}"
        # int8: only the fused step reads int8 weights (the exact step repeats fp32 MatMuls)
        # and it cannot draft (module docstring of export.draft_loop)
        kinds: dict[str, tuple[bool, Any]] = {"": (True, None)}
        if tag == "fp32":
            bank = bank_sequences(d, eos=eos)
            kinds = {"fused": (True, None), "exact": (False, None)}
            if bank:
                kinds = {"draft": (True, bank), **kinds}
        for kind, (fused, draft) in kinds.items():
            f = workdir / f"one_file_{kind or 'default'}_{tag}.onnx"
            sess = _one_file(d, settings, f, threads=threads, fused=fused, draft=draft)
            name = f"one_file_{tag}" + (f"_{kind}" if kind else "")
            paths[name] = one_file_batch(sess, eos, n, pad)
            ref[name] = f"python_loop_{tag}"
    for name, f in (saved or {}).items():
        paths[name] = one_file_batch(one_file_session(f, threads=threads), eos, n, pad)
        ref[name] = f"python_loop_{name.rsplit('_', 1)[1]}"
    import numpy as np

    gen = loops["fp32"]  # the vocabulary map: the tokens its skeleton bank writes
    written = np.setdiff1d(np.arange(gen.vocab), gen.unwritten).tolist()
    ct2 = ct2_batch(ckpt, workdir, n, threads, written if gen.unwritten.size else None)
    paths.update(ct2)
    ref.update({k: f"python_loop_{k.rsplit('_', 1)[1]}" for k in ct2})
    return paths, ref


def time_batches(
    paths: dict[str, Batch_fn], prompts: list[list[int]], size: int, repeats: int
) -> dict[str, float]:
    """Problems / s per path over ``prompts`` in batches of ``size``, interleaved batch by
    batch (best of ``repeats`` passes: the least disturbed by the machine's other work)."""
    batches = [prompts[i : i + size] for i in range(0, len(prompts), size)]
    best = dict.fromkeys(paths, float("inf"))
    for _ in range(repeats):
        spent = dict.fromkeys(paths, 0.0)
        for b in batches:
            for name, fn in paths.items():
                t0 = time.perf_counter()
                fn(b)
                spent[name] += time.perf_counter() - t0
        best = {k: min(best[k], spent[k]) for k in paths}
    return {k: round(len(prompts) / v, 1) for k, v in best.items()}


def bench_headline(
    ckpt: Path, onnx_dir: Path, int8_dir: Path, sets: dict[str, list[list[int]]], args: Any
) -> dict[str, Any]:
    """Latency (batch 1, interleaved) and throughput (``args.batches``) of every headline path
    on each prompt set; ids compared with the Python loop of the same precision."""
    n = args.max_new_tokens
    out: dict[str, Any] = {
        "machine": machine(),
        "threads": args.threads,
        "max_new_tokens": n,
        "sets": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        saved = dict(x.split("=", 1) for x in args.saved_graph)
        paths, ref = headline_paths(
            ckpt,
            onnx_dir,
            int8_dir,
            Path(tmp),
            n,
            args.threads,
            {k: Path(v) for k, v in saved.items()},
        )
        single = {k: (lambda ids, fn=fn: fn([ids])[0]) for k, fn in paths.items()}
        for set_name, pool in sets.items():
            # latency on the first --prompts; throughput and ids on the whole pool
            prompts = pool
            want = {k: [single[k](p) for p in prompts] for k in {*ref.values()}}
            lat = interleaved(single, prompts[: args.prompts], args.repeats)
            base = lat["ct2_fp32"]["median_ms"], lat["ct2_int8"]["median_ms"]
            mapped = {
                k: lat[k]["median_ms"] for k in ("ct2_vmap_fp32", "ct2_vmap_int8") if k in lat
            }
            rows: dict[str, Any] = {}
            for k, fn in paths.items():
                same = {}
                for size in args.batches:
                    ids = [
                        x for i in range(0, len(prompts), size) for x in fn(prompts[i : i + size])
                    ]
                    same[size] = sum(a == b for a, b in zip(ids, want[ref[k]], strict=True))
                rows[k] = {
                    **lat[k],
                    "vs_ct2_fp32": round(base[0] / lat[k]["median_ms"], 2),
                    "vs_ct2_int8": round(base[1] / lat[k]["median_ms"], 2),
                    **{f"vs_{m}": round(v / lat[k]["median_ms"], 2) for m, v in mapped.items()},
                    "ids_equal": {f"batch_{b}": f"{v}/{len(prompts)}" for b, v in same.items()},
                    "compared_with": ref[k],
                }
            tput = {
                f"batch_{size}": time_batches(paths, prompts, size, args.repeats)
                for size in args.batches
            }
            for k in rows:
                rows[k]["problems_per_s"] = {b: t[k] for b, t in tput.items()}
            out["sets"][set_name] = {
                "latency_prompts": min(len(prompts), args.prompts),
                "throughput_prompts": len(prompts),
                "results": rows,
            }
    return out


def bench_banked(onnx_dir: Path, int8_dir: Path, test_file: Path, args: Any) -> dict[str, Any]:
    """Batch-1 latency within the skeleton bank, as the drop-in decodes a typed-role model's
    request (its trie fed to the graph): the one-file graphs against the Python loop of the
    same precision under the same trie, ids compared. CTranslate2 has no such constraint, so
    it is not in this table."""
    from export.draft_loop import bank_sequences
    from serving.decode_loop import OnnxSeq2SeqGenerator
    from serving.generator import request_tries
    from serving.one_file import OneFileDecoder

    settings = _generation_settings(onnx_dir)
    eos, n = settings.eos_token_id, args.max_new_tokens
    records = [json.loads(x) for x in test_file.read_text().splitlines() if x.strip()]
    records = records[: args.prompts]
    loops = {
        t: OnnxSeq2SeqGenerator(d, intra_op_num_threads=args.threads)
        for t, d in (("fp32", onnx_dir), ("int8", int8_dir))
    }
    tries = request_tries(onnx_dir, loops["fp32"].encode, records)
    if tries is None:
        return {}
    ids = [loops["fp32"].encode(r["prompt"]) for r in records]
    at = {tuple(x): t for x, t in zip(ids, tries, strict=True)}
    paths: dict[str, Path_fn] = {
        f"python_loop_{t}": (lambda x, g=g: g.generate(x, max_new_tokens=n, trie=at[tuple(x)]))
        for t, g in loops.items()
    }
    builds = {
        "one_file_fp32_draft": (onnx_dir, bank_sequences(onnx_dir, eos=eos)),
        "one_file_fp32_fused": (onnx_dir, None),
        "one_file_int8": (int8_dir, None),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, (d, draft) in builds.items():
            sess = _one_file(
                d, settings, Path(tmp) / f"{name}.onnx", threads=args.threads, draft=draft
            )
            dec = OneFileDecoder(sess, None, eos_token_id=eos)
            paths[name] = lambda x, dec=dec: dec.generate(x, max_new_tokens=n, trie=at[tuple(x)])
        want = {t: [paths[f"python_loop_{t}"](x) for x in ids] for t in loops}
        lat = interleaved(paths, ids, args.repeats)
        base = lat["one_file_fp32_fused"]["median_ms"]
        rows = {}
        for k, fn in paths.items():
            tag = "int8" if "int8" in k else "fp32"
            same = sum(fn(x) == w for x, w in zip(ids, want[tag], strict=True))
            rows[k] = {
                **lat[k],
                "vs_one_file_fp32_fused": round(base / lat[k]["median_ms"], 2),
                "ids_equal": f"{same}/{len(ids)}",
                "compared_with": f"python_loop_{tag}",
            }
    return {"prompts": len(ids), "results": rows}


def machine() -> dict[str, Any]:
    """The CPU the ratios were measured on. They depend on it: CTranslate2's int8 GEMM uses
    VNNI where the CPU has it (AVX-512 VNNI or AVX-VNNI), which an AVX2-only CPU lacks."""
    import os
    import platform

    import onnxruntime as ort

    model, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    isa = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")
    out = {"cpu": model, "cores": os.cpu_count(), "isa": [f for f in isa if f in flags]}
    out["onnxruntime"] = ort.__version__
    try:
        import ctranslate2

        out["ctranslate2"] = ctranslate2.__version__
    except ImportError:
        pass
    return out


def markdown(headline: dict[str, Any], batches: list[int]) -> str:
    """The headline as the Markdown table of docs/benchmarks.md."""
    m = headline.get("machine", {})
    lines = [f"machine: {m.get('cpu')}, {m.get('cores')} cores, {' '.join(m.get('isa', []))}"]
    sizes = " | ".join(f"problems/s b{b}" for b in batches)
    for set_name, block in headline["sets"].items():
        peers = [
            p
            for p in ("ct2_fp32", "ct2_int8", "ct2_vmap_fp32", "ct2_vmap_int8")
            if f"vs_{p}" in next(iter(block["results"].values()))
        ]
        lines += [
            f"\n{set_name} (latency: {block['latency_prompts']} prompts, throughput and ids: "
            f"{block['throughput_prompts']})\n",
            "| path | ms / problem (b1) | tokens / problem | "
            + " | ".join(f"vs {p.replace('ct2_', 'CT2 ').replace('_', ' ')}" for p in peers)
            + f" | {sizes} | ids equal (b1 / largest) |",
            "|---|---|---|" + "---|" * len(peers) + "---|" * len(batches) + "---|",
        ]
        for k, r in block["results"].items():
            tput = " | ".join(str(r["problems_per_s"][f"batch_{b}"]) for b in batches)
            ids = list(r["ids_equal"].values())
            vs = " | ".join(f"{r[f'vs_{p}']}x" for p in peers)
            lines.append(
                f"| {k} | {r['median_ms']} | {r['mean_tokens']} | {vs} | {tput} "
                f"| {ids[0]} / {ids[-1]} |"
            )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model-dir", type=Path, default=REPO / "outputs/models/generator")
    ap.add_argument("--onnx-dir", type=Path, default=REPO / "outputs/onnx/generator")
    ap.add_argument(
        "--int8-dir", type=Path, default=REPO / "outputs/onnx/generator_variants/dynamic_int8"
    )
    ap.add_argument("--test-file", type=Path, default=REPO / "outputs/text/test.jsonl")
    ap.add_argument(
        "--requests",
        type=Path,
        nargs="*",
        default=[
            *sorted((REPO / "data/word_problems/requests").glob("*.json")),
            REPO / "data/word_problems/teacher_requests/dev.json",
        ],
        help="open-vocabulary request files (JSON lists of topic / keywords / prompt_prefix)",
    )
    ap.add_argument("--no-headline", action="store_true", help="only the random shape probe")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--shape", choices=["none", "default", "t5-small", "both"], default="default")
    ap.add_argument("--prompts", type=int, default=24, help="latency prompts per set")
    ap.add_argument("--batch-prompts", type=int, default=96, help="throughput prompts per set")
    ap.add_argument("--probe-prompts", type=int, default=12)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    add_out(ap)
    ap.add_argument(
        "--saved-graph",
        nargs="*",
        default=[],
        metavar="NAME_fp32|NAME_int8=FILE",
        help="also time a one-file graph built earlier (before / after in one run)",
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import onnxruntime as ort

    ort.set_default_logger_severity(3)  # the one-file graph's optional inputs warn at load

    from pipelines.common import load_section

    report: dict[str, Any] = {}
    if not args.no_headline:
        if not (args.model_dir / "config.json").is_file():
            raise SystemExit(
                f"{args.model_dir}: no checkpoint (run the pipeline, or --no-headline)"
            )
        n_pool = max(args.prompts, args.batch_prompts)
        sets = real_prompts(args.onnx_dir, args.test_file, args.requests, n_pool)
        int8 = args.int8_dir
        with tempfile.TemporaryDirectory() as tmp:
            if not (int8 / ENCODER_FILE).is_file():
                int8 = dynamic_int8(args.onnx_dir, Path(tmp) / "int8")
            report["headline"] = bench_headline(args.model_dir, args.onnx_dir, int8, sets, args)
            report["within_bank"] = bench_banked(args.onnx_dir, int8, args.test_file, args)
        print(json.dumps(report["headline"], indent=2), flush=True)
        print(markdown(report["headline"], args.batches), flush=True)
        print(json.dumps(report["within_bank"], indent=2), flush=True)
    probes = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        probe = argparse.Namespace(**{**vars(args), "repeats": min(args.repeats, 2)})
        if args.shape in ("default", "both"):
            cfg = {**load_section("train_generator")["model"], "vocab_size": 2000}
            ckpt, onnx_dir, prompts = random_setup(work / "d", cfg, args.probe_prompts, args.seed)
            probes.append(
                bench_setup("default shape, random weights", ckpt, onnx_dir, None, prompts, probe)
            )
        if args.shape in ("t5-small", "both"):
            ckpt, onnx_dir, prompts = random_setup(
                work / "s", T5_SMALL, args.probe_prompts, args.seed
            )
            probes.append(
                bench_setup("t5-small shape, random weights", ckpt, onnx_dir, None, prompts, probe)
            )
    if probes:
        report["shape_probe"] = probes
        print(json.dumps(probes, indent=2))
    write_report(report, args.out)


if __name__ == "__main__":
    main()
