"""Draft-and-verify decoding in the one-file graph: the greedy ids of the one-token loop, in
fewer steps, with and without the skeleton-bank trie; the tables it drafts from."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from export.draft_loop import (
    DRAFT_MAX_LENGTH,
    DRAFT_SLOTS,
    DRAFT_TOKENS,
    bank_tables,
    causal_bias_table,
    context_weights,
    draft_context,
    draft_table,
)
from export.generation_graph import (
    GenerationSettings,
    build_loop_model,
    check_generation_parity,
    one_file_session,
    save_generation_model,
)
from serving.constrain import TRIE_DRAFT, Trie, draft_width, trie_feeds
from serving.one_file import OneFileDecoder
from tests.fixtures.generator import constrained_runs


def _slot(ctx: tuple[int, ...], vocab: int) -> int:
    return int(np.dot(ctx, context_weights(vocab, len(ctx))) % DRAFT_SLOTS)


def test_a_draft_follows_the_most_frequent_continuation() -> None:
    seqs = [[5, 6, 7, 8, 1], [5, 6, 7, 8, 1], [5, 6, 9, 1]]
    table = draft_table(seqs, vocab=20, start=0, context=2, tokens=3)
    assert table[_slot((0, 0), 20)].tolist() == [5, 6, 7]  # 7 (twice) beats 9 (once)
    assert table[_slot((6, 7), 20)].tolist() == [8, 1, 0]  # past the end: the start token
    assert table[_slot((0, 5), 20)].tolist() == [6, 7, 8]


def test_unseen_contexts_draft_the_start_token() -> None:
    table = draft_table([[3, 4, 1]], vocab=10, start=0, context=2, tokens=2)
    seen = {_slot(c, 10) for c in [(0, 0), (0, 3), (3, 4)]}
    unseen = [s for s in range(DRAFT_SLOTS) if s not in seen][:50]
    assert (table[unseen] == 0).all()


def test_the_context_shrinks_where_its_key_would_overflow_int64() -> None:
    assert draft_context(2000) == 5  # 2000 ** 5 keys fit
    assert draft_context(32128) == 4  # t5-small's vocabulary: 32128 ** 5 would not
    assert draft_context(10**7) == 2
    for vocab in (2000, 32128, 10**7):
        ctx = draft_context(vocab)
        assert int(np.dot([vocab - 1] * ctx, context_weights(vocab, ctx))) == vocab**ctx - 1


def test_bank_edges_lead_where_the_trie_does() -> None:
    seqs = [[5, 6, 1], [5, 7, 1], [5, 7, 2, 1]]
    drafts, states, keys, dest = bank_tables(seqs, vocab=10, tokens=3)
    trie = Trie(seqs)
    assert (drafts == trie.draft_tables(3)[0]).all() and (states == trie.draft_tables(3)[1]).all()
    toks, nxt = trie.tables()
    edges = {
        (s, int(t)): int(n)
        for s in range(len(toks))
        for t, n in zip(toks[s], nxt[s], strict=True)
        if n >= 0
    }
    for (s, t), n in edges.items():  # few edges, many slots: every edge has its own
        key = s * 10 + t
        assert keys[key % len(keys)] == key and dest[key % len(keys)] == n
    assert (keys >= 0).sum() == len(edges) and len(keys) >= 4 * len(edges)
    assert (dest[keys < 0] == -1).all()
    # one slot for all: the most travelled edge keeps it (5 from the root: three sequences)
    _, _, keys1, dest1 = bank_tables(seqs, vocab=10, tokens=3, slots=1)
    assert keys1.tolist() == [0 * 10 + 5] and dest1.tolist() == [edges[(0, 5)]]


def test_the_causal_bias_masks_later_keys_and_slides_the_row() -> None:
    row = np.arange(8, dtype=np.float32).reshape(1, 1, 1, 8)  # key j of query 7: bias j
    full = causal_bias_table(row, 8)
    assert full[0, 0, 7].tolist() == list(range(8))
    assert full[0, 0, 2, :3].tolist() == [5.0, 6.0, 7.0]  # same relative distances
    assert (full[0, 0, 2, 3:] == np.finfo(np.float32).min).all()


def test_trie_drafts_follow_the_busiest_branch() -> None:
    trie = Trie([[5, 6, 1], [5, 7, 1], [5, 7, 2, 1]])
    tokens, nxt = trie.tables()
    drafts, states = trie.draft_tables(3)
    assert drafts.shape == states.shape == (len(tokens) + 1, 3)
    assert drafts[0].tolist() == [-1, -1, -1] and states[0].tolist() == [-1, -1, -1]
    assert drafts[1].tolist() == [5, 7, 1]  # from the root: 7 leads to two sequences
    # each drafted state is the one the trie's own tables give
    s = 0
    for tok, state in zip(drafts[1], states[1], strict=True):
        j = tokens[s].tolist().index(tok)
        assert nxt[s][j] == state
        s = state
    end = int(states[1][-1])  # a skeleton's end: nothing more to draft
    assert drafts[end + 1].tolist() == [-1, -1, -1]


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.fixtures.generator import export_tiny_t5

    return export_tiny_t5(tmp_path_factory.mktemp("tiny-t5-draft"))


def _prompts(n: int, seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [[*rng.integers(3, 64, size=int(rng.integers(2, 24))).tolist(), 1] for _ in range(n)]


def _settings(src: Path) -> GenerationSettings:
    return GenerationSettings.from_config(json.loads((src / "generation_config.json").read_text()))


@pytest.fixture(scope="module")
def reference(export_dir: Path):  # type: ignore[no-untyped-def]
    from serving.decode_loop import OnnxSeq2SeqGenerator

    return OnnxSeq2SeqGenerator(export_dir)


@pytest.fixture(scope="module")
def outputs(reference) -> list[list[int]]:  # type: ignore[no-untyped-def]
    """What the random model writes for some prompts: sequences worth drafting from."""
    return [
        [*reference.generate(p, max_new_tokens=40), reference.eos_token_id]
        for p in _prompts(40, seed=3)
    ]


@pytest.fixture(scope="module")
def drafted(export_dir: Path, outputs: list[list[int]], tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    model = build_loop_model(export_dir, _settings(export_dir), fused_attention=True, draft=outputs)
    assert {p.key: p.value for p in model.metadata_props}["step"] == "lean+mha+draft"
    path = tmp_path_factory.mktemp("drafted") / "one_file.onnx"
    save_generation_model(model, path)
    shutil.copy(export_dir / "config.json", path.parent / "config.json")
    return path


def _steps(path: Path, ids: list[int], max_new_tokens: int, feeds: dict | None = None) -> int:  # type: ignore[type-arg]
    """How many decoder steps a run took: its self-attention kernels (one a layer a step, in
    either loop), by ORT's profile, over the layers."""
    import onnxruntime as ort

    from serving.one_file import max_length_feed

    opts = ort.SessionOptions()
    opts.enable_profiling = True
    opts.profile_file_prefix = str(path.parent / "profile")
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    arr = np.asarray([ids], np.int64)
    session.run(
        None,
        {
            "input_ids": arr,
            "attention_mask": np.ones_like(arr),
            "max_length": max_length_feed(session, max_new_tokens),
            **(feeds or {}),
        },
    )
    events = json.loads(Path(session.end_profiling()).read_text())
    kinds = Counter(
        e["args"].get("op_name")
        for e in events
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")
    )
    config = json.loads((path.parent / "config.json").read_text())
    layers = int(config.get("num_decoder_layers") or config["num_layers"])
    return kinds["GroupQueryAttention"] // layers


