"""The two stages' main() end to end on tiny models: quantize -> package -> verify -> promote."""

from __future__ import annotations

import json

import pytest

from pipelines.gates import check_gates
from serving.manifest import verify_artifact
from tests.fixtures.generator import export_tiny_t5
from tests.fixtures.store import fresh_tracking_uri
from tests.fixtures.text import tiny_records
from tests.fixtures.weakness import make_weakness_export

pytestmark = pytest.mark.slow


def test_stages_end_to_end(tmp_path, monkeypatch, declare_stage_paths):
    import pipelines.package as pkg
    import pipelines.quantize_generator as qz
    from pipelines import common

    monkeypatch.setenv("MLFLOW_TRACKING_URI", fresh_tracking_uri(tmp_path))
    fp32 = export_tiny_t5(tmp_path / "onnx/generator")
    (fp32 / "manifest.draft.json").write_text(json.dumps({"generation": {"max_new_tokens": 8}}))
    text = tmp_path / "text"
    text.mkdir()
    for split, n, seed in (("train", 6, 1), ("test", 6, 2), ("test_unseen", 6, 3)):
        rows = [{"id": f"{split}-{i}", **r} for i, r in enumerate(tiny_records(n, seed=seed))]
        (text / f"{split}.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    weak = tmp_path / "onnx/weakness"
    weak.mkdir(parents=True)
    make_weakness_export(weak).to_parquet(tmp_path / "test.parquet", index=False)
    (tmp_path / "training_config.json").write_text(json.dumps({"mlflow_run_id": "gen-run"}))

    params = common.load_params()
    params["quantize_generator"].update(
        calibration_samples=2, eval_samples=6, variants=["dynamic_int8"]
    )
    # the generation length is serving's default request length (no params key): 6 tokens here
    monkeypatch.setattr(qz, "DEFAULT_MAX_LENGTH", 6)
    monkeypatch.setattr(pkg, "DEFAULT_MAX_LENGTH", 6)
    params["gates"]["generator"]["floors"] = {"rouge_l": 0.0}
    # an untrained tiny model's greedy output flips under int8 far more than a trained one's:
    # this test checks the mechanism (quantize -> gates -> package -> promote), not the model
    params["gates"]["generator"]["max_changed_share"] = 1.0
    # its outputs have no keyword slots to render, so the open-vocabulary metrics are undefined
    # (None fails a gate, as it should); their gates are tested in tests/quantize
    params["gates"]["generator"]["max_drop"] = {
        k: v
        for k, v in params["gates"]["generator"]["max_drop"].items()
        if k in ("rouge_l", "keyword_coverage", "answer_consistency")
    }
    monkeypatch.setattr(common, "load_section", lambda s: params[s])  # stage_config's reader
    monkeypatch.setattr(qz, "load_section", lambda s: params[s])
    monkeypatch.setattr(pkg, "load_section", lambda s: params[s])
    monkeypatch.setattr(pkg, "load_gates", lambda: check_gates(params["gates"]))
    declare_stage_paths(
        "quantize_generator",
        fp32_dir=fp32,
        text_dir=text,
        variants_dir=tmp_path / "variants",
        metrics_file=tmp_path / "metrics/quantize.json",
        plot_file=tmp_path / "plots/quantize/variants.json",
        samples_file=tmp_path / "metrics/generator_samples.md",  # never the repo's page
    )
    qz.main()
    quantize = json.loads((tmp_path / "metrics/quantize.json").read_text())
    assert set(quantize["variants"]) == {"fp32", "dynamic_int8"}
    assert quantize["shipped"] in quantize["variants"]

    declare_stage_paths(
        "package",
        weakness_dir=weak,
        variants_dir=tmp_path / "variants",
        quantize_metrics=tmp_path / "metrics/quantize.json",
        generator_draft=fp32 / "manifest.draft.json",
        generator_training_config=tmp_path / "training_config.json",
        text_test=text / "test.jsonl",
        text_unseen=text / "test_unseen.jsonl",
        features_test=tmp_path / "test.parquet",
        metrics_file=tmp_path / "metrics/package.json",
    )
    monkeypatch.setattr(pkg, "ARTIFACTS_ROOT", tmp_path / "artifacts")
    pkg.main()
    report = json.loads((tmp_path / "metrics/package.json").read_text())
    assert (
        report["weakness"]["status"] == "packaged" and report["generator"]["status"] == "packaged"
    )
    assert report["weakness"]["quantization"]["shipped_variant"] == "fp32"
    assert "TreeEnsembleClassifier" in report["weakness"]["quantization"]["reason"]
    gen = verify_artifact(tmp_path / "artifacts/generator/1")
    assert gen["variant"] == quantize["shipped"]
    assert gen["mlflow_run_id"] == "gen-run"
    assert gen["eval_data"]["sha256"] and gen["generation"] == {"max_new_tokens": 8}
    assert set(gen["onnx"]) == {
        "encoder_model.onnx",
        "decoder_model.onnx",
        "decoder_with_past_model.onnx",
    }
    pkg.main()  # nothing changed: versions reused, not duplicated
    again = json.loads((tmp_path / "metrics/package.json").read_text())
    assert again["generator"]["status"] == "reused" and again["generator"]["version"] == 1

    from typer.testing import CliRunner

    from pipelines.cli import app

    refused = CliRunner().invoke(app, ["promote", "--model", "generator"])
    assert refused.exit_code == 1  # params.yaml's rouge_l floor: a random model stays out
    assert "rouge_l" in refused.output
    import pipelines.gates

    monkeypatch.setattr(common, "load_section", lambda s: params[s])
    monkeypatch.setattr(pipelines.gates, "load_gates", lambda: check_gates(params["gates"]))
    result = CliRunner().invoke(app, ["promote", "--model", "generator"])
    assert result.exit_code == 0, result.output
    aliases = json.loads((tmp_path / "artifacts/generator/aliases.json").read_text())
    assert aliases["champion"] == 1
