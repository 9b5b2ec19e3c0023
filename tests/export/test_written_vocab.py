"""The decoder's output vocabulary: a typed-role model's decoder writes only the tokens its
skeleton bank holds. The Python loop bans the others; the one-file graph computes its lm head on
the written tokens' columns only. Their greedy ids must still agree, free, in a batch and within
a trie, or the HTTP app and the drop-in would write different problems."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from export.greedy_nodes import column_of, written_columns
from serving.constrain import SkeletonBank, Trie, unwritten_ids
from serving.roles import SKELETONS_FILE
from tests.fixtures.text import EXPORT_WORDS

# the bank's targets: a third of the tiny tokenizer's words (numbers, apples, pears, "+")
TARGETS = {
    "addition": [
        "one apple has two more pear",
        "how many apple , three + four",
        "five pear | | | one + two",
    ]
}


def test_the_written_tokens_are_those_the_targets_hold() -> None:
    ids = {"a": 3, "b": 4, "c": 6}
    bank = SkeletonBank({"t": ["a b", "b c"]}, lambda s: [ids[w] for w in s.split()] + [1])
    assert bank.written_ids().tolist() == [1, 3, 4, 6]  # eos, which encode appends, included
    assert unwritten_ids(bank, 8).tolist() == [0, 2, 5, 7]
    assert unwritten_ids(None, 8).size == 0
    # a bank without targets knows of no token it never writes
    assert unwritten_ids(SkeletonBank({}, lambda s: [1]), 8).size == 0


def test_the_narrowed_columns_keep_the_pad_and_map_back() -> None:
    cols = written_columns([0, 2, 5], 7)
    assert cols.tolist() == [0, 1, 3, 4, 6]  # token 0 keeps column 0 (the trie mask's padding)
    assert column_of(cols, 7).tolist() == [0, 1, 0, 2, 3, 0, 4]


def test_an_int8_lm_head_is_cut_with_its_per_column_scales() -> None:
    from export.fused_step import narrowed_weights
    from export.step_parts import QuantWeight

    q = np.arange(12, dtype=np.int8).reshape(2, 6)
    cols = np.array([0, 2, 5])
    per_column = QuantWeight(q, np.linspace(0.1, 0.6, 6, dtype=np.float32), np.zeros(6, np.int8))
    cut = narrowed_weights({"lm_head": per_column}, cols)["lm_head"]
    assert cut.q.tolist() == [[0, 2, 5], [6, 8, 11]]
    assert cut.scale.tolist() == pytest.approx([0.1, 0.3, 0.6])
    assert cut.zero_point.shape == (3,)
    per_tensor = QuantWeight(q, np.float32(0.5), np.int8(3))
    cut = narrowed_weights({"lm_head": per_tensor}, cols)["lm_head"]
    assert cut.q.shape == (2, 3) and float(cut.scale) == 0.5 and int(cut.zero_point) == 3
    plain = {"lm_head": q.astype(np.float32)}
    assert narrowed_weights(plain, None)["lm_head"] is plain["lm_head"]


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the tiny export without a bank, the same export with :data:`TARGETS` as its bank)."""
    from tests.fixtures.generator import export_tiny_t5, with_empty_bank

    plain = export_tiny_t5(tmp_path_factory.mktemp("tiny-t5-vocab"))
    banked = with_empty_bank(plain, tmp_path_factory.mktemp("tiny-t5-vocab-bank"))
    (banked / SKELETONS_FILE).write_text(json.dumps(TARGETS), encoding="utf-8")
    return plain, banked


