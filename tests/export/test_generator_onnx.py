"""Generator ONNX export: files and manifest, greedy parity with PyTorch, the failing gate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from export import generator_onnx as gx
from export.parity import ParityError
from serving.onnx_files import (
    DECODER_FILE,
    DECODER_WITH_PAST_FILE,
    ENCODER_FILE,
    MERGED_DECODER_FILE,
)
from tests.fixtures.generator import one_thread, save_checkpoint_dir
from tests.fixtures.text import make_records

pytestmark = pytest.mark.slow


def perturb_decoders(onnx_dir: Path, scale: float = 0.5, seed: int = 0) -> None:
    """Add noise to the largest float initializer of both decoders (an export gone wrong)."""
    import onnx
    from onnx import numpy_helper

    rng = np.random.default_rng(seed)
    for name in (DECODER_FILE, DECODER_WITH_PAST_FILE):
        model = onnx.load(str(onnx_dir / name))
        inits = [i for i in model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT]
        target = max(inits, key=lambda i: int(np.prod(i.dims)))
        arr = numpy_helper.to_array(target)
        noisy = arr + rng.normal(0.0, scale, arr.shape).astype(np.float32)
        target.CopyFrom(numpy_helper.from_array(noisy, target.name))
        onnx.save(model, str(onnx_dir / name))


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A trained tiny checkpoint, its ONNX export and a fresh torch copy for the reference."""
    from transformers import PreTrainedTokenizerFast

    from training.generator import encode_text

    root = tmp_path_factory.mktemp("gen_export")
    # trained long enough that greedy output is not one repeated token (the check below)
    save_checkpoint_dir(root / "ckpt", train_epochs=12)
    files = gx.export_onnx(
        gx.load_torch_model(root / "ckpt"), root / "ckpt", root / "onnx", opset=18
    )
    tok = PreTrainedTokenizerFast.from_pretrained(str(root / "ckpt"))
    prompts = [r["prompt"] for r in make_records(6, seed=5)]
    return {
        "root": root,
        "files": files,
        "model": gx.load_torch_model(root / "ckpt"),
        "prompts": prompts,
        "ids": [encode_text(tok, p, 64) for p in prompts],
    }


def test_export_writes_the_two_decoders_tokenizer_and_config(exported: dict[str, Any]) -> None:
    files = set(exported["files"])
    assert {*gx.ONNX_FILES, *gx.COPIED_FILES} <= files
    assert MERGED_DECODER_FILE not in files


def test_describe_reads_past_inputs_from_the_graph(exported: dict[str, Any]) -> None:
    spec = gx.describe_onnx(exported["root"] / "onnx" / DECODER_WITH_PAST_FILE)
    names = [i["name"] for i in spec["inputs"]]
    assert "input_ids" in names and "encoder_attention_mask" in names
    past = [i for i in spec["inputs"] if i["name"].startswith("past_key_values.")]
    assert len(past) == 4  # 1 layer x {decoder, encoder} x {key, value}
    assert all(i["dtype"] == "float32" and i["shape"][1] == 2 for i in past)  # 2 heads
    logits = next(o for o in spec["outputs"] if o["name"] == "logits")
    assert logits["shape"][-1] == exported["model"].config.vocab_size


def test_manifest_draft_carries_generation_settings(exported: dict[str, Any]) -> None:
    draft = gx.manifest_draft(
        exported["root"] / "onnx",
        opset=18,
        model_config=exported["model"].config,
        max_new_tokens=16,
    )
    assert draft["variant"] == "fp32" and draft["opset"] == 18
    gen = draft["generation"]
    assert (gen["decoder_start_token_id"], gen["eos_token_id"], gen["pad_token_id"]) == (0, 1, 0)
    assert gen["num_decoder_layers"] == 1 and gen["num_heads"] == 2
    assert draft["sizes_bytes"][ENCODER_FILE] > 0
    json.dumps(draft)  # serialisable as is


def test_greedy_ids_and_first_logits_match_torch(exported: dict[str, Any]) -> None:
    from serving.decode_loop import OnnxSeq2SeqGenerator

    gen = OnnxSeq2SeqGenerator(exported["root"] / "onnx")
    report = gx.check_parity(
        exported["model"],
        gen,
        exported["prompts"],
        exported["ids"],
        max_new_tokens=16,
        atol=1e-4,
        min_match_share=1.0,
    )
    assert report.match_share == 1.0 and report.n_prompts == 6
    assert report.max_logit_diff < 1e-4
    # Not a trivial match on an empty or constant output.
    ids = gen.generate(exported["ids"][0], max_new_tokens=16)
    assert len(set(ids)) > 2


def test_gate_fails_naming_prompts_when_a_decoder_weight_is_altered(
    exported: dict[str, Any], tmp_path: Path
) -> None:
    from serving.decode_loop import OnnxSeq2SeqGenerator

    bad = tmp_path / "bad"
    shutil.copytree(exported["root"] / "onnx", bad)
    perturb_decoders(bad)
    with pytest.raises(ParityError, match="differing prompts: #0") as err:
        gx.check_parity(
            exported["model"],
            OnnxSeq2SeqGenerator(bad),
            exported["prompts"],
            exported["ids"],
            max_new_tokens=16,
            atol=1e-4,
            min_match_share=1.0,
        )
    message = str(err.value)
    assert exported["prompts"][0] in message
    assert "max first-step logit diff" in message and "> atol" in message


def test_stage_publishes_only_after_the_gate(
    exported: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines import export_generator as stage
    from pipelines.common import build_config

    test_file = tmp_path / "test.jsonl"
    test_file.write_text("".join(json.dumps(r) + "\n" for r in make_records(4, seed=9)))
    cfg = build_config(
        stage.ExportGeneratorConfig,
        {
            "opset": 18,
            "n_parity_prompts": 3,
            "min_match_share": 1.0,
            "logits_atol": 1e-4,
            "num_threads": 1,
        },
        "test",
    )
    paths = {
        "model_dir": exported["root"] / "ckpt",
        "test_file": test_file,
        "onnx_dir": tmp_path / "onnx",
        "metrics_file": tmp_path / "metrics.json",
        "max_new_tokens": 12,
    }
    with one_thread():
        metrics = stage.run(cfg, **paths)
    assert metrics["match_share"] == 1.0 and metrics["n_prompts"] == 3
    manifest = json.loads((tmp_path / "onnx" / "manifest.draft.json").read_text())
    assert manifest["parity"]["match_share"] == 1.0
    assert (tmp_path / "onnx" / "tokenizer.json").is_file()

    # Same stage with an export that goes wrong: it raises and writes nothing.
    real_export = gx.export_onnx

    def broken_export(*args: Any, **kwargs: Any) -> list[str]:
        files = real_export(*args, **kwargs)
        perturb_decoders(args[2])
        return files

    monkeypatch.setattr(gx, "export_onnx", broken_export)
    paths.update(onnx_dir=tmp_path / "onnx2", metrics_file=tmp_path / "metrics2.json")
    with one_thread(), pytest.raises(ParityError):
        stage.run(cfg, **paths)
    assert not (tmp_path / "onnx2").exists()
    assert not (tmp_path / "metrics2.json").exists()
