"""Nodes of the greedy decoding logic around a decoder step: the keyword-slot penalty, the
skeleton-bank trie, the start token, the ``Loop`` and its body's inputs / outputs, and the tail
of a step (argmax, eos filler, finished flags, continue flag)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from export.generation_common import (
    SEQUENCES_OUTPUT,
    _reduce_node,
)
from serving.constrain import TRIE_NEXT, TRIE_TOKENS

if TYPE_CHECKING:
    import onnx

logger = logging.getLogger(__name__)


VOCAB_COLUMNS = "vocab_columns"  # int64 [columns]: the token id of each narrowed logit column
VOCAB_COLUMN_OF = "vocab_column_of"  # int64 [vocab]: each token's column (0 where it has none)


def written_columns(unwritten: Sequence[int] | np.ndarray, vocab: int) -> np.ndarray:
    """The token ids a narrowed lm head computes (``serving.constrain.unwritten_ids``), sorted:
    every written token, and token 0 (the pad, never written: penalised like the unwritten), so
    that column 0 can take the trie mask's padding as the full vocabulary's token 0 does."""
    keep = np.setdiff1d(np.arange(vocab, dtype=np.int64), np.asarray(unwritten, np.int64))
    return np.union1d(np.zeros(1, np.int64), keep)


def column_of(columns: np.ndarray, vocab: int) -> np.ndarray:
    """Each token's column in ``columns`` (0 for a token without one): :data:`VOCAB_COLUMN_OF`."""
    out = np.zeros(vocab, np.int64)
    out[columns] = np.arange(len(columns), dtype=np.int64)
    return out


def _slot_penalty_nodes(
    const: Callable[[str, Any, Any], str],
    guard: Sequence[tuple[int, int]],
    *,
    vocab: int,
    opset: int,
    unwritten: Sequence[int] | np.ndarray = (),
    columns: np.ndarray | None = None,
) -> list[Any]:
    """Nodes computing ``slot_penalty`` [batch, 1, width] ([1, 1, width], one row for all,
    without a ``guard``), added to the logits before ArgMax: -1e9 on each slot token whose
    keyword marker the row's prompt lacks (``serving.realize.banned_slot_ids``) and on each
    ``unwritten`` token (``serving.constrain.unwritten_ids``), else 0. Its width is the
    vocabulary's, or ``columns``' for a narrowed lm head (:func:`written_columns`)."""
    from onnx import TensorProto, helper

    cols = np.arange(vocab) if columns is None else np.asarray(columns, np.int64)
    never = np.zeros(vocab, np.float32)
    never[np.asarray(unwritten, np.int64)] = -1e9
    if not guard:
        const("slot_penalty", never[cols][None, None, :], np.float32)
        return []
    slot_map = np.zeros((len(guard), vocab), np.float32)
    for j, pair in enumerate(guard):
        for t in pair:
            if 0 <= t < vocab:
                slot_map[j, t] = 1.0
    slot_map = slot_map[:, cols]
    markers = np.array([sing for sing, _ in guard], np.int64)  # a prompt marks keyword i by <ki>
    return [
        helper.make_node("Unsqueeze", ["input_ids", const("sg_axis2", [2], np.int64)], ["sg_ids"]),
        helper.make_node("Equal", ["sg_ids", const("sg_markers", markers, np.int64)], ["sg_hit"]),
        helper.make_node("Cast", ["sg_hit"], ["sg_hit_f"], to=TensorProto.FLOAT),
        _reduce_node("ReduceMax", "sg_hit_f", "sg_present", axis=1, const=const, opset=opset),
        helper.make_node("Sub", [const("sg_one", 1.0, np.float32), "sg_present"], ["sg_absent"]),
        helper.make_node(
            "MatMul", ["sg_absent", const("sg_map", slot_map, np.float32)], ["slot_banned"]
        ),
        helper.make_node("Mul", ["slot_banned", const("sg_big", -1e9, np.float32)], ["sg_pen"]),
        helper.make_node("Add", ["sg_pen", const("sg_never", never[cols], np.float32)], ["sg_all"]),
        helper.make_node(
            "Unsqueeze", ["sg_all", const("sg_axis1u", [1], np.int64)], ["slot_penalty"]
        ),
    ]


TRIE_INPUTS_DOC = {
    TRIE_TOKENS: "int64 [S, K], optional (default: no constraint): row s lists the token ids "
    "that may follow trie state s (-1 pads); state 0 is the root (serving.constrain.Trie.tables)",
    TRIE_NEXT: "int64 [S, K], optional: the state each of those tokens leads to",
}


