"""Int8 variants of the ONNX generator (dynamic and static QDQ), their evaluation and gates.

Each variant is a complete model directory (the three optimum ONNX files plus tokenizer and
generation config), evaluated by the same greedy loop on the same prompts as fp32. Known
failure modes are handled in the open:

- a quantized T5 feed-forward output projection (``DenseReluDense/wo``) can push activations out
  of range and collapse generation into repetition: node-name patterns in params keep such
  MatMuls in fp32, and the excluded node names are recorded per file;
- optimum's merged decoder (``decoder_model_merged.onnx``) hides the decoder in ``If`` subgraphs
  that ONNX Runtime's quantizer leaves in fp32; we quantize the separate decoder files instead
  and never copy the merged one.
"""

from __future__ import annotations

import logging
import random
import re
import shutil
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from quantize.gates import all_passed, changed_share, drop_gates, gate
from quantize.runner import ONNX_FILES
from serving.onnx_files import MERGED_DECODER_FILE
from serving.roles import TYPED_FILES  # a typed-role model's lexicon, plans, skeletons

logger = logging.getLogger(__name__)

SUPPORT_FILES = ("tokenizer.json", "generation_config.json", "config.json", *TYPED_FILES)
MERGED_DECODER = MERGED_DECODER_FILE
MERGED_NOTE = (
    "decoder_model_merged.onnx not used: its If subgraphs are left unquantized by ONNX Runtime; "
    "the separate decoder_model.onnx / decoder_with_past_model.onnx are quantized instead"
)

MetricFn = Callable[[list[str], list[dict[str, Any]]], dict[str, float]]


def fixed_sample(records: Sequence[dict[str, Any]], n: int, seed: int) -> list[dict[str, Any]]:
    """A fixed-seed subset (all records when there are fewer than ``n``), order kept."""
    if len(records) <= n:
        return list(records)
    idx = sorted(random.Random(seed).sample(range(len(records)), n))
    return [records[i] for i in idx]


def evaluation_records(
    test: Sequence[dict[str, Any]],
    unseen: Sequence[dict[str, Any]],
    *,
    eval_samples: int,
    unseen_eval_samples: int,
    seed: int,
) -> list[dict[str, Any]]:
    """The prompts every variant is scored on, for the quantize stage and for promotion alike.

    A fixed sample of the template records of the test split (seed + 1), then one of the
    open-vocabulary requests (seed + 2); ``seed`` is ``quantize_generator.seed``.
    """
    templates = [r for r in test if r.get("source", "templates") == "templates"] or list(test)
    return fixed_sample(templates, eval_samples, seed + 1) + (
        fixed_sample(unseen, unseen_eval_samples, seed + 2) if unseen_eval_samples else []
    )


def _quant_type(name: str) -> Any:
    from onnxruntime.quantization import QuantType

    return {"qint8": QuantType.QInt8, "quint8": QuantType.QUInt8}[name]


def matching_nodes(onnx_path: Path, patterns: Sequence[str], op_types: Sequence[str]) -> list[str]:
    """Names of nodes of ``op_types`` whose name contains any of ``patterns`` (regex search)."""
    import onnx

    if not patterns:
        return []
    model = onnx.load(str(onnx_path), load_external_data=False)
    regexes = [re.compile(p) for p in patterns]
    return [
        n.name
        for n in model.graph.node
        if n.op_type in op_types and any(r.search(n.name) for r in regexes)
    ]