@pytest.mark.slow
@pytest.mark.parametrize("max_new_tokens", [1, 8, 30])
def test_drafted_ids_equal_the_python_loop(drafted: Path, reference, max_new_tokens: int) -> None:  # type: ignore[no-untyped-def]
    session = one_file_session(drafted)
    prompts = [*_prompts(40, seed=3), *_prompts(20, seed=max_new_tokens)]
    report = check_generation_parity(session, reference, prompts, max_new_tokens=max_new_tokens)
    assert report.n_equal == report.n_prompts == 60


@pytest.mark.slow
def test_good_drafts_take_fewer_steps_than_tokens(drafted: Path, reference) -> None:  # type: ignore[no-untyped-def]
    ids = _prompts(40, seed=3)[0]
    want = reference.generate(ids, max_new_tokens=30)
    assert len(want) >= 10
    assert _steps(drafted, ids, 30) <= (len(want) + 1) / 2  # the drafts were its own words


def _oracle_steps(
    seq: list[int],
    bank: list[list[int]],
    *,
    vocab: int,
    start: int,
    limit: int,
    trie: list[list[int]] | None = None,
) -> int:
    """Steps the free draft loop takes to write ``seq`` (eos included where it stopped), up to
    ``limit`` tokens: the bank trie's drafts while the row is in it, the n-gram table's
    after, by the export's own tables (the trie's of ``trie``, where given)."""
    ctx = draft_context(vocab)
    table = draft_table(bank, vocab=vocab, start=start, context=ctx)
    drafts, states, keys, dest = bank_tables(bank if trie is None else trie, vocab=vocab)
    weights = context_weights(vocab, ctx)
    row, n, steps, state = [start] * ctx, 0, 0, 0
    while n < len(seq) and n < limit:
        if state >= 0:
            guess, ahead = drafts[state + 1], [state, *states[state + 1]]
        else:
            guess = table[int(np.dot(row[-ctx:], weights)) % DRAFT_SLOTS]
            ahead = [-1] * (DRAFT_TOKENS + 1)
        acc = 0
        while acc < DRAFT_TOKENS and n + acc < len(seq) and guess[acc] == seq[n + acc]:
            acc += 1
        kept = seq[n : n + acc + 1]
        edge = int(ahead[acc]) * vocab + kept[-1]
        state = int(dest[edge % len(keys)]) if keys[edge % len(keys)] == edge else -1
        row, n, steps = row + kept, n + len(kept), steps + 1
    return steps