def _trie_nodes(
    p: str,
    logits: str,
    state: str,
    next_raw: str,
    state_out: str,
    const: Any,
    *,
    opset: int,
    narrowed: bool = False,
) -> tuple[list[Any], list[Any], str]:
    """(nodes before ArgMax, nodes after it, masked logits name): the skeleton-bank constraint
    of ``serving.constrain`` inside the graph. ``state`` [batch] is each row's trie state (-1:
    left the trie or no constraint); only the tokens its row lists keep their logits, then the
    chosen token's next state is carried. A state whose row lists nothing (the default tables,
    or the end of a skeleton) constrains nothing, as the Python loop's ``allowed`` returning
    None does, so the ids equal ``decode_loop.generate(allowed=...)``'s. ``narrowed``: the
    logits are the narrowed lm head's columns (:func:`written_columns`); a listed token is
    masked at its column (an unwritten one at column 0, whose penalty keeps it out)."""
    from onnx import TensorProto, helper

    def n(op: str, inputs: list[str], out: str, **attrs: Any) -> Any:
        return helper.make_node(op, inputs, [p + out], **attrs)

    zero = const(f"{p}zero", 0, np.int64)
    pre = [
        n("Max", [state, zero], "sc"),
        n("Gather", [TRIE_TOKENS, p + "sc"], "tok", axis=0),  # [B, K]
        n("Gather", [TRIE_NEXT, p + "sc"], "nxt", axis=0),
        n("GreaterOrEqual", [p + "tok", zero], "valid"),
        n("Cast", [p + "valid"], "valid_i", to=TensorProto.INT64),
        n("Max", [p + "tok", zero], "tokc"),
        _reduce_node("ReduceMax", p + "valid_i", p + "any_i", axis=1, const=const, opset=opset),
        n("Cast", [p + "any_i"], "any", to=TensorProto.BOOL),
        n("GreaterOrEqual", [state, zero], "in_trie"),
        n("And", [p + "in_trie", p + "any"], "active"),
        n(
            "Where",
            [p + "valid", const(f"{p}keep", 0.0, np.float32), const(f"{p}drop", -1e9, np.float32)],
            "upd",
        ),
        n("Squeeze", [logits, const(f"{p}ax1", [1], np.int64)], "l2"),  # [B, V]
        n("Mul", [p + "l2", const(f"{p}zf", 0.0, np.float32)], "zeros"),
        n("Add", [p + "zeros", f"{p}drop"], "base"),
        *([n("Gather", [VOCAB_COLUMN_OF, p + "tokc"], "tokcol", axis=0)] if narrowed else []),
        n(
            "ScatterElements",
            [p + "base", p + ("tokcol" if narrowed else "tokc"), p + "upd"],
            "mask",
            axis=1,
        ),
        n("Unsqueeze", [p + "active", f"{p}ax1"], "active2"),
        n("Where", [p + "active2", p + "mask", f"{p}keep"], "mask_on"),
        n("Unsqueeze", [p + "mask_on", f"{p}ax1"], "mask3"),
        n("Add", [logits, p + "mask3"], "logits"),
    ]
    post = [
        n("Equal", [p + "tok", next_raw], "eq"),  # [B, K] vs [B, 1]
        n("And", [p + "eq", p + "valid"], "hit"),
        n("Cast", [p + "hit"], "hit_i", to=TensorProto.INT64),
        n("ArgMax", [p + "hit_i"], "pos", axis=1, keepdims=1),
        n("GatherElements", [p + "nxt", p + "pos"], "ns2", axis=1),
        n("Squeeze", [p + "ns2", f"{p}ax1"], "ns"),
        _reduce_node("ReduceMax", p + "hit_i", p + "got_i", axis=1, const=const, opset=opset),
        n("Cast", [p + "got_i"], "got", to=TensorProto.BOOL),
        n("And", [p + "active", p + "got"], "moved"),
        helper.make_node(
            "Where", [p + "moved", p + "ns", const(f"{p}out", -1, np.int64)], [state_out]
        ),
    ]
    return pre, post, p + "logits"


def _start_token_nodes(const: Callable[[str, Any, Any], str], start_id: int) -> list[Any]:
    """``decoder_start`` [batch, 1]: the decoder start token once per prompt row."""
    from onnx import helper

    return [
        helper.make_node("Shape", ["input_ids"], ["ids_shape"], end=1),
        helper.make_node(
            "Concat", ["ids_shape", const("one_i64", [1], np.int64)], ["start_shape"], axis=0
        ),
        helper.make_node(
            "Expand", [const("start_id", [[start_id]], np.int64), "start_shape"], ["decoder_start"]
        ),
    ]


def _loop_body_io(
    past_in: Sequence[Any], past_out: Sequence[Any], *, trie: bool = False
) -> tuple[list[Any], list[Any]]:
    """Inputs and outputs of a greedy ``Loop`` body around its self-attention cache infos
    (and the carried trie state, with ``trie``)."""
    from onnx import TensorProto, helper

    state_in = [helper.make_tensor_value_info("b_state", TensorProto.INT64, ["batch"])]
    state_out = [helper.make_tensor_value_info("b_state_out", TensorProto.INT64, ["batch"])]
    inputs = [
        helper.make_tensor_value_info("b_iter", TensorProto.INT64, []),
        helper.make_tensor_value_info("b_cond", TensorProto.BOOL, []),
        helper.make_tensor_value_info("b_tok", TensorProto.INT64, ["batch", 1]),
        helper.make_tensor_value_info("b_fin", TensorProto.BOOL, ["batch", 1]),
        *past_in,
        *(state_in if trie else []),
    ]
    outputs = [
        helper.make_tensor_value_info("b_cond_out", TensorProto.BOOL, []),
        helper.make_tensor_value_info("b_next", TensorProto.INT64, ["batch", 1]),
        helper.make_tensor_value_info("b_fin_out", TensorProto.BOOL, ["batch", 1]),
        *past_out,
        *(state_out if trie else []),
        # the scan output is the carried token itself (a graph may list one value as two
        # outputs): no Identity kernel a step
        helper.make_tensor_value_info("b_next", TensorProto.INT64, ["batch", 1]),
    ]
    return inputs, outputs


