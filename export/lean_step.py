"""The lean decoder step of the one-file generator: optimum's decoder-with-past arithmetic with
constant shapes (exact), or on ORT's fused contrib ops (fused, ``export.fused_step``; fp32 or
the dynamic int8 variant's weights), and the main graph of the loop model built around it.
What the step reads from optimum's graph is ``export.step_parts``."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from export.fused_step import (
    ATTENTION_PAST,
    ATTENTION_TOTAL,
    FIRST_QKV,
    _attention_length_nodes,
    _fused_layers,
    first_qkv_table,
    narrowed_weights,
    uses_first_qkv_table,
)
from export.generation_common import (
    _PAST,
    MS_DOMAIN,
    SEQUENCES_OUTPUT,
    GenerationSettings,
    _encoder_graph,
    _layers,
)
from export.greedy_nodes import (
    VOCAB_COLUMN_OF,
    VOCAB_COLUMNS,
    _greedy_tail,
    _loop_body_io,
    _loop_nodes,
    _slot_penalty_nodes,
    _start_token_nodes,
    _trie_state0_nodes,
    column_of,
    written_columns,
)
from export.step_parts import (
    QuantWeight,
    _Builder,
    _lean_weights,
    _matmul_weight,
    position_bias_table,
)
from serving.constrain import TRIE_DRAFT, TRIE_TOKENS

if TYPE_CHECKING:
    import onnx

LEAN_MAX_POSITIONS = 1024  # longest decoder row the lean step's position-bias table covers


def lean_step_body(
    with_past: onnx.ModelProto,
    n_layers: int,
    *,
    opset: int,
    length: int = LEAN_MAX_POSITIONS,
    fused_attention: bool = False,
    columns: np.ndarray | None = None,
) -> tuple[list[Any], list[Any]]:
    """(nodes, initializers) of one greedy step with constant shapes, for the loop body
    (``columns``, fused only: the lm head's, ``export.fused_step.narrowed_weights``).

    The same arithmetic as optimum's decoder-with-past, node for node (RMS norm written as
    T5's Pow/ReduceMean/Add/Sqrt/Div/Mul, scores = q . k^T + bias, Softmax, probs . v), minus
    what a single-token step does not need: the shape chains (shapes are constants here), the
    causal mask (all zero for one query) and the relative-position bucket arithmetic (a slice of
    :func:`position_bias_table`). Reads ``b_tok``, ``b_self_*`` and the outer ``cross_*`` /
    ``cross_mask_bias``; writes ``b_logits`` and ``b_self_*_out``.
    """

    w = _lean_weights(with_past, n_layers, quantized=fused_attention)
    if fused_attention:
        w = narrowed_weights(w, columns)
    elif columns is not None:
        raise ValueError("lean step: a narrowed lm head needs the fused step")
    heads, hs, inner = w["heads"], w["head_size"], w["inner"]
    b = _Builder("l/")
    nodes, inits, name, c, op, keep = b.nodes, b.inits, b.name, b.const, b.op, b.keep

    two, minus1, one_f = c(2.0, np.float32), c([-1], np.int64), c(1.0, np.float32)
    eps = c(np.float32(w["eps"]), np.float32)

    def rms(x: str, weight: Any) -> str:
        sq = op("Pow", [x, two])
        if opset >= 18:  # axes became an input of ReduceMean in opset 18
            var = op("ReduceMean", [sq, minus1], keepdims=1)
        else:
            var = op("ReduceMean", [sq], keepdims=1, axes=[-1])
        inv = op("Div", [one_f, op("Sqrt", [op("Add", [var, eps])])])
        return op("Mul", [keep(weight), op("Mul", [x, inv])])

    # One query token: [B, 1, N*hs] and [B, N, 1, hs] are the same bytes, so optimum's
    # Reshape + Transpose pairs are one Reshape each (no arithmetic changes).
    split_shape = c([0, heads, 1, hs], np.int64)
    merge_shape = c([0, 1, inner], np.int64)

    def heads_of(x: str) -> str:  # [B, 1, inner] -> [B, N, 1, hs]
        return op("Reshape", [x, split_shape])

    mha = functools.partial(b.mha, heads=heads)

    def attend(q: str, k: str, v: str, bias: str) -> str:
        scores = op("MatMul", [q, op("Transpose", [k], perm=[0, 1, 3, 2])])
        probs = op("Softmax", [op("Add", [scores, bias])], axis=-1)
        return op("Reshape", [op("MatMul", [probs, v]), merge_shape])

    table = position_bias_table(with_past, length=length)
    h = op("Gather", [keep(w["embed"]), "b_tok"])
    if fused_attention:
        # GroupQueryAttention's lengths: one row each of the tables built before the loop
        # (:func:`_attention_length_nodes`), one Gather each instead of Cast, Add and Expand
        total = op("Gather", [ATTENTION_TOTAL, "b_iter"])
        lengths = (total, op("Gather", [ATTENTION_PAST, "b_iter"]))
        # the same bias slice read backwards from the total length (no Sub a step): with
        # rev[..., j] = table[..., length - j], rev[..., total:0:-1] = table[..., -total:]
        rev = np.concatenate([np.zeros_like(table[..., :1]), table[..., ::-1]], axis=3)
        bias = [c(rev, np.float32), total, c([0], np.int32), c([3], np.int32), c([-1], np.int32)]
        self_bias = op("Slice", bias)
        # layer 0's q/k/v depend on the token alone: one row of the outer table
        first_qkv = op("Gather", [FIRST_QKV, "b_tok"]) if uses_first_qkv_table(w) else None
        _fused_layers(
            h,
            first_qkv,
            self_bias,
            lengths,
            w,
            n_layers,
            op=op,
            keep=keep,
            name=name,
            nodes=nodes,
            mha=mha,
        )
        return nodes, inits
    # every step, the first included, runs in the Loop: the past length is the iteration count
    start = op("Sub", [c([length - 1], np.int64), "b_iter"])
    self_bias = op("Slice", [c(table, np.float32), start, c([length], np.int64), c([3], np.int64)])
    for i in range(n_layers):
        x = rms(h, w[f"{i}.ln0"])
        q = heads_of(op("MatMul", [x, keep(w[f"{i}.self.q"])]))
        k_new = heads_of(op("MatMul", [x, keep(w[f"{i}.self.k"])]))
        v_new = heads_of(op("MatMul", [x, keep(w[f"{i}.self.v"])]))
        k = op("Concat", [f"b_self_key_{i}", k_new], f"b_self_key_{i}_out", axis=2)
        v = op("Concat", [f"b_self_value_{i}", v_new], f"b_self_value_{i}_out", axis=2)
        att = attend(q, k, v, self_bias)
        h = op("Add", [h, op("MatMul", [att, keep(w[f"{i}.self.o"])])])
        x = rms(h, w[f"{i}.ln1"])
        q = heads_of(op("MatMul", [x, keep(w[f"{i}.cross.q"])]))
        att = attend(q, f"cross_key_{i}", f"cross_value_{i}", "cross_mask_bias")
        h = op("Add", [h, op("MatMul", [att, keep(w[f"{i}.cross.o"])])])
        x = rms(h, w[f"{i}.ln2"])
        ff = op("MatMul", [op("Relu", [op("MatMul", [x, keep(w[f"{i}.wi"])])]), keep(w[f"{i}.wo"])])
        h = op("Add", [h, ff])
    x = rms(h, w["final_ln"])
    if w["scale"] is not None:
        x = op("Mul", [x, c(np.float32(w["scale"]), np.float32)])
    op("MatMul", [x, keep(w["lm_head"])], "b_logits")
    return nodes, inits


def _build_lean_loop(
    encoder: onnx.ModelProto,
    decoder: onnx.ModelProto,
    with_past: onnx.ModelProto,
    settings: GenerationSettings,
    *,
    opset: int,
    fused_attention: bool,
    guard: Sequence[tuple[int, int]] = (),
    vocab: int = 0,
    trie: bool = False,
    draft: Sequence[Sequence[int]] | None = None,
    unwritten: Sequence[int] | np.ndarray = (),
) -> tuple[list[Any], list[Any], list[Any]]:
    """(nodes, initializers, value infos) of the lean one-file graph's main graph (with the
    keyword-slot penalty of ``guard`` and of the ``unwritten`` tokens added to every step's
    logits; the fused step computes the lm head on the written tokens' columns only,
    ``export.greedy_nodes.written_columns``).

    Every decoder step, the first included, is the lean step (past length 0 at the first): no
    optimum ``decoder_model`` in the file. With ``draft`` (token sequences to draft from; fused
    fp32 weights), a single prompt decoded without a trie takes the draft loop.
    The encoder runs once; the cross-attention keys and
    values are its output times optimum's own k / v weights (read from ``decoder_model``), as
    that graph computes them.
    """
    from onnx import TensorProto, helper, numpy_helper

    pasts = [i.name for i in with_past.graph.input if i.name.startswith("past_key_values.")]
    n_layers = _layers(pasts, _PAST)
    unwritten = np.asarray(unwritten, np.int64)
    columns = written_columns(unwritten, vocab) if fused_attention and unwritten.size else None
    narrowed = columns is not None
    step_nodes, step_inits = lean_step_body(
        with_past, n_layers, opset=opset, fused_attention=fused_attention, columns=columns
    )
    w = _lean_weights(with_past, n_layers, quantized=fused_attention)
    if fused_attention:
        w = narrowed_weights(w, columns)
    heads, hs = w["heads"], w["head_size"]
    inits: list[Any] = []

    def const(name: str, value: Any, dtype: Any) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    enc = _encoder_graph(encoder, input_ids="input_ids", attention_mask="attention_mask")
    nodes: list[Any] = [*enc.node]
    penalty = "slot_penalty" if guard or unwritten.size else None
    if penalty:
        nodes += _slot_penalty_nodes(
            const, guard, vocab=vocab, opset=opset, unwritten=unwritten, columns=columns
        )
    if columns is not None:
        const(VOCAB_COLUMNS, columns, np.int64)
        const(VOCAB_COLUMN_OF, column_of(columns, vocab), np.int64)
    kv_shape = const("kv_split", [0, -1, heads, hs], np.int64)
    for i in range(n_layers):
        for kv in ("k", "v"):
            weight = _matmul_weight(
                decoder.graph,
                f"/decoder/block.{i}/layer.1/EncDecAttention/{kv}/MatMul",
                quantized=fused_attention,
            )
            full = "key" if kv == "k" else "value"
            w_name = f"cross_w_{kv}_{i}"
            if isinstance(weight, QuantWeight):
                project = helper.make_node(
                    "DynamicQuantizeMatMul",
                    [
                        "encoder_hidden_states",
                        const(w_name, weight.q, weight.q.dtype),
                        const(f"{w_name}_scale", weight.scale, np.float32),
                        const(f"{w_name}_zp", weight.zero_point, weight.zero_point.dtype),
                    ],
                    [f"cross_{kv}_{i}_flat"],
                    domain=MS_DOMAIN,
                )
            else:
                project = helper.make_node(
                    "MatMul",
                    ["encoder_hidden_states", const(w_name, weight, np.float32)],
                    [f"cross_{kv}_{i}_flat"],
                )
            nodes += [
                project,
                helper.make_node(
                    "Reshape", [f"cross_{kv}_{i}_flat", kv_shape], [f"cross_{kv}_{i}_bshd"]
                ),
                helper.make_node(
                    "Transpose", [f"cross_{kv}_{i}_bshd"], [f"cross_{full}_{i}"], perm=[0, 2, 1, 3]
                ),
            ]
    eos = settings.eos_token_id
    self_names = [f"self_{kv}_{i}" for i in range(n_layers) for kv in ("key", "value")]
    nodes += [
        *_start_token_nodes(const, settings.decoder_start_token_id),
        *(_trie_state0_nodes() if trie else []),
        helper.make_node("Equal", ["decoder_start", const("eos_id", eos, np.int64)], ["fin0"]),
        helper.make_node(
            "Concat",
            ["ids_shape", const("empty_past_dims", [heads, 0, hs], np.int64)],
            ["empty_past_shape"],
            axis=0,
        ),
        helper.make_node(
            "ConstantOfShape",
            ["empty_past_shape"],
            ["empty_past"],
            value=numpy_helper.from_array(np.zeros(1, np.float32)),
        ),
        *[helper.make_node("Identity", ["empty_past"], [n]) for n in self_names],
        # (1 - mask) * float32 min, [B, 1, 1, S]: the cross-attention bias optimum adds
        helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Sub", [const("one_f", 1.0, np.float32), "mask_f"], ["inv_mask"]),
        helper.make_node(
            "Mul",
            ["inv_mask", const("f32_min", np.finfo(np.float32).min, np.float32)],
            ["mask_bias_2d"],
        ),
        helper.make_node(
            "Unsqueeze", ["mask_bias_2d", const("axes12", [1, 2], np.int64)], ["cross_mask_bias"]
        ),
        helper.make_node("Max", ["max_length", const("zero_i64", [0], np.int64)], ["trips1"]),
        helper.make_node(
            "Min", ["trips1", const("lean_cap", [LEAN_MAX_POSITIONS - 1], np.int64)], ["trips2"]
        ),
        helper.make_node("Squeeze", ["trips2", const("axis0", [0], np.int64)], ["trips"]),
        helper.make_node("Constant", [], ["cond0"], value=numpy_helper.from_array(np.array(True))),
        *(_attention_length_nodes(const) if fused_attention else []),
    ]
    if fused_attention and uses_first_qkv_table(w):  # outer scope: stored once for both loops
        const(FIRST_QKV, first_qkv_table(w, opset=opset), np.float32)
    past_info = [
        helper.make_tensor_value_info(f"b_{n}", TensorProto.FLOAT, ["batch", heads, "past", hs])
        for n in self_names
    ]
    past_out_info = [
        helper.make_tensor_value_info(
            f"b_{n}_out", TensorProto.FLOAT, ["batch", heads, "past_1", hs]
        )
        for n in self_names
    ]
    body_inputs, body_outputs = _loop_body_io(past_info, past_out_info, trie=trie)

    def loop(with_trie: bool, prefix: str) -> list[Any]:
        ins, outs = body_inputs, body_outputs
        if not with_trie:
            ins, outs = _loop_body_io(past_info, past_out_info)
        body = helper.make_graph(
            [
                *step_nodes,
                *_greedy_tail(
                    "b_eos",
                    penalty,
                    opset=opset,
                    trie_const=const if with_trie else None,
                    narrowed=narrowed,
                ),
            ],
            "greedy step (lean)",
            ins,
            outs,
            initializer=[*step_inits, numpy_helper.from_array(np.array(eos, np.int64), "b_eos")],
        )
        return _loop_nodes(
            const,
            body,
            first=["decoder_start", "fin0"],
            self_names=self_names,
            head=["decoder_start"],
            state="trie_state0" if with_trie else None,
            prefix=prefix,
        )

    seq = [helper.make_tensor_value_info("", TensorProto.INT64, ["batch", "length"])]

    def branch(prefix: str, with_trie: bool) -> Any:
        seq[0].name = prefix + SEQUENCES_OUTPUT
        return helper.make_graph(loop(with_trie, prefix), f"{prefix}greedy", [], list(seq))

    drafting = draft is not None and not any(isinstance(v, QuantWeight) for v in w.values())
    if not trie and not drafting:
        nodes += loop(False, "")
        return nodes, [*enc.initializer, *inits], list(enc.value_info)
    # The trie's ~25 nodes a step are paid only by a request that sends a trie: a call with the
    # default tables (no constraint) runs a loop without them. The body's weights are stored
    # once per loop (a subgraph's initializers are its own; outer-scope weights would not be
    # pre-packed for MatMul).
    if not drafting:
        constrained, plain = branch("t/", True), branch("f/", False)
    else:
        assert draft is not None
        choose = _draft_choices(
            with_past,
            w,
            n_layers,
            self_names,
            draft,
            const,
            settings,
            opset=opset,
            penalty=penalty,
            vocab=vocab,
            narrowed=narrowed,
        )
        free = choose(branch("f/", False), trie=False)
        if not trie:
            return [*nodes, *free], [*enc.initializer, *inits], list(enc.value_info)

        def graph(prefix: str, branch_nodes: list[Any], doc: str) -> Any:
            seq[0].name = prefix + SEQUENCES_OUTPUT
            return helper.make_graph(_renamed_output(branch_nodes, prefix), doc, [], list(seq))

        constrained = graph("c/", choose(branch("t/", True), trie=True), "greedy within the trie")
        plain = graph("u/", free, "greedy without a trie")
    nodes += [
        helper.make_node("GreaterOrEqual", [TRIE_TOKENS, "zero_i64"], ["trie_valid"]),
        helper.make_node("Cast", ["trie_valid"], ["trie_valid_i"], to=TensorProto.INT64),
        helper.make_node("ReduceMax", ["trie_valid_i"], ["trie_any_i"], keepdims=0),
        helper.make_node("Cast", ["trie_any_i"], ["trie_given"], to=TensorProto.BOOL),
        helper.make_node(
            "If",
            ["trie_given"],
            [SEQUENCES_OUTPUT],
            then_branch=constrained,
            else_branch=plain,
        ),
    ]
    return nodes, [*enc.initializer, *inits], list(enc.value_info)


def _renamed_output(nodes: list[Any], prefix: str) -> list[Any]:
    """``nodes`` with their ``SEQUENCES_OUTPUT`` renamed ``{prefix}sequences`` (an ``If``
    branch's output needs a name of its own)."""
    for node in nodes:
        node.output[:] = [prefix + o if o == SEQUENCES_OUTPUT else o for o in node.output]
    return nodes


def _draft_choices(
    with_past: onnx.ModelProto,
    w: dict[str, Any],
    n_layers: int,
    self_names: Sequence[str],
    draft: Sequence[Sequence[int]],
    const: Any,
    settings: GenerationSettings,
    *,
    opset: int,
    penalty: str | None,
    vocab: int,
    narrowed: bool = False,
) -> Any:
    """Stores the draft loop's outer tables (``export.draft_loop``: the n-gram drafts and the
    trie of the ``draft`` sequences, the causal bias) and returns ``choose(plain, trie=...)``:
    the nodes writing ``SEQUENCES_OUTPUT`` by the draft loop for one prompt and a
    ``max_length`` its bias table covers (with ``trie``: when the request sent its draft
    tables too), else by the ``plain`` loop (an ``If`` branch graph)."""
    from onnx import TensorProto, helper

    from export.draft_loop import (
        BANK_DRAFT,
        BANK_DRAFT_NEXT,
        BANK_EDGE_KEY,
        BANK_EDGE_STATE,
        DRAFT_BIAS,
        DRAFT_MAX_LENGTH,
        DRAFT_TABLE,
        DRAFT_TOKENS,
        bank_tables,
        causal_bias_table,
        draft_context,
        draft_loop_nodes,
        draft_step_body,
        draft_table,
    )

    positions = DRAFT_MAX_LENGTH + DRAFT_TOKENS + 1
    start, eos = settings.decoder_start_token_id, settings.eos_token_id
    context = draft_context(vocab)
    const(DRAFT_TABLE, draft_table(draft, vocab=vocab, start=start, context=context), np.int64)
    tables = bank_tables(draft, vocab=vocab)
    for name, table in zip(
        (BANK_DRAFT, BANK_DRAFT_NEXT, BANK_EDGE_KEY, BANK_EDGE_STATE), tables, strict=True
    ):
        const(name, table, np.int64)
    bank_slots = len(tables[2])
    row = position_bias_table(with_past, length=positions)
    const(DRAFT_BIAS, causal_bias_table(row, positions), np.float32)

    one_row = const("one_row", [1], np.int64)
    cap = const("draft_cap", [DRAFT_MAX_LENGTH], np.int64)

    def choose(plain: onnx.GraphProto, *, trie: bool) -> list[Any]:
        p = "sc/" if trie else "s/"
        step = draft_step_body(
            w,
            n_layers,
            vocab=vocab,
            eos=eos,
            penalty=penalty,
            opset=opset,
            trie=trie,
            bank_slots=0 if trie else bank_slots,
            context=context,
            narrowed=narrowed,
        )
        drafted = draft_loop_nodes(
            step,
            self_names,
            heads=int(w["heads"]),
            head_size=int(w["head_size"]),
            start=start,
            eos=eos,
            prefix=p,
            trie=trie,
            context=context,
        )
        seq = helper.make_tensor_value_info(p + SEQUENCES_OUTPUT, TensorProto.INT64, [1, "n"])
        take = [
            helper.make_node("Equal", ["ids_shape", one_row], [p + "single"]),
            helper.make_node("LessOrEqual", ["max_length", cap], [p + "fits"]),
            helper.make_node("And", [p + "single", p + "fits"], [p + "take"]),
        ]
        if trie:  # and the request sent a path for every state of its trie
            take += [
                helper.make_node("Shape", [TRIE_DRAFT], [p + "draft_rows"], end=1),
                helper.make_node("Shape", [TRIE_TOKENS], [p + "trie_rows"], end=1),
                helper.make_node("Add", [p + "trie_rows", one_row], [p + "want_rows"]),
                helper.make_node("Equal", [p + "draft_rows", p + "want_rows"], [p + "paths"]),
                helper.make_node("And", [p + "take", p + "paths"], [p + "take_t"]),
            ]
        return [
            *take,
            helper.make_node(
                "If",
                [p + ("take_t" if trie else "take")],
                [SEQUENCES_OUTPUT],
                then_branch=helper.make_graph(drafted, "draft loop", [], [seq]),
                else_branch=plain,
            ),
        ]

    return choose