@pytest.fixture(scope="module")
def decoyed(export_dir: Path, outputs: list[list[int]], tmp_path_factory):  # type: ignore[no-untyped-def]
    """The model's outputs plus decoys: sequences of another start that share each of the
    outputs' 5-grams but continue it otherwise, three times each, so the n-gram table drafts the
    decoys' continuation and only the bank's trie (which knows the whole row) drafts the
    output's. (The outputs' own 5-grams are unique: the n-grams alone would draft them well.)"""
    eos = 1
    decoys = [
        [2, 2, *seq[k : k + 5], (seq[k + 5] + 1) % 60 + 3, eos]
        for seq in outputs
        for k in range(len(seq) - 6)
    ]
    bank = [*outputs, *decoys, *decoys, *decoys]
    model = build_loop_model(export_dir, _settings(export_dir), fused_attention=True, draft=bank)
    path = tmp_path_factory.mktemp("decoyed") / "one_file.onnx"
    save_generation_model(model, path)
    shutil.copy(export_dir / "config.json", path.parent / "config.json")
    return path, bank


@pytest.mark.slow
def test_free_drafts_follow_the_bank_trie_then_the_ngrams(decoyed, reference) -> None:  # type: ignore[no-untyped-def]
    """Step counts equal the oracle's: the loop tracks its state in the bank's trie exactly.
    A lost state costs only steps, never ids, so the ids alone cannot tell."""
    path, bank = decoyed
    vocab = int(json.loads((path.parent / "config.json").read_text())["vocab_size"])
    start, eos = reference.decoder_start_token_id, reference.eos_token_id
    no_trie = [[-1]]  # a bank whose trie drafts nothing: n-grams only
    fewer = 0
    for p in [*_prompts(40, seed=3)[:6], *_prompts(4, seed=21)]:  # in the bank, then not
        want = reference.generate(p, max_new_tokens=40)
        want += [eos] if len(want) < 40 else []
        oracle = _oracle_steps(want, bank, vocab=vocab, start=start, limit=40)
        assert _steps(path, p, 40) == oracle
        ngrams = _oracle_steps(want, bank, vocab=vocab, start=start, limit=40, trie=no_trie)
        fewer += oracle < ngrams
    assert fewer >= 4  # in the bank the decoys mislead the n-grams, not the trie


@pytest.mark.slow
def test_batches_and_long_requests_take_the_one_token_loop(drafted: Path, reference) -> None:  # type: ignore[no-untyped-def]
    from serving.one_file import max_length_feed, run_greedy, strip_sequence

    session = one_file_session(drafted)
    ids = _prompts(40, seed=3)[1]
    want = reference.generate(ids, max_new_tokens=DRAFT_MAX_LENGTH + 20)
    got = run_greedy(session, ids, max_new_tokens=DRAFT_MAX_LENGTH + 20, eos_token_id=1)
    assert got == want
    assert _steps(drafted, ids, DRAFT_MAX_LENGTH + 20) >= len(want)  # one token a step
    batch = _prompts(3, seed=5)
    width = max(len(p) for p in batch)
    arr = np.zeros((len(batch), width), np.int64)
    mask = np.zeros_like(arr)
    for row, p in enumerate(batch):
        arr[row, : len(p)], mask[row, : len(p)] = p, 1
    feeds = {"input_ids": arr, "attention_mask": mask, "max_length": max_length_feed(session, 12)}
    (seq,) = session.run(None, feeds)
    for row, p in enumerate(batch):
        assert strip_sequence(seq[row], eos_token_id=1) == reference.generate(p, max_new_tokens=12)


@pytest.fixture(scope="module")
def banked(export_dir: Path, outputs: list[list[int]], tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    """The tiny export as a typed-role model (a skeleton bank beside it: the graph takes the
    request's trie), built with the draft loop."""
    from tests.fixtures.generator import with_empty_bank

    out = with_empty_bank(export_dir, tmp_path_factory.mktemp("banked-draft"))
    model = build_loop_model(out, _settings(out), fused_attention=True, draft=outputs)
    save_generation_model(model, out / "drafted.onnx")
    return out / "drafted.onnx"


@pytest.mark.slow
def test_within_the_trie_the_ids_are_the_python_loops(banked: Path, reference) -> None:  # type: ignore[no-untyped-def]
    session = one_file_session(banked)
    assert draft_width(session) > 0
    one_file = OneFileDecoder(session, None, eos_token_id=reference.eos_token_id)
    fewer = 0
    runs = constrained_runs(
        reference, one_file, _prompts(16, seed=11), seed=7, low=4, high=20, max_new_tokens=24
    )
    for p, trie, want in runs:
        feeds = trie_feeds(session, trie)
        assert TRIE_DRAFT in feeds
        # without its draft tables the request decodes one token a step
        plain = {k: v for k, v in feeds.items() if "draft" not in k}
        assert _steps(banked, p, 24, plain) >= len(want)
        fewer += _steps(banked, p, 24, feeds) < len(want)
    assert fewer >= 12  # a skeleton's forced tokens are drafted and kept