def _loop_nodes(
    const: Callable[[str, Any, Any], str],
    body: onnx.GraphProto,
    *,
    first: Sequence[str],
    self_names: Sequence[str],
    head: Sequence[str],
    state: str | None = None,
    prefix: str = "",
) -> list[Any]:
    """The ``Loop`` over ``body`` (carried: token ``first[0]``, finished ``first[1]``, cache
    ``self_names``, the trie ``state`` when given), then ``{prefix}sequences`` = ``head``
    tokens + the scanned ids as [batch, steps]. ``prefix`` names what the nodes produce (two
    loops in one file, one per ``If`` branch)."""
    from onnx import helper

    carried = [*first, *self_names, *([state] if state else [])]
    loop_out = [
        prefix + n
        for n in [
            "last_tok",
            "last_fin",
            *[f"final_{n}" for n in self_names],
            *(["last_state"] if state else []),
            "scan_tokens",
        ]
    ]
    p = prefix
    return [
        helper.make_node("Loop", ["trips", "cond0", *carried], loop_out, body=body),
        # [steps, batch, 1] -> [batch, steps]
        helper.make_node("Transpose", [p + "scan_tokens"], [p + "scan_bt1"], perm=[1, 0, 2]),
        helper.make_node(
            "Squeeze", [p + "scan_bt1", const(p + "axis2", [2], np.int64)], [p + "scan_bt"]
        ),
        helper.make_node("Concat", [*head, p + "scan_bt"], [p + SEQUENCES_OUTPUT], axis=1),
    ]


def _trie_state0_nodes() -> list[Any]:
    """``trie_state0`` [batch]: every row starts at the trie's root (state 0)."""
    from onnx import helper, numpy_helper

    return [
        helper.make_node(
            "ConstantOfShape",
            ["ids_shape"],
            ["trie_state0"],
            value=numpy_helper.from_array(np.zeros(1, np.int64)),
        )
    ]


def _i64_tensor(values: Sequence[int]) -> Any:
    """An int64 TensorProto (a Constant node's value)."""
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(values, np.int64))


def _greedy_tail(
    eos_name: str,
    penalty: str | None = None,
    *,
    opset: int,
    trie_const: Any = None,
    narrowed: bool = False,
) -> list[Any]:
    """Loop-body nodes after the logits: the keyword-slot penalty (an outer-scope tensor, when
    given), the skeleton-bank constraint (with ``trie_const``, the builder's constant maker:
    :func:`_trie_nodes`), argmax (``narrowed``: of the lm head's columns, then their token
    ids, :data:`VOCAB_COLUMNS`), eos filler, finished flags, continue flag."""
    from onnx import TensorProto, helper, numpy_helper

    guard = [helper.make_node("Add", ["b_logits", penalty], ["b_logits_g"])] if penalty else []
    logits = "b_logits_g" if penalty else "b_logits"
    pre: list[Any] = []
    post: list[Any] = []
    if trie_const is not None:
        pre, post, logits = _trie_nodes(
            "bt_",
            logits,
            "b_state",
            "b_next_raw",
            "b_state_out",
            trie_const,
            opset=opset,
            narrowed=narrowed,
        )
    pick = [helper.make_node("ArgMax", [logits], ["b_next_raw"], axis=-1, keepdims=0)]
    if narrowed:
        pick = [
            helper.make_node("ArgMax", [logits], ["b_next_col"], axis=-1, keepdims=0),
            helper.make_node("Gather", [VOCAB_COLUMNS, "b_next_col"], ["b_next_raw"], axis=0),
        ]
    return [
        *guard,
        *pre,
        *pick,
        *post,
        helper.make_node("Where", ["b_fin", eos_name, "b_next_raw"], ["b_next"]),
        # a finished row's token is eos, so "finished" is "this token is eos"
        helper.make_node("Equal", ["b_next", eos_name], ["b_fin_out"]),
        helper.make_node("Cast", ["b_fin_out"], ["b_fin_i"], to=TensorProto.INT64),
        helper.make_node("ReduceMin", ["b_fin_i"], ["b_all_fin"], keepdims=0),
        helper.make_node(
            "Constant", [], ["b_one"], value=numpy_helper.from_array(np.array(1, np.int64))
        ),
        helper.make_node("Less", ["b_all_fin", "b_one"], ["b_cond_out"]),
    ]
