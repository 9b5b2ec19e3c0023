"""Quantized generator variants on a d_model 32 T5: recorded, gated, never shipped when failing."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from data.word_problems.corpus import read_jsonl
from pipelines.common import ConfigError, build_config
from pipelines.quantize_generator import (
    GeneratorGates,
    QuantizeConfig,
    plot_rows,
    run_quantization,
)
from quantize import generator as qg
from quantize.gates import choose_shipped
from quantize.runner import ONNX_FILES, record_feeds
from tests.fixtures.generator import export_tiny_t5
from tests.fixtures.quantize import quantize_config
from tests.fixtures.text import overlap_metric, tiny_records

pytestmark = pytest.mark.slow

GATES = GeneratorGates(
    max_drop={"rouge_l": 0.05, "keyword_coverage": 0.05, "answer_consistency": 0.05},
    max_changed_share=1.0,
    floors={},
    promotion={},
)


@pytest.fixture(scope="module")
def t5_dir(tmp_path_factory):
    return export_tiny_t5(tmp_path_factory.mktemp("t5") / "fp32")


@pytest.fixture(scope="module")
def quantized(t5_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("variants")
    records = tiny_records(10)
    cfg = quantize_config(calibration_samples=3, eval_samples=10)
    result = run_quantization(
        fp32_dir=t5_dir,
        out_dir=out,
        calib_prompts=[str(r["prompt"]) for r in records[:3]],
        eval_records=records,
        cfg=cfg,
        gates=GATES,
        metric_fn=overlap_metric,
        max_new_tokens=8,
    )
    return out, result


def test_every_variant_is_recorded_with_numbers(quantized):
    _, result = quantized
    variants = result["variants"]
    assert set(variants) == {"fp32", "dynamic_int8", "static_int8"}
    for v in variants.values():
        assert v["size_mb"] > 0 and v["latency_ms_median"] > 0
        assert {"rouge_l", "keyword_coverage", "degenerate_share"} <= set(v["metrics"])
        assert {g["name"] for g in v["gates"]} >= {"rouge_l_drop", "changed_output_share"}
    fp32 = variants["fp32"]
    assert fp32["passed"]
    assert next(g for g in fp32["gates"] if g["name"] == "changed_output_share")["value"] == 0.0
    assert variants["dynamic_int8"]["size_ratio"] < 1.0
    assert result["shipped"] in {k for k, v in variants.items() if v["passed"]}
    json.dumps(result, allow_nan=False)  # metrics/quantize.json must serialize
    assert [r["variant"] for r in plot_rows(result)] == list(variants)


def test_variants_are_timed_as_the_drop_in_runs_them(quantized):
    """``speed_path: drop_in``: each variant's one-file graph timed; the static int8 variant
    has no lean step (no drop-in) and is never the fastest; the shipped one is ranked by it."""
    _, result = quantized
    variants = result["variants"]
    assert result["speed_path"] == "drop_in"
    assert variants["fp32"]["drop_in_latency_ms_median"] > 0
    assert variants["fp32"]["drop_in_step"] == "lean+mha"  # no skeleton bank: nothing to draft
    assert variants["dynamic_int8"]["drop_in_latency_ms_median"] > 0
    assert variants["static_int8"]["drop_in_latency_ms_median"] is None
    assert variants["static_int8"]["drop_in_step"] == "none"
    passing = {k: v for k, v in variants.items() if v["passed"] and k != "static_int8"}
    fastest = min(v["drop_in_latency_ms_median"] for v in passing.values())
    shipped = variants[result["shipped"]]
    assert shipped["drop_in_latency_ms_median"] <= fastest * (1 + result["speed_tolerance"])


def test_a_static_int8_export_has_no_one_file_form(quantized):
    """ONNX Runtime aborts the process loading a Loop around a QDQ decoder, so the builder
    refuses it with a named error instead of writing a file a backend cannot open."""
    import json

    from export.generation_graph import (
        GenerationGraphError,
        GenerationSettings,
        build_loop_model,
    )

    out, _ = quantized
    d = out / "static_int8"
    settings = GenerationSettings.from_config(
        json.loads((d / "generation_config.json").read_text())
    )
    with pytest.raises(GenerationGraphError, match=r"static int8 \(QDQ\).*fp32 or dynamic int8"):
        build_loop_model(d, settings, fused_attention=True)
    assert build_loop_model(out / "dynamic_int8", settings, fused_attention=True).graph.node


def test_exclusions_and_merged_decoder_are_recorded(quantized):
    out, result = quantized
    excluded = result["variants"]["static_int8"]["recipe"]["excluded_nodes"]
    assert all("DenseReluDense/wo" in n for n in excluded["decoder_with_past_model.onnx"])
    assert len(excluded["decoder_with_past_model.onnx"]) == 2  # one per decoder layer
    assert (
        result["variants"]["static_int8"]["recipe"]["calibration_feeds"]["encoder_model.onnx"] == 3
    )
    assert any("If subgraph" in n for n in result["notes"])
    for name in ("fp32", "dynamic_int8", "static_int8"):
        files = {p.name for p in (out / name).iterdir()}
        assert {*ONNX_FILES, "tokenizer.json", "generation_config.json"} <= files
        assert "decoder_model_merged.onnx" not in files


def test_calibration_feeds_include_real_past_key_values(t5_dir):
    feeds = record_feeds(t5_dir, [str(r["prompt"]) for r in tiny_records(2)], 4)
    with_past = feeds["decoder_with_past_model.onnx"]
    assert len(with_past) >= 2
    lengths = [f["past_key_values.0.decoder.key"].shape[2] for f in with_past]
    assert lengths[:2] == [1, 2]  # the cache grows one step at a time, as in serving


def _degrade(src, dst):
    """A copy of fp32 with the decoder weights overwritten by noise: a broken 'quantization'."""
    import onnx
    from onnx import numpy_helper

    shutil.copytree(src, dst)
    rng = np.random.default_rng(0)
    for name in ("decoder_model.onnx", "decoder_with_past_model.onnx"):
        model = onnx.load(str(dst / name))
        for init in model.graph.initializer:
            arr = numpy_helper.to_array(init)
            if arr.dtype == np.float32 and arr.ndim == 2:
                noisy = rng.normal(scale=3.0, size=arr.shape).astype(np.float32)
                init.CopyFrom(numpy_helper.from_array(noisy, init.name))
        onnx.save(model, str(dst / name))


def test_degraded_variant_fails_its_gate_and_is_not_shipped(t5_dir, tmp_path):
    _degrade(t5_dir, tmp_path / "degraded")
    records = tiny_records(10)
    evaluated = {
        name: qg.evaluate_variant(d, records, metric_fn=overlap_metric, max_new_tokens=8, threads=1)
        for name, d in (("fp32", t5_dir), ("degraded", tmp_path / "degraded"))
    }
    evaluated["degraded"]["latency_ms_median"] = 1e-3  # even if it were the fastest
    gates = GeneratorGates(
        max_drop={"rouge_l": 0.05}, max_changed_share=0.2, floors={}, promotion={}
    )
    summary = qg.summarize(
        evaluated,
        {"fp32": {}, "degraded": {}},
        max_drop=gates.max_drop,
        max_changed_share=gates.max_changed_share,
    )
    assert not summary["degraded"]["passed"]
    failed = [g["name"] for g in summary["degraded"]["gates"] if not g["passed"]]
    assert "changed_output_share" in failed
    assert choose_shipped(summary, "fastest_passing") == "fp32"


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match=r"quantize_generator.ship_rule"):
        build_config(QuantizeConfig, {"ship_rule": "best"}, "quantize_generator")
    with pytest.raises(ConfigError, match=r"calibration_samples"):
        build_config(QuantizeConfig, {"calibration_samples": 0}, "quantize_generator")
    with pytest.raises(ConfigError, match=r"max_changed_share"):
        build_config(
            GeneratorGates,
            {"max_drop": {}, "max_changed_share": 2.0, "floors": {}},
            "gates.generator",
        )


def test_read_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "test.jsonl"
    path.write_text('{"prompt": "a", "target": "b", "keywords": []}\n{"prompt": "a"}\n')
    with pytest.raises(
        ValueError, match=r"test.jsonl:2: missing field\(s\) \['target', 'keywords'\]"
    ):
        read_jsonl(path, required=["prompt", "target", "keywords"])


def test_text_metric_adapter_uses_generation_metrics():
    from pipelines.quantize_generator import text_metric_fn

    rec = {"target": "Tom has 3 apples. How many? ||| 1 + 2", "keywords": ["apples"]}
    metrics = text_metric_fn(["Tom has 3 apples. How many?"])(
        ["Tom has 3 apples. How many? ||| 1 + 2"], [rec]
    )
    assert metrics["rouge_l"] == pytest.approx(1.0)
    assert metrics["keyword_coverage"] == pytest.approx(1.0)
    assert metrics["copy_rate"] == pytest.approx(1.0)
