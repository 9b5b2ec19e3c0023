"""Draft-and-verify greedy decoding for the one-file generator (speculative decoding), for a
single prompt, decoded freely or within the request's skeleton-bank trie.

Why: at batch 1 a decoding step of this small model costs its ~36 kernels' dispatch, not their
arithmetic (``docs/benchmarks.md``), so checking five tokens in one step costs little more than
producing one. The targets are the authored skeletons, so their next tokens are easy to guess.
A step therefore

1. drafts ``DRAFT_TOKENS`` tokens. Freely: while the row so far is a prefix of some skeleton
   of the whole bank, along that bank trie's busiest branch from it (:func:`bank_tables`, built
   at export; the output is one of the bank's skeletons for most prompts, and once its prefix
   names the skeleton the drafts are its rest); after it left the bank, by its last
   ``draft_context(vocab)`` tokens (one row of :func:`draft_table`, a hashed n-gram table of
   the bank). Within a request's trie, along its busiest branch from the current state (the
   request's own tables, ``serving.constrain.Trie.draft_tables``);
2. runs the fused decoder step (``export.fused_step``) on the pending token and the drafts at
   once, with a causal relative-position bias (:func:`causal_bias_table`; within a trie each
   position masked by its own state);
3. keeps the argmax tokens up to and including the first one that differs from its draft:
   every kept token is the argmax after exactly the tokens before it, i.e. what the one-token
   loop would have produced, so the ids are greedy's (the export gate checks every prompt);
4. cuts the self-attention cache back to the kept tokens.

The kept tokens vary in number, so the tokens are a loop-carried row (no scan output) and the
row is cut at the first eos and at ``max_length`` after the loop. Only fp32 weights: the int8
variant quantizes each MatMul input per tensor, i.e. across the drafted rows, so its verified
tokens would not be the one-token loop's.
"""

from __future__ import annotations

import functools
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from export.fused_step import FIRST_QKV, _fused_layers, uses_first_qkv_table
from export.generation_common import SEQUENCES_OUTPUT, _reduce_node, dir_bank
from export.greedy_nodes import VOCAB_COLUMNS, _trie_nodes
from export.step_parts import QuantWeight, _Builder
from serving.constrain import TRIE_DRAFT, TRIE_DRAFT_NEXT

DRAFT_CONTEXT = 5  # tokens an n-gram draft is looked up by (fewer for a vocabulary too large)
DRAFT_TOKENS = 4  # tokens drafted a step (the step checks this many + the pending one)
DRAFT_SLOTS = 1 << 16  # rows of the hashed draft table (12,772 contexts in the pipeline's bank)
DRAFT_MAX_LENGTH = 128  # longest max_length the draft loop serves (its bias table's bound)
DRAFT_TABLE = "draft_table"  # int64 [DRAFT_SLOTS, DRAFT_TOKENS], outer scope
BANK_DRAFT = "bank_draft"  # int64 [states + 1, DRAFT_TOKENS]: the bank trie's busiest paths
BANK_DRAFT_NEXT = "bank_draft_next"  # int64 [states + 1, DRAFT_TOKENS]: the states on them
BANK_EDGE_KEY = "bank_edge_key"  # int64 [edge slots]: state * vocab + token, hashed
BANK_EDGE_STATE = "bank_edge_state"  # int64 [edge slots]: the state that edge leads to
DRAFT_BIAS = "draft_causal_bias"  # float32 [1, heads, P, P], outer scope
DRAFT_CROSS_BIAS = "draft_cross_bias"  # the cross-attention mask bias, one row per token


def draft_context(vocab: int, context: int = DRAFT_CONTEXT) -> int:
    """The n-gram context for ``vocab``: ``context`` tokens, or fewer where a key of that many
    (``vocab ** context`` values) would overflow the graph's int64 arithmetic. A wrapped key
    would only draft badly (the ids stay greedy's), but slowly."""
    while context > 1 and vocab**context > np.iinfo(np.int64).max:
        context -= 1
    return context