def copy_support_files(src: Path, dst: Path) -> None:
    """Copy tokenizer and configs so a variant directory is self-contained."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in SUPPORT_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)


def make_fp32(src: Path, dst: Path) -> dict[str, Any]:
    """The reference variant: the exported files, unchanged."""
    copy_support_files(src, dst)
    for name in ONNX_FILES:
        shutil.copy2(src / name, dst / name)
    return {"method": "none", "excluded_nodes": {}}


def make_dynamic(
    src: Path,
    dst: Path,
    *,
    weight_type: str,
    per_channel: bool,
    reduce_range: bool,
    op_types: Sequence[str],
    exclude_patterns: Sequence[str],
) -> dict[str, Any]:
    """Dynamic int8: weights quantized offline, activations quantized per call at run time."""
    from onnxruntime.quantization import quantize_dynamic

    copy_support_files(src, dst)
    excluded: dict[str, list[str]] = {}
    for name in ONNX_FILES:
        excluded[name] = matching_nodes(src / name, exclude_patterns, op_types)
        quantize_dynamic(
            src / name,
            dst / name,
            op_types_to_quantize=list(op_types),
            per_channel=per_channel,
            reduce_range=reduce_range,
            weight_type=_quant_type(weight_type),
            nodes_to_exclude=excluded[name],
        )
    return {
        "method": "quantize_dynamic",
        "weight_type": weight_type,
        "per_channel": per_channel,
        "reduce_range": reduce_range,
        "op_types_to_quantize": list(op_types),
        "excluded_nodes": excluded,
    }


class _FeedsReader:
    """A CalibrationDataReader over recorded session feeds."""

    def __init__(self, feeds: Sequence[Mapping[str, Any]]):
        self._it = iter(feeds)

    def get_next(self) -> Mapping[str, Any] | None:
        return next(self._it, None)

    def rewind(self) -> None:  # pragma: no cover - only some calibrators call it
        pass


def make_static(
    src: Path,
    dst: Path,
    feeds: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    weight_type: str,
    activation_type: str,
    per_channel: bool,
    reduce_range: bool,
    op_types: Sequence[str],
    exclude_patterns: Sequence[str],
    calibrate_method: str,
) -> dict[str, Any]:
    """Static int8 (QDQ): activation ranges calibrated on real fp32 generation steps."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        quantize_static,
    )

    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    copy_support_files(src, dst)
    excluded: dict[str, list[str]] = {}
    n_feeds: dict[str, int] = {}
    for name in ONNX_FILES:
        if not feeds.get(name):
            raise ValueError(f"static quantization of {name}: no calibration feeds recorded")
        excluded[name] = matching_nodes(src / name, exclude_patterns, op_types)
        n_feeds[name] = len(feeds[name])
        reader = _FeedsReader(feeds[name])
        CalibrationDataReader.register(_FeedsReader)
        quantize_static(
            src / name,
            dst / name,
            reader,  # type: ignore[arg-type]
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(op_types),
            per_channel=per_channel,
            reduce_range=reduce_range,
            activation_type=_quant_type(activation_type),
            weight_type=_quant_type(weight_type),
            nodes_to_exclude=excluded[name],
            calibrate_method=methods[calibrate_method],
            # bound calibration memory: ranges are merged every 128 recorded feeds
            extra_options={"CalibMaxIntermediateOutputs": 128},
        )
    return {
        "method": "quantize_static",
        "format": "QDQ",
        "weight_type": weight_type,
        "activation_type": activation_type,
        "per_channel": per_channel,
        "reduce_range": reduce_range,
        "calibrate_method": calibrate_method,
        "calibration_feeds": n_feeds,
        "op_types_to_quantize": list(op_types),
        "excluded_nodes": excluded,
    }


def size_mb(model_dir: Path) -> float:
    """Size on disk of the ONNX files (what serving loads), in MB (10^6 bytes)."""
    return sum((model_dir / n).stat().st_size for n in ONNX_FILES) / 1e6


_RUN = re.compile(r"(\S{1,4}?)\1{7,}")


def degenerate(text: str, n: int = 3, repeats: int = 3) -> bool:
    """True when generation looped: a word n-gram occurs ``repeats`` times, or a 1-4 character
    unit repeats 8+ times in a row (``1111111111``, digits being single tokens)."""
    if _RUN.search(text):
        return True
    words = text.split()
    counts: dict[tuple[str, ...], int] = {}
    for i in range(len(words) - n + 1):
        key = tuple(words[i : i + n])
        counts[key] = counts.get(key, 0) + 1
        if counts[key] >= repeats:
            return True
    return False


