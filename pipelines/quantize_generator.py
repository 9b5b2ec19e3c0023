"""Stage `quantize_generator`: fp32 / dynamic int8 / static int8 generator variants, gated.

Reads the exported fp32 generator, the text splits (training prompts calibrate the static
variant; a fixed sample of test prompts and one of the open-vocabulary requests of
`test_unseen.jsonl` evaluate every variant) and params `quantize_generator` + `gates.generator`.
Writes every variant's model directory, `metrics/quantize.json` (size, latency, quality, gates,
pass/fail, excluded nodes, and the shipped variant) and `plots/quantize/variants.json`.
A failed variant keeps its numbers in the metrics but is never the shipped one.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from data.params import OneOf, Range
from pipelines import paths
from pipelines.common import (
    REPO_ROOT,
    atomic_path,
    atomic_write_json,
    atomic_write_text,
    build_config,
    load_section,
    stage_config,
    stage_main,
)
from pipelines.gates import GeneratorGates
from quantize.gates import SHIP_RULES, choose_shipped
from quantize.generator import evaluation_records, fixed_sample
from serving.limits import DEFAULT_MAX_LENGTH
from training.text_metrics import served_metrics, served_samples_page

logger = logging.getLogger(__name__)

UNSEEN_FILE = paths.UNSEEN_FILE

VARIANTS = ("dynamic_int8", "static_int8")
QUANTIZABLE_OPS = ("MatMul", "Gather", "Conv", "Attention")
QType = Literal["qint8", "quint8"]
SPEED_PATHS = ("drop_in", "python_loop")
LATENCY_KEYS = {"drop_in": "drop_in_latency_ms_median", "python_loop": "latency_ms_median"}


_Samples = Annotated[int, Range(1, 10_000, integer=True)]


@dataclasses.dataclass(frozen=True)
class QuantizeConfig:
    """Params `quantize_generator` (every key is required: the values live in params.yaml).

    The variants are calibrated and evaluated over ``max_new_tokens`` greedy tokens: what a
    request decodes when it names no length (``serving.limits.DEFAULT_MAX_LENGTH``, the
    generator's one length knob), so the gates judge what users get; not a params key.
    """

    variants: Annotated[tuple[str, ...], OneOf(VARIANTS, each=True, non_empty=False)]
    weight_type: QType
    per_channel: bool
    reduce_range: bool
    op_types_to_quantize: Annotated[tuple[str, ...], OneOf(QUANTIZABLE_OPS, each=True)]
    dynamic_exclude_nodes: tuple[str, ...]
    static_exclude_nodes: tuple[str, ...]
    static_per_channel: bool
    static_activation_type: QType
    static_calibrate_method: Literal["minmax", "entropy", "percentile"]
    calibration_samples: _Samples
    eval_samples: Annotated[int, Range(2, 10_000, integer=True)]
    # open-vocabulary requests (test_unseen.jsonl) per variant
    unseen_eval_samples: Annotated[int, Range(0, 10_000, integer=True)]
    threads: Annotated[int, Range(1, 64, integer=True)]
    # teacher-style requests (topic, theme nouns, grade prefix) the shipped variant is also
    # served on: what the keywords-unused rate is gated on (the open-vocabulary set pairs random
    # nouns with topics, which teachers rarely send)
    realistic_requests: tuple[str, ...]
    # served outputs of each request set printed in metrics/generator_samples.md
    served_samples: Annotated[int, Range(0, 200, integer=True)]
    ship_rule: Annotated[str, OneOf(SHIP_RULES)]
    # the latency fastest_passing ranks by: the backend's one-file graph (quantize.drop_in_speed)
    # or the HTTP app's Python loop
    speed_path: Annotated[str, OneOf(SPEED_PATHS)]
    speed_tolerance: Annotated[float, Range(0.0, 1.0)]
    seed: int

    @property
    def max_new_tokens(self) -> int:
        """Greedy tokens per evaluated prompt: serving's default request length (derived)."""
        return DEFAULT_MAX_LENGTH


def text_metric_fn(train_problems: Sequence[str]) -> Any:
    """Adapter from (outputs, records) to ``training.text_metrics.mixed_metrics``: template
    metrics on test records, open-vocabulary metrics on ``test_unseen`` requests."""
    from training.text_metrics import mixed_metrics

    def _fn(outputs: list[str], records: list[dict[str, Any]]) -> dict[str, float]:
        result = mixed_metrics(outputs, records, set(train_problems))
        return {k: float(v) for k, v in result.items() if isinstance(v, int | float)}

    return _fn


def eval_records(
    cfg: QuantizeConfig, test: Sequence[dict[str, Any]], unseen: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The prompts every variant is scored on (`quantize.generator.evaluation_records`)."""
    return evaluation_records(
        test,
        unseen,
        eval_samples=cfg.eval_samples,
        unseen_eval_samples=cfg.unseen_eval_samples,
        seed=cfg.seed,
    )


def build_variants(
    cfg: QuantizeConfig,
    fp32_dir: Path,
    out_dir: Path,
    calib_prompts: Sequence[str],
    max_new_tokens: int | None = None,
) -> dict[str, dict[str, Any]]:
    """Write fp32 and every variant in ``cfg.variants`` under ``out_dir``; their recipes by name.

    The one place the params turn into quantization calls: the stage and `bench/quantize.py`
    both build through it, so the benchmark times exactly what the stage ships.
    """
    from quantize import generator as qg
    from quantize.runner import record_feeds

    recipes: dict[str, dict[str, Any]] = {"fp32": qg.make_fp32(fp32_dir, out_dir / "fp32")}
    common: dict[str, Any] = {
        "weight_type": cfg.weight_type,
        "per_channel": cfg.per_channel,
        "reduce_range": cfg.reduce_range,
        "op_types": cfg.op_types_to_quantize,
    }
    if "dynamic_int8" in cfg.variants:
        recipes["dynamic_int8"] = qg.make_dynamic(
            fp32_dir,
            out_dir / "dynamic_int8",
            exclude_patterns=cfg.dynamic_exclude_nodes,
            **common,
        )
    if "static_int8" in cfg.variants:
        feeds = record_feeds(fp32_dir, calib_prompts, max_new_tokens or cfg.max_new_tokens)
        recipes["static_int8"] = qg.make_static(
            fp32_dir,
            out_dir / "static_int8",
            feeds,
            activation_type=cfg.static_activation_type,
            calibrate_method=cfg.static_calibrate_method,
            exclude_patterns=cfg.static_exclude_nodes,
            **{**common, "per_channel": cfg.static_per_channel},
        )
    return recipes


def run_quantization(
    *,
    fp32_dir: Path,
    out_dir: Path,
    calib_prompts: Sequence[str],
    eval_records: Sequence[dict[str, Any]],
    cfg: QuantizeConfig,
    gates: GeneratorGates,
    metric_fn: Any,
    max_new_tokens: int | None = None,
) -> dict[str, Any]:
    """Build, evaluate and gate every variant under ``out_dir``; return metrics/quantize.json.

    ``max_new_tokens``: ``cfg.max_new_tokens`` (serving's default request length) unless given
    (a quick test decodes fewer).
    """
    from quantize import generator as qg

    max_new_tokens = max_new_tokens or cfg.max_new_tokens
    recipes = build_variants(cfg, fp32_dir, out_dir, calib_prompts, max_new_tokens)
    evaluated = qg.evaluate_variants(
        {name: out_dir / name for name in recipes},
        eval_records,
        metric_fn=metric_fn,
        max_new_tokens=max_new_tokens,
        threads=cfg.threads,
    )
    variants = qg.summarize(
        evaluated, recipes, max_drop=gates.max_drop, max_changed_share=gates.max_changed_share
    )
    if cfg.speed_path == "drop_in":
        from quantize.drop_in_speed import drop_in_latencies

        drop_in = drop_in_latencies(
            {name: out_dir / name for name in recipes},
            eval_records,
            max_new_tokens=max_new_tokens,
            threads=cfg.threads,
        )
        for name, timing in drop_in.items():
            ms = timing["latency_ms_median"]
            variants[name]["drop_in_latency_ms_median"] = None if ms is None else round(ms, 3)
            variants[name]["drop_in_step"] = timing["step"]
    shipped = choose_shipped(
        variants, cfg.ship_rule, cfg.speed_tolerance, LATENCY_KEYS[cfg.speed_path]
    )
    return {
        "variants": variants,
        "shipped": shipped,
        "ship_rule": cfg.ship_rule,
        "speed_path": cfg.speed_path,
        "speed_tolerance": cfg.speed_tolerance,
        "n_eval_prompts": len(eval_records),
        "n_calibration_prompts": len(calib_prompts) if "static_int8" in cfg.variants else 0,
        "notes": [qg.MERGED_NOTE],
    }


def plot_rows(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per variant for `dvc plots`: size, latency and quality side by side."""
    rows = []
    for name, v in result["variants"].items():
        row = {
            "variant": name,
            "size_mb": v["size_mb"],
            "latency_ms_median": v["latency_ms_median"],
            "passed": v["passed"],
        }
        row.update({k: round(x, 4) for k, x in v["metrics"].items()})
        rows.append(row)
    return rows


def run(
    cfg: QuantizeConfig,
    gates: GeneratorGates,
    *,
    fp32_dir: Path,
    text_dir: Path,
    variants_dir: Path,
    metrics_file: Path,
    plot_file: Path,
    samples_file: Path,
) -> dict[str, Any]:
    """Read the splits, quantize, evaluate, write variants, metrics, samples page and plot data."""
    from data.word_problems.corpus import read_jsonl
    from training.rubric_sample import load_requests

    train = read_jsonl(text_dir / "train.jsonl", required=["prompt", "problem"])
    test = read_jsonl(text_dir / "test.jsonl", required=["prompt", "target", "keywords"])
    unseen_file = text_dir / UNSEEN_FILE
    unseen: list[dict[str, Any]] = []
    if unseen_file.is_file():
        unseen = read_jsonl(unseen_file, required=["id", "prompt", "topic", "keywords"])
    else:  # text splits from before the open-vocabulary split: template metrics only
        logger.warning(
            "%s not found: variants are scored on the template test split only", unseen_file
        )
    calib = [r["prompt"] for r in fixed_sample(train, cfg.calibration_samples, cfg.seed)]
    records = eval_records(cfg, test, unseen)
    metric_fn = text_metric_fn([str(r["problem"]) for r in train])
    samples_page = ""
    with atomic_path(variants_dir) as tmp:
        result = run_quantization(
            fp32_dir=fp32_dir,
            out_dir=tmp,
            calib_prompts=calib,
            eval_records=records,
            cfg=cfg,
            gates=gates,
            metric_fn=metric_fn,
        )
        if unseen and result["shipped"]:
            realistic = load_requests([REPO_ROOT / p for p in cfg.realistic_requests])
            outputs: dict[str, list[dict[str, Any]]] = {}
            result["served"] = served_metrics(
                tmp / result["shipped"],
                unseen,
                realistic,
                seed=cfg.seed,
                threads=cfg.threads,
                max_new_tokens=cfg.max_new_tokens,
                outputs=outputs,
            )
            samples_page = served_samples_page(
                outputs, n=cfg.served_samples, seed=cfg.seed, variant=result["shipped"]
            )
            # what the HTTP policy returns is what gates.generator.floors can hold to account
            shipped = result["variants"][result["shipped"]]
            shipped["metrics"] = {**shipped["metrics"], **result["served"]}
    atomic_write_json(metrics_file, result)
    if samples_page:
        atomic_write_text(samples_file, samples_page)
    atomic_write_json(plot_file, plot_rows(result))
    logger.info("shipped variant: %s", result["shipped"])
    return result


def main() -> None:
    """Entry point of `python -m pipelines.quantize_generator` (paths declared in paths.py)."""
    run(
        stage_config(QuantizeConfig, "quantize_generator"),
        build_config(GeneratorGates, load_section("gates").get("generator", {}), "gates.generator"),
        **paths.stage_args("quantize_generator"),
    )


if __name__ == "__main__":
    stage_main(main)