def bank_tables(
    sequences: Iterable[Sequence[int]],
    *,
    vocab: int,
    tokens: int = DRAFT_TOKENS,
    slots: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(drafts, states, edge keys, edge states): the whole bank's trie as the free draft loop
    reads it. ``drafts`` / ``states`` are ``serving.constrain.Trie.draft_tables`` (row s + 1:
    the busiest path from state s; row 0, state -1, drafts nothing). The edges are hashed:
    slot ``(s * vocab + t) % slots`` holds the key and the state token t leads to from s,
    -1 where empty; where two edges share a slot the more travelled keeps it, and the other
    is reached as if the row had left the bank (n-gram drafts: slower, never other ids).
    ``slots`` defaults to a power of two at least four times the edges (few collisions)."""
    from serving.constrain import Trie

    trie = Trie(sequences)
    drafts, states = trie.draft_tables(tokens)
    toks, nxt = trie.tables()
    src, col = np.nonzero(nxt >= 0)
    keys = src * vocab + toks[src, col]
    dest = nxt[src, col]
    if slots is None:
        slots = 1 << max(4, int(4 * len(keys) - 1).bit_length())
    through = trie.through()[dest]
    # per slot, its most travelled edge (then the smaller key): the first after this sort
    order = np.lexsort((keys, -through))
    slot = keys[order] % slots
    _, first = np.unique(slot, return_index=True)
    key_table = np.full(slots, -1, np.int64)
    state_table = np.full(slots, -1, np.int64)
    key_table[slot[first]] = keys[order][first]
    state_table[slot[first]] = dest[order][first]
    return drafts, states, key_table, state_table


def context_weights(vocab: int, context: int = DRAFT_CONTEXT) -> np.ndarray:
    """Place values of a context's tokens: ``key = sum(token * weight)`` is unique per context
    (base ``vocab``) before it is hashed into a slot."""
    return np.array([vocab ** (context - 1 - i) for i in range(context)], np.int64)


def draft_table(
    sequences: Iterable[Sequence[int]],
    *,
    vocab: int,
    start: int,
    context: int = DRAFT_CONTEXT,
    tokens: int = DRAFT_TOKENS,
    slots: int = DRAFT_SLOTS,
) -> np.ndarray:
    """[slots, tokens] int64: row ``key % slots`` holds the draft after a context.

    Each context's draft is its most frequent next token in ``sequences`` (ties: the first
    seen), then that of the context it makes, ``tokens`` times; a sequence starts after
    ``context`` start tokens, as the decoder does. Where two contexts share a slot the more
    frequent one keeps it. A wrong draft costs only the tokens it fails to save, never a
    different output, so unseen contexts and unfilled slots draft ``start`` (rejected).
    """
    follow: dict[tuple[int, ...], Counter[int]] = defaultdict(Counter)
    for seq in sequences:
        row = [start] * context + [int(t) for t in seq]
        for i in range(context, len(row)):
            follow[tuple(row[i - context : i])][row[i]] += 1
    best = {ctx: c.most_common(1)[0][0] for ctx, c in follow.items()}
    weights = [int(x) for x in context_weights(vocab, context)]
    table = np.full((slots, tokens), start, np.int64)
    owner: dict[int, tuple[int, tuple[int, ...]]] = {}  # slot -> its context's rank
    for ctx, counts in follow.items():
        slot = sum(t * x for t, x in zip(ctx, weights, strict=True)) % slots
        rank = (sum(counts.values()), tuple(-t for t in ctx))  # more frequent, then smaller ids
        if slot in owner and owner[slot] >= rank:
            continue  # a higher-ranked context keeps the slot
        owner[slot] = rank
        chain, cur = [], list(ctx)
        for _ in range(tokens):
            nxt = best.get(tuple(cur[-context:]))
            if nxt is None:
                break
            chain.append(nxt)
            cur.append(nxt)
        table[slot] = chain + [start] * (tokens - len(chain))
    return table


def causal_bias_table(row: np.ndarray, positions: int) -> np.ndarray:
    """[1, heads, positions, positions]: query p's relative-position bias over keys 0..p, and
    float32 min beyond p (causal), from ``row`` = ``step_parts.position_bias_table(length=
    positions)`` (query ``positions - 1`` over every key)."""
    heads = row.shape[1]
    out = np.full((1, heads, positions, positions), np.finfo(np.float32).min, np.float32)
    for p in range(positions):
        out[0, :, p, : p + 1] = row[0, :, 0, positions - 1 - p :]
    return out


def draft_step_body(
    w: Mapping[str, Any],
    n_layers: int,
    *,
    vocab: int,
    eos: int,
    penalty: str | None,
    opset: int,
    trie: bool = False,
    bank_slots: int = 0,
    tokens: int = DRAFT_TOKENS,
    context: int = DRAFT_CONTEXT,
    slots: int = DRAFT_SLOTS,
    narrowed: bool = False,
) -> tuple[list[Any], list[Any]]:
    """(nodes, initializers) of one draft-and-verify step (module docstring), for the body of
    :func:`draft_loop_nodes`. Reads ``d_out`` (the row so far, ``context`` start tokens first),
    ``d_len`` (int32 [1], the cache length), ``b_self_*``, ``d_max`` and the outer tables;
    writes ``d_out_next``, ``d_len_next``, ``d_self_*_next`` and ``d_cond_out``.

    With ``trie`` the step decodes within the request's skeleton-bank trie: ``d_state`` (int64
    [1]) is the trie state after the pending token, the drafts are the request's own path from
    it (``serving.constrain.TRIE_DRAFT``: its most travelled branch, with the states it
    passes), each position is masked by its state as the one-token loop masks a step
    (``export.greedy_nodes._trie_nodes``, positions as rows), and ``d_state_next`` is the state
    after the last kept token.

    With ``bank_slots`` (free decoding only: the edge slots of :func:`bank_tables`),
    ``d_state`` is the state of the whole bank's trie after the row so far, -1 once it left
    the bank: the drafts are that trie's busiest path from it, else the n-gram table's;
    ``d_state_next`` follows the kept tokens (the drafted states, then the last one's edge).

    ``narrowed``: ``w``'s lm head has the written tokens' columns only
    (``export.greedy_nodes.written_columns``); the argmax is read back as token ids."""
    from onnx import TensorProto

    if any(isinstance(v, QuantWeight) for v in w.values()):
        raise ValueError("draft step: fp32 weights only (module docstring)")
    if trie and bank_slots:
        raise ValueError("draft step: a request's trie or the bank's, not both")
    q = tokens + 1
    b = _Builder("d/")
    c, op = b.const, b.op
    one_axis = c([1], np.int64)
    big = c([np.iinfo(np.int64).max], np.int64)
    if trie:
        # the request's path from the state (row 0 of its tables is state -1: no drafts)
        row = op("Add", ["d_state", c([1], np.int64)])
        drafts = op("Gather", [TRIE_DRAFT, row], axis=0)  # [1, tokens]
        ahead = op("Reshape", [op("Gather", [TRIE_DRAFT_NEXT, row], axis=0), c([-1], np.int64)])
        states = op("Concat", ["d_state", ahead], axis=0)  # [q]: each position's state
    else:
        # a row of the outer table, by the hashed last ``context`` tokens
        ctx = op("Slice", ["d_out", c([-context], np.int64), big, one_axis])
        weights = c(context_weights(vocab, context), np.int64)
        key = op("ReduceSum", [op("Mul", [ctx, weights]), one_axis], keepdims=0)
        drafts = op("Gather", [DRAFT_TABLE, op("Mod", [key, c([slots], np.int64)])], axis=0)
        if bank_slots:  # in the bank: its trie's path instead
            row = op("Add", ["d_state", c([1], np.int64)])
            ahead = op("Reshape", [op("Gather", [BANK_DRAFT_NEXT, row], axis=0), c([-1], np.int64)])
            drafts = op(
                "Where",
                [
                    op("Less", ["d_state", c([0], np.int64)]),
                    drafts,
                    op("Gather", [BANK_DRAFT, row], axis=0),
                ],
            )
    pending = op("Slice", ["d_out", c([-1], np.int64), big, one_axis])
    tok = op("Concat", [pending, drafts], axis=1)  # [1, q]
    # lengths and the causal bias of the q positions after the cache's d_len
    total = op("Add", ["d_len", c([q], np.int32)])
    past = op("Add", ["d_len", c([q - 1], np.int32)])  # GroupQueryAttention's seqlens_k
    zero32 = c([0], np.int32)
    starts = op("Concat", ["d_len", zero32], axis=0)
    ends = op("Concat", [total, total], axis=0)
    bias = op("Slice", [DRAFT_BIAS, starts, ends, c([2, 3], np.int32)])
    h = op("Gather", [b.keep(np.asarray(w["embed"], np.float32)), tok])
    first_qkv = op("Gather", [FIRST_QKV, tok]) if uses_first_qkv_table(w) else None

    logits = _fused_layers(
        h,
        first_qkv,
        bias,
        (total, past),
        w,
        n_layers,
        op=op,
        keep=b.keep,
        name=b.name,
        nodes=b.nodes,
        mha=functools.partial(b.mha, heads=int(w["heads"])),
        cross_bias=DRAFT_CROSS_BIAS,
    )
    if penalty:
        logits = op("Add", [logits, penalty])

    def argmax_token(x: str, out: str | None = None) -> str:
        """The token of each row's largest logit (narrowed: its column's token id)."""
        if not narrowed:
            return op("ArgMax", [x], out, axis=-1, keepdims=0)
        return op("Gather", [VOCAB_COLUMNS, op("ArgMax", [x], axis=-1, keepdims=0)], out, axis=0)

    if trie:
        rows = op("Reshape", [logits, c([q, 1, -1], np.int64)])  # positions as rows
        pre, post, masked = _trie_nodes(
            "dt_", rows, states, "d_pred", "d_ns", _named(b), opset=opset, narrowed=narrowed
        )
        b.nodes += pre
        argmax_token(masked, "d_pred")
        b.nodes += post
        pred = op("Reshape", ["d_pred", c([1, -1], np.int64)])  # [1, q]
    else:
        pred = argmax_token(logits)  # [1, q]
    # accepted drafts = leading drafts equal to the argmax before them; kept = those + 1
    head = op("Slice", [pred, c([0], np.int64), c([tokens], np.int64), one_axis])
    same = op("Cast", [op("Equal", [drafts, head])], to=TensorProto.INT32)  # int32
    accepted = op("ArgMin", [op("Concat", [same, c([[0]], np.int32)], axis=1)], axis=1, keepdims=0)
    kept = op("Add", [accepted, c([1], np.int64)])
    emitted = op("Slice", [pred, c([0], np.int64), kept, one_axis])
    op("Concat", ["d_out", emitted], "d_out_next", axis=1)
    op("Add", ["d_len", op("Cast", [kept], to=TensorProto.INT32)], "d_len_next")
    if trie:
        op("Gather", ["d_ns", accepted], "d_state_next", axis=0)
    elif bank_slots:
        # the state after the accepted drafts (a drafted one), then the last kept token's edge
        state = op("Gather", [op("Concat", ["d_state", ahead], axis=0), accepted], axis=0)
        last = op("Gather", [op("Reshape", [pred, c([-1], np.int64)]), accepted], axis=0)
        edge = op("Add", [op("Mul", [state, c([vocab], np.int64)]), last])
        slot = op("Mod", [edge, c([bank_slots], np.int64)])
        found = op("Equal", [op("Gather", [BANK_EDGE_KEY, slot], axis=0), edge])
        to = op("Gather", [BANK_EDGE_STATE, slot], axis=0)
        op("Where", [found, to, c([-1], np.int64)], "d_state_next")
    for i in range(n_layers):
        for kv in ("key", "value"):
            name = f"self_{kv}_{i}"
            op("Slice", [f"b_{name}_out", zero32, "d_len_next", c([2], np.int32)], f"d_{name}_next")
    # go on while no kept token is eos and fewer than max_length tokens are out
    is_eos = op("Cast", [op("Equal", [emitted, c(eos, np.int64)])], to=TensorProto.INT32)
    b.nodes.append(
        _reduce_node("ReduceMax", is_eos, "d_eos_seen", axis=1, const=_named(b), opset=opset)
    )
    open_row = op("Less", ["d_eos_seen", c([1], np.int32)])
    room = op("Less", ["d_len_next", "d_max"])
    op("Squeeze", [op("And", [open_row, room]), c([0], np.int64)], "d_cond_out")
    return b.nodes, b.inits


def _named(b: _Builder) -> Callable[[str, Any, Any], str]:
    """A constant maker over the builder that keeps the given name (the trie nodes refer to
    their constants by name)."""
    from onnx import numpy_helper

    def const(name: str, value: Any, dtype: Any) -> str:
        b.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    return const


def draft_loop_nodes(
    step: tuple[list[Any], list[Any]],
    self_names: Sequence[str],
    *,
    heads: int,
    head_size: int,
    start: int,
    eos: int,
    prefix: str,
    trie: bool = False,
    context: int = DRAFT_CONTEXT,
    tokens: int = DRAFT_TOKENS,
) -> list[Any]:
    """Nodes of the draft loop around ``step`` (:func:`draft_step_body`), for a graph whose
    input is one prompt: ``{prefix}sequences`` = start token + the greedy ids, cut at the first
    eos and at ``max_length`` (the ids the one-token loop writes for that prompt). Reads the
    main graph's ``trips``, ``cond0``, ``max_length``, the empty caches ``self_names`` and
    the outer tables (with ``trie``: ``trie_state0``, the root, and the request's tables). A
    step that keeps a state without a request's trie (it drafts from the bank's) starts at the
    bank trie's root."""
    from onnx import TensorProto, helper, numpy_helper

    p = prefix
    nodes, inits = step
    stateful = any("d_state" in node.input for node in nodes)  # the step's own inputs say
    past = [
        helper.make_tensor_value_info(f"b_{n}", TensorProto.FLOAT, [1, heads, "past", head_size])
        for n in self_names
    ]
    body = helper.make_graph(
        nodes,
        "draft and verify step",
        [
            helper.make_tensor_value_info("d_iter", TensorProto.INT64, []),
            helper.make_tensor_value_info("d_cond", TensorProto.BOOL, []),
            helper.make_tensor_value_info("d_out", TensorProto.INT64, [1, "row"]),
            helper.make_tensor_value_info("d_len", TensorProto.INT32, [1]),
            *past,
            *(
                [helper.make_tensor_value_info("d_state", TensorProto.INT64, [1])]
                if stateful
                else []
            ),
        ],
        [
            helper.make_tensor_value_info("d_cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("d_out_next", TensorProto.INT64, [1, "row_1"]),
            helper.make_tensor_value_info("d_len_next", TensorProto.INT32, [1]),
            *(
                helper.make_tensor_value_info(
                    f"d_{n}_next", TensorProto.FLOAT, [1, heads, "past_1", head_size]
                )
                for n in self_names
            ),
            *(
                [helper.make_tensor_value_info("d_state_next", TensorProto.INT64, [1])]
                if stateful
                else []
            ),
        ],
        initializer=inits,
    )

    def const(name: str, value: Any, dtype: Any) -> str:
        """A Constant node (a branch graph's own value)."""
        nodes_out.append(
            helper.make_node(
                "Constant",
                [],
                [p + name],
                value=numpy_helper.from_array(np.asarray(value, dtype=dtype)),
            )
        )
        return p + name

    nodes_out: list[Any] = []
    row0 = const("row0", [[start] * context], np.int64)
    len0 = const("len0", [0], np.int32)
    axis1 = const("axis1", [1], np.int64)
    big = const("big", [np.iinfo(np.int64).max], np.int64)
    state0 = ["trie_state0"] if trie else [const("root", [0], np.int64)] if stateful else []
    nodes_out += [
        helper.make_node("Cast", ["max_length"], ["d_max"], to=TensorProto.INT32),
        # MultiHeadAttention takes a bias row per query token (no broadcast over them)
        helper.make_node(
            "Expand",
            ["cross_mask_bias", const("rows", [1, 1, tokens + 1, 1], np.int64)],
            [DRAFT_CROSS_BIAS],
        ),
        helper.make_node(
            "Loop",
            ["trips", "cond0", row0, len0, *self_names, *state0],
            [
                p + "row",
                p + "len",
                *(f"{p}final_{n}" for n in self_names),
                *([p + "state"] if stateful else []),
            ],
            body=body,
        ),
        helper.make_node(
            "Slice", [p + "row", const("ctx", [context], np.int64), big, axis1], [p + "gen"]
        ),
        helper.make_node("Equal", [p + "gen", const("eos", eos, np.int64)], [p + "is_eos"]),
        helper.make_node("Cast", [p + "is_eos"], [p + "is_eos_i"], to=TensorProto.INT32),
        helper.make_node(
            "Concat", [p + "is_eos_i", const("stop", [[1]], np.int32)], [p + "eos_or_end"], axis=1
        ),
        helper.make_node("ArgMax", [p + "eos_or_end"], [p + "first_eos"], axis=1, keepdims=0),
        helper.make_node("Add", [p + "first_eos", const("one", [1], np.int64)], [p + "to_eos"]),
        helper.make_node("Min", [p + "to_eos", "max_length"], [p + "end"]),
        helper.make_node(
            "Slice", [p + "gen", const("zero", [0], np.int64), p + "end", axis1], [p + "ids"]
        ),
        helper.make_node(
            "Concat",
            [const("start", [[start]], np.int64), p + "ids"],
            [p + SEQUENCES_OUTPUT],
            axis=1,
        ),
    ]
    return nodes_out


def bank_sequences(model_dir: Path, *, eos: int) -> list[list[int]] | None:
    """A typed-role model's skeleton bank as token ids (its decoder targets encoded as the trie
    encodes them), to draft from; None for a model without one."""
    bank = dir_bank(model_dir, eos=eos)
    if bank is None:
        return None
    return [bank.ids(t) for topic in sorted(bank.targets) for t in bank.targets[topic]]
