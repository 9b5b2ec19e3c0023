"""The one-file generator graph: same greedy ids as the Python loop, documented IO, named errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from bench.beam_search_graph import build_beam_search_model
from export.generation_graph import (
    GenerationGraphError,
    GenerationParityError,
    GenerationSettings,
    build_loop_model,
    check_generation_parity,
    max_length_feed,
    one_file_session,
    run_greedy,
    save_generation_model,
    strip_sequence,
)
from serving.constrain import takes_trie
from serving.one_file import OneFileDecoder
from serving.onnx_files import (
    DECODER_FILE,
    DECODER_WITH_PAST_FILE,
    ENCODER_FILE,
    ONE_FILE_NAME,
    SEQ2SEQ_FILES,
)
from tests.fixtures.generator import constrained_runs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.fixtures.generator import export_tiny_t5

    return export_tiny_t5(tmp_path_factory.mktemp("tiny-t5"))


def _build(src: Path, builder: str) -> Path:
    settings = GenerationSettings.from_config(
        json.loads((src / "generation_config.json").read_text())
    )
    out = src / f"{builder}_{ONE_FILE_NAME}"
    if not out.is_file():
        if builder == "beam":
            model = build_beam_search_model(src, settings)
        else:
            model = build_loop_model(
                src, settings, lean=builder != "loop_optimum_body", fused_attention=builder == "mha"
            )
            step = {p.key: p.value for p in model.metadata_props}["step"]
            want = {"loop": "lean", "mha": "lean+mha", "loop_optimum_body": "optimum"}
            assert step == want[builder]
        save_generation_model(model, out)
    return out


@pytest.fixture(scope="module", params=["loop", "mha", "loop_optimum_body", "beam"])
def tiny(request: pytest.FixtureRequest, export_dir: Path) -> tuple[Path, Path]:
    """(optimum export, one-file model) for each builder."""
    return export_dir, _build(export_dir, request.param)


@pytest.fixture(scope="module")
def beam(export_dir: Path) -> Path:
    return _build(export_dir, "beam")


@pytest.fixture(scope="module")
def reference(export_dir: Path):  # type: ignore[no-untyped-def]
    from serving.decode_loop import OnnxSeq2SeqGenerator

    return OnnxSeq2SeqGenerator(export_dir)


def _prompts(n: int, seed: int = 0) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [[*rng.integers(3, 64, size=int(rng.integers(2, 24))).tolist(), 1] for _ in range(n)]


@pytest.mark.parametrize("max_new_tokens", [1, 8, 30])
def test_greedy_ids_equal_python_loop(tiny, reference, max_new_tokens: int) -> None:  # type: ignore[no-untyped-def]
    session = one_file_session(tiny[1])
    prompts = _prompts(60, seed=max_new_tokens)
    report = check_generation_parity(session, reference, prompts, max_new_tokens=max_new_tokens)
    assert report.n_equal == report.n_prompts == 60
    # the outputs are varied: some stop at eos early, some run to the limit
    lengths = {len(reference.generate(p, max_new_tokens=max_new_tokens)) for p in prompts}
    assert len(lengths) > 1 or max_new_tokens == 1


def test_one_file_io_defaults_and_layout(tiny, reference) -> None:  # type: ignore[no-untyped-def]
    session = one_file_session(tiny[1])
    names = [i.name for i in session.get_inputs()]
    assert names[:2] == ["input_ids", "attention_mask"]
    assert [o.name for o in session.get_outputs()] == ["sequences"]
    ids = np.asarray([_prompts(1, seed=3)[0]], dtype=np.int64)
    # only input_ids and attention_mask: max_length defaults to the artifact's max_new_tokens (8)
    assert "max_length" in {i.name for i in session.get_overridable_initializers()}
    (seq,) = session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})
    assert seq.dtype == np.int64 and seq.shape[0] == 1 and seq.shape[1] <= 1 + 8
    assert seq[0, 0] == reference.decoder_start_token_id
    want = reference.generate(ids[0].tolist(), max_new_tokens=8)
    assert strip_sequence(seq[0], eos_token_id=1) == want
    if len(want) < 8:  # finished early: eos fills the rest of the row
        assert set(seq[0, 1 + len(want) :].tolist()) == {1}


def test_beams_return_one_row_per_sequence(beam: Path) -> None:
    session = one_file_session(beam)
    ids = np.asarray(_prompts(2, seed=5)[0:1] * 2, dtype=np.int64)
    feeds = {
        "input_ids": ids,
        "attention_mask": np.ones_like(ids),
        "max_length": np.array([6], np.int32),
        "num_beams": np.array([3], np.int32),
        "num_return_sequences": np.array([3], np.int32),
    }
    (seq,) = session.run(None, feeds)
    assert seq.shape[0] == 2 * 3
    assert np.array_equal(seq[:3], seq[3:])  # same prompt twice in one batch: same beams


def test_parity_error_names_the_prompt(tiny, reference) -> None:  # type: ignore[no-untyped-def]
    # a reference that disagrees (one extra token): the gate names the prompt and both id lists
    class Off:
        eos_token_id = 1

        def generate(self, ids, max_new_tokens, trie=None):  # type: ignore[no-untyped-def]
            return [*reference.generate(ids, max_new_tokens=max_new_tokens, trie=trie), 5]

    session = one_file_session(tiny[1])
    with pytest.raises(GenerationParityError, match=r"#0 'first'.*python loop"):
        check_generation_parity(
            session, Off(), _prompts(2), max_new_tokens=4, prompts=["first", "second"]
        )


def test_unexpected_graph_is_a_named_error(export_dir: Path, tmp_path: Path) -> None:
    import shutil

    import onnx

    for name in SEQ2SEQ_FILES:
        shutil.copy(export_dir / name, tmp_path / name)
    enc = onnx.load(str(tmp_path / ENCODER_FILE))
    enc.graph.output[0].name = "hidden"  # not optimum's last_hidden_state
    onnx.save(enc, str(tmp_path / ENCODER_FILE))
    settings = GenerationSettings(0, 1, 0, 8)
    with pytest.raises(GenerationGraphError, match="last_hidden_state"):
        build_loop_model(tmp_path, settings)
    with pytest.raises(GenerationGraphError, match="last_hidden_state"):
        build_beam_search_model(tmp_path, settings)
    (tmp_path / DECODER_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(DECODER_FILE)):
        build_loop_model(tmp_path, settings)


def test_fused_step_reads_layer0_qkv_from_a_token_table(export_dir: Path) -> None:
    """The table's row is the RMS norm of the token's embedding times layer 0's q/k/v weights,
    stored once in the main graph; the fused step gathers it instead of norm + MatMul."""
    import onnx
    from onnx import numpy_helper

    from export.fused_step import FIRST_QKV, _qkv_weight, first_qkv_table
    from export.step_parts import _lean_weights

    with_past = onnx.load(str(export_dir / DECODER_WITH_PAST_FILE))
    w = _lean_weights(with_past, 2)
    table = first_qkv_table(w, opset=18)
    emb = np.asarray(w["embed"], np.float64)
    norm = emb / np.sqrt((emb**2).mean(axis=1, keepdims=True) + w["eps"]) * w["0.ln0"]
    np.testing.assert_allclose(table, norm @ _qkv_weight(w, 0), rtol=1e-4, atol=1e-5)
    model = onnx.load(str(_build(export_dir, "mha")))
    stored = [i for i in model.graph.initializer if i.name == FIRST_QKV]
    assert len(stored) == 1
    assert np.array_equal(numpy_helper.to_array(stored[0]), table)


def test_fused_step_without_the_table_computes_layer0_qkv(
    export_dir: Path, reference, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """A table over ``FIRST_QKV_MAX_BYTES`` is not stored: the step runs the norm and the
    MatMul itself, with the same ids."""
    import onnx

    import export.fused_step as fused

    monkeypatch.setattr(fused, "FIRST_QKV_MAX_BYTES", 0)
    settings = GenerationSettings.from_config(
        json.loads((export_dir / "generation_config.json").read_text())
    )
    model = build_loop_model(export_dir, settings, fused_attention=True)
    assert fused.FIRST_QKV not in {i.name for i in model.graph.initializer}
    path = tmp_path / ONE_FILE_NAME
    save_generation_model(model, path)
    assert 'op_type: "SimplifiedLayerNormalization"' in str(onnx.load(str(path)).graph)
    report = check_generation_parity(
        one_file_session(path), reference, _prompts(20, seed=4), max_new_tokens=12
    )
    assert report.n_equal == report.n_prompts


def test_run_greedy_matches_generate_text_path(tiny, reference) -> None:  # type: ignore[no-untyped-def]
    session = one_file_session(tiny[1])
    ids = reference.encode("apple has two pear")
    assert run_greedy(session, ids, max_new_tokens=8, eos_token_id=1) == reference.generate(
        ids, max_new_tokens=8
    )


def test_padded_batch_rows_equal_single_prompts(tiny, reference) -> None:  # type: ignore[no-untyped-def]
    """Right padding + attention_mask: each row is what its prompt alone gives."""
    session = one_file_session(tiny[1])
    a, b = _prompts(2, seed=9)
    a, b = (a, b) if len(a) >= len(b) else (b, a)
    ids = np.zeros((2, len(a)), dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, p in enumerate((a, b)):
        ids[row, : len(p)] = p
        mask[row, : len(p)] = 1
    feeds = {"input_ids": ids, "attention_mask": mask}
    feeds["max_length"] = max_length_feed(session, 10)
    (seq,) = session.run(None, feeds)
    for row, p in enumerate((a, b)):
        want = reference.generate(p, max_new_tokens=10)
        assert strip_sequence(seq[row], eos_token_id=1) == want


@pytest.fixture(scope="module")
def slotted_dir(export_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny export with a tokenizer whose keyword slots <k1>..<k8s> are ids 40..55."""
    import shutil

    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers

    from serving.realize import SLOT_TOKENS

    out = tmp_path_factory.mktemp("slotted")
    for f in export_dir.iterdir():
        # optimum's three graphs and configs only: not one-file models other tests built there
        if (
            f.suffix in (".onnx", ".json")
            and f.name != "tokenizer.json"
            and ONE_FILE_NAME not in f.name
        ):
            shutil.copy(f, out / f.name)
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{f"w{i}": i for i in range(3, 40)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_tokens([AddedToken(t, normalized=False) for t in SLOT_TOKENS])
    tok.save(str(out / "tokenizer.json"))
    assert tok.token_to_id("<k1>") == 40 and tok.token_to_id("<k8s>") == 55
    return out


@pytest.mark.parametrize("builder", ["loop", "loop_optimum_body", "beam"])
def test_keyword_slots_without_a_keyword_are_never_generated(
    slotted_dir: Path, export_dir: Path, builder: str
) -> None:
    """A prompt naming <k1>, <k2> never gets <k3>..<k8s> from any decoder, and the guard is what
    stops them: the same weights without the slot tokenizer do write them."""
    from serving.decode_loop import OnnxSeq2SeqGenerator
    from serving.realize import banned_slot_ids, slot_guard

    guarded = OnnxSeq2SeqGenerator(slotted_dir)
    unguarded = OnnxSeq2SeqGenerator(export_dir)  # no slot tokens: nothing banned
    assert len(guarded.slot_guard) == 8 and not unguarded.slot_guard
    # word ids 3..39 after the markers <k1>, <k2>
    prompts = [[40, 42, *(3 + t % 37 for t in p[:-1]), 1] for p in _prompts(24, seed=5)]
    banned = set(range(44, 56))
    assert set(guarded.banned_ids(prompts[0]).tolist()) == banned
    assert banned_slot_ids(prompts[0], slot_guard({"<k1>": 40, "<k1s>": 41}.get)) == ()
    assert banned_slot_ids([5, 1], slot_guard({"<k1>": 40, "<k1s>": 41}.get)) == (40, 41)
    free = [unguarded.generate(p, max_new_tokens=12) for p in prompts]
    assert any(set(ids) & banned for ids in free)  # the random model does write them
    session = one_file_session(_build(slotted_dir, builder))
    for p in prompts:
        want = guarded.generate(p, max_new_tokens=12)
        assert not set(want) & banned
        got = run_greedy(session, p, max_new_tokens=12, eos_token_id=guarded.eos_token_id)
        assert got == want


@pytest.fixture(scope="module")
def banked_dir(export_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny export as a typed-role model: a skeleton bank beside it, so the one-file graph
    takes the bank's trie per request."""
    from tests.fixtures.generator import with_empty_bank

    return with_empty_bank(export_dir, tmp_path_factory.mktemp("banked"))


@pytest.mark.parametrize("builder", ["loop", "loop_optimum_body"])
def test_the_bank_constraint_gives_the_python_loops_ids(
    banked_dir: Path, export_dir: Path, builder: str
) -> None:
    """With a trie of a few sequences, both decoders write one of them, the same one; without
    trie feeds the graph decodes freely, as the Python loop does without a trie."""
    from serving.decode_loop import OnnxSeq2SeqGenerator

    reference = OnnxSeq2SeqGenerator(banked_dir)
    session = one_file_session(_build(banked_dir, builder))
    one_file = OneFileDecoder(session, None, eos_token_id=reference.eos_token_id)
    assert takes_trie(session)
    assert not takes_trie(one_file_session(_build(export_dir, builder)))  # no bank, no inputs
    eos = reference.eos_token_id
    constrained_differs = 0
    runs = constrained_runs(
        reference, one_file, _prompts(20, seed=11), seed=7, low=1, high=9, max_new_tokens=12
    )
    for p, _, got in runs:
        free = run_greedy(session, p, max_new_tokens=12, eos_token_id=eos)
        assert free == reference.generate(p, max_new_tokens=12)
        constrained_differs += free != got
    assert constrained_differs > 0  # the constraint is what made them bank sequences


def test_trie_tables_list_children_and_states() -> None:
    from serving.constrain import Trie

    tokens, nxt = Trie([[5, 6, 1], [5, 7, 1]]).tables()
    assert tokens[0].tolist()[:1] == [5] and (tokens[0][1:] == -1).all()
    child = nxt[0][0]
    assert sorted(tokens[child].tolist()) == [6, 7]
    leaf = nxt[nxt[child][0]][0]  # after 5, 6, 1: the end of a sequence, nothing listed
    assert (tokens[leaf] == -1).all()