def _prompts(n: int, seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [[*rng.integers(3, 40, size=int(rng.integers(2, 16))).tolist(), 1] for _ in range(n)]


def test_the_python_loop_writes_only_the_banks_tokens(dirs: tuple[Path, Path]) -> None:
    from serving.decode_loop import OnnxSeq2SeqGenerator

    plain, banked = (OnnxSeq2SeqGenerator(d) for d in dirs)
    assert len(EXPORT_WORDS) > 20 and 0 < banked.unwritten.size < banked.vocab
    assert plain.unwritten.size == 0
    never = set(banked.unwritten.tolist())
    free = [plain.generate(p, max_new_tokens=12) for p in _prompts(24, seed=5)]
    # the random model writes unwritten tokens when let: the ban changes its outputs
    assert sum(bool(never & set(ids)) for ids in free) >= 12
    for p in _prompts(24, seed=5):
        assert not never & set(banked.generate(p, max_new_tokens=12))


def _batch(session, prompts: list[list[int]], n: int, trie: Trie | None = None) -> list[list[int]]:  # type: ignore[no-untyped-def]
    from serving.constrain import trie_feeds
    from serving.one_file import SEQUENCES_OUTPUT, max_length_feed, strip_sequence

    width = max(len(p) for p in prompts)
    ids = np.zeros((len(prompts), width), np.int64)
    mask = np.zeros_like(ids)
    for r, p in enumerate(prompts):
        ids[r, : len(p)], mask[r, : len(p)] = p, 1
    feeds = {
        "input_ids": ids,
        "attention_mask": mask,
        "max_length": max_length_feed(session, n),
        **trie_feeds(session, trie),
    }
    (seq,) = session.run([SEQUENCES_OUTPUT], feeds)
    return [strip_sequence(row, eos_token_id=1) for row in seq]


@pytest.fixture(scope="module")
def int8_dir(dirs: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The banked export as the quantize stage's dynamic int8 variant (per-column scales)."""
    from quantize.generator import make_dynamic

    out = tmp_path_factory.mktemp("tiny-t5-vocab-int8")
    make_dynamic(
        dirs[1],
        out,
        weight_type="qint8",
        per_channel=True,
        reduce_range=False,
        op_types=["MatMul", "Gather"],
        exclude_patterns=[],
    )
    return out


@pytest.mark.slow
@pytest.mark.parametrize("fused", [True, False, "int8"])
def test_the_one_file_graph_writes_the_python_loops_ids(
    dirs: tuple[Path, Path], int8_dir: Path, tmp_path: Path, fused: bool | str
) -> None:
    from export.draft_loop import bank_sequences
    from export.generation_graph import (
        GenerationSettings,
        build_loop_model,
        one_file_session,
        save_generation_model,
    )
    from serving.decode_loop import OnnxSeq2SeqGenerator
    from serving.one_file import OneFileDecoder

    banked = int8_dir if fused == "int8" else dirs[1]
    reference = OnnxSeq2SeqGenerator(banked)
    settings = GenerationSettings.from_config(
        json.loads((banked / "generation_config.json").read_text())
    )
    draft = bank_sequences(banked, eos=1) if fused is True else None  # int8 cannot draft
    model = build_loop_model(banked, settings, fused_attention=bool(fused), draft=draft)
    # every loop's lm head: the vocabulary's width, or (fused) the written tokens' and the pad's
    widths = set()
    for g in _graphs(model.graph):
        weights = {i.name: i for i in g.initializer}
        for node in g.node:
            if node.op_type in ("MatMul", "DynamicQuantizeMatMul") and node.output[0] == "b_logits":
                widths.add(numpy_helper.to_array(weights[node.input[1]]).shape[1])
    narrow = reference.vocab - reference.unwritten.size + 1
    assert widths == {narrow if fused else reference.vocab}
    path = tmp_path / "one_file.onnx"
    save_generation_model(model, path)
    session = one_file_session(path)
    prompts = _prompts(12, seed=9)
    want = [reference.generate(p, max_new_tokens=12) for p in prompts]
    assert [_batch(session, [p], 12)[0] for p in prompts] == want  # one prompt (fp32: drafted)
    if fused != "int8":  # int8 quantizes a batch's activations together: other ids at b > 1
        assert _batch(session, prompts, 12) == want  # a batch: the one-token loop
    # within a trie of the bank's targets
    trie = Trie(reference.encode(t) for t in TARGETS["addition"])
    one_file = OneFileDecoder(session, None, eos_token_id=1)
    within = [reference.generate(p, max_new_tokens=12, trie=trie) for p in prompts[:6]]
    assert [one_file.generate(p, max_new_tokens=12, trie=trie) for p in prompts[:6]] == within
    if fused != "int8":  # a batch within the trie: the one-token loop's masked steps
        assert _batch(session, prompts[:6], 12, trie) == within


def _graphs(g: onnx.GraphProto):  # type: ignore[no-untyped-def]
    """``g`` and every subgraph in it."""
    yield g
    for node in g.node:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                yield from _graphs(a.g)
