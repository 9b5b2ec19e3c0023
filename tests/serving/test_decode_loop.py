"""ONNX Runtime generation loop: cache vs no cache, sampling, validation, light imports."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from serving.decode_loop import OnnxSeq2SeqGenerator, filter_logits
from serving.onnx_files import ENCODER_FILE
from tests.fixtures.generator import save_checkpoint_dir
from tests.fixtures.imports import loaded_modules
from tests.fixtures.text import make_records


@pytest.fixture(scope="module")
def two_layer(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A trained tiny T5 with 2 encoder and 2 decoder layers, exported to ONNX."""
    from export.generator_onnx import export_onnx, load_torch_model

    root = tmp_path_factory.mktemp("gen_serving")
    save_checkpoint_dir(root / "ckpt", num_layers=2, num_decoder_layers=2)
    export_onnx(load_torch_model(root / "ckpt"), root / "ckpt", root / "onnx", opset=18)
    return {
        "root": root,
        "gen": OnnxSeq2SeqGenerator(root / "onnx", intra_op_num_threads=1),
        "prompts": [r["prompt"] for r in make_records(4, seed=11)],
    }


@pytest.mark.slow
def test_reads_past_names_for_any_layer_count(two_layer: dict[str, Any]) -> None:
    gen = two_layer["gen"]
    assert len(gen._past_names) == 8  # 2 layers x {decoder, encoder} x {key, value}
    assert "past_key_values.1.encoder.value" in gen._past_names


@pytest.mark.slow
def test_cache_and_no_cache_give_the_same_greedy_ids(two_layer: dict[str, Any]) -> None:
    gen = two_layer["gen"]
    for prompt in two_layer["prompts"]:
        with_cache = gen.generate(prompt, max_new_tokens=20, use_cache=True)
        without = gen.generate(prompt, max_new_tokens=20, use_cache=False)
        assert with_cache == without
        assert len(with_cache) > 0


@pytest.mark.slow
def test_greedy_matches_torch_on_the_two_layer_model(two_layer: dict[str, Any]) -> None:
    from export.generator_onnx import load_torch_model, torch_greedy_ids

    model = load_torch_model(two_layer["root"] / "ckpt")
    gen = two_layer["gen"]
    for prompt in two_layer["prompts"]:
        ids = gen.encode(prompt)
        assert gen.generate(ids, max_new_tokens=20) == torch_greedy_ids(
            model, ids, max_new_tokens=20, banned=gen.banned_ids(ids).tolist()
        )


@pytest.mark.slow
def test_sampling_is_reproducible_with_a_seed_and_varies_across_seeds(
    two_layer: dict[str, Any],
) -> None:
    gen = two_layer["gen"]
    prompt = two_layer["prompts"][0]
    kwargs = {"max_new_tokens": 20, "do_sample": True, "temperature": 1.5, "top_k": 0, "top_p": 1.0}
    first = gen.generate(prompt, seed=3, **kwargs)
    assert gen.generate(prompt, seed=3, **kwargs) == first
    others = {tuple(gen.generate(prompt, seed=s, **kwargs)) for s in range(4, 9)}
    assert others - {tuple(first)}
    # Sampling with top_k=1 is greedy whatever the seed.
    greedy = gen.generate(prompt, max_new_tokens=20)
    assert gen.generate(prompt, max_new_tokens=20, do_sample=True, top_k=1, seed=5) == greedy


@pytest.mark.slow
def test_generate_text_decodes_without_special_tokens(two_layer: dict[str, Any]) -> None:
    text = two_layer["gen"].generate_text(two_layer["prompts"][0], max_new_tokens=20)
    assert text and "<pad>" not in text and "</s>" not in text


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"temperature": 0.0}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_k": -1}, "top_k"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"max_new_tokens": 100_000}, "max_new_tokens"),
        ({"max_new_tokens": 2.5}, "max_new_tokens"),
    ],
)
def test_invalid_arguments_raise_naming_the_argument(
    two_layer: dict[str, Any], kwargs: dict[str, Any], argument: str
) -> None:
    with pytest.raises(ValueError, match=argument):
        two_layer["gen"].generate(two_layer["prompts"][0], do_sample=True, **kwargs)


@pytest.mark.slow
def test_constructor_and_inputs_are_validated(two_layer: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="graph_optimization_level"):
        OnnxSeq2SeqGenerator(two_layer["root"] / "onnx", graph_optimization_level="max")
    with pytest.raises(FileNotFoundError, match=re.escape(ENCODER_FILE)):
        OnnxSeq2SeqGenerator(tmp_path)
    with pytest.raises(ValueError, match="input_ids"):
        two_layer["gen"].generate([])
    with pytest.raises(ValueError, match="prompt"):
        two_layer["gen"].generate("   ")


def test_filter_logits_top_k_and_top_p() -> None:
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    kept_k = np.isfinite(filter_logits(logits, top_k=2, top_p=1.0))
    assert kept_k.tolist() == [True, True, False, False]
    # Nucleus: 0.5 < 0.7, 0.5 + 0.3 >= 0.7 -> the two most likely tokens stay.
    kept_p = np.isfinite(filter_logits(logits, top_k=0, top_p=0.7))
    assert kept_p.tolist() == [True, True, False, False]
    assert np.isfinite(filter_logits(logits, top_k=0, top_p=0.01)).sum() == 1
    assert np.isfinite(filter_logits(logits, top_k=0, top_p=1.0)).all()


def test_module_imports_neither_torch_nor_transformers() -> None:
    assert loaded_modules(["serving.decode_loop"], ("torch", "transformers", "optimum")) == []