def evaluate_variant(
    model_dir: Path,
    records: Sequence[Mapping[str, Any]],
    *,
    metric_fn: MetricFn,
    max_new_tokens: int,
    threads: int,
) -> dict[str, Any]:
    """Generate for every record's ``prompt``; quality metrics, size and median latency.

    Uses serving's generation loop, so outputs and timings are what serving would produce.
    """
    return evaluate_variants(
        {model_dir.name: model_dir},
        records,
        metric_fn=metric_fn,
        max_new_tokens=max_new_tokens,
        threads=threads,
    )[model_dir.name]


def evaluate_variants(
    model_dirs: Mapping[str, Path],
    records: Sequence[Mapping[str, Any]],
    *,
    metric_fn: MetricFn,
    max_new_tokens: int,
    threads: int,
) -> dict[str, dict[str, Any]]:
    """:func:`evaluate_variant` for several variants, timed interleaved prompt by prompt.

    Each prompt runs through every variant before the next prompt, so load from other work on
    the machine lands on all variants alike and the latency ratios stay meaningful.
    """
    from tqdm import tqdm

    from serving.decode_loop import OnnxSeq2SeqGenerator

    runners = {
        n: OnnxSeq2SeqGenerator(d, intra_op_num_threads=threads) for n, d in model_dirs.items()
    }
    for r in runners.values():  # warm-up, not timed
        r.generate_text(str(records[0]["prompt"]), max_new_tokens=max_new_tokens)
    outputs: dict[str, list[str]] = {n: [] for n in runners}
    times_ms: dict[str, list[float]] = {n: [] for n in runners}
    for rec in tqdm(records, desc="evaluate variants", leave=False):
        for n, r in runners.items():
            t0 = time.perf_counter()
            outputs[n].append(r.generate_text(str(rec["prompt"]), max_new_tokens=max_new_tokens))
            times_ms[n].append((time.perf_counter() - t0) * 1e3)
    result = {}
    for n, d in model_dirs.items():
        metrics = {
            k: float(v) for k, v in metric_fn(outputs[n], [dict(r) for r in records]).items()
        }
        metrics["degenerate_share"] = sum(map(degenerate, outputs[n])) / len(outputs[n])
        result[n] = {
            "outputs": outputs[n],
            "metrics": metrics,
            "latency_ms_median": float(statistics.median(times_ms[n])),
            "size_mb": size_mb(d),
        }
    return result


def gate_variant(
    reference: Mapping[str, Any],
    candidate: Mapping[str, Any],
    *,
    max_drop: Mapping[str, float],
    max_changed_share: float,
) -> list[dict[str, Any]]:
    """Gates of one variant against fp32: metric drops and the share of changed outputs."""
    gates = drop_gates(reference["metrics"], candidate["metrics"], max_drop)
    share = changed_share(reference["outputs"], candidate["outputs"])
    gates.append(gate("changed_output_share", "ceiling", max_changed_share, share))
    return gates


def summarize(
    evaluated: Mapping[str, Mapping[str, Any]],
    recipes: Mapping[str, Mapping[str, Any]],
    *,
    max_drop: Mapping[str, float],
    max_changed_share: float,
) -> dict[str, dict[str, Any]]:
    """Per-variant records for metrics/quantize.json; fp32 is the reference (gated vs itself)."""
    ref = evaluated["fp32"]
    out: dict[str, dict[str, Any]] = {}
    for name, ev in evaluated.items():
        gates = gate_variant(ref, ev, max_drop=max_drop, max_changed_share=max_changed_share)
        out[name] = {
            "size_mb": round(ev["size_mb"], 4),
            "size_ratio": round(ev["size_mb"] / ref["size_mb"], 4),
            "latency_ms_median": round(ev["latency_ms_median"], 3),
            "speedup": round(ref["latency_ms_median"] / ev["latency_ms_median"], 3),
            "metrics": ev["metrics"],
            "gates": gates,
            "passed": all_passed(gates),
            "recipe": dict(recipes[name]),
        }
        logger.info(
            "%s: %.2f MB, %.1f ms, passed=%s %s",
            name,
            ev["size_mb"],
            ev["latency_ms_median"],
            out[name]["passed"],
            [g["name"] for g in gates if not g["passed"]],
        )
    return out
