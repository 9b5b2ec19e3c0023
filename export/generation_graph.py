"""One ONNX file with the generation loop inside, around optimum's three T5 graphs.

The backend runs ``t5_small_word_problem.onnx`` with one ``session.run``; the loop that serving
drives from Python (``serving.decode_loop``) runs inside ONNX Runtime instead. Two builders:

- :func:`build_loop_model` (shipped): greedy decoding in a standard ONNX ``Loop``. The encoder
  runs once; every step is the *lean step* (:func:`lean_step_body`): optimum's decoder-with-past
  arithmetic node for node, its weights read by node name, with constant shapes (one query
  token), no causal mask (all zero for one query) and the relative-position bias as a slice of
  a table read from optimum's own graph; optionally (``fused_attention``) ORT's fused
  ``com.microsoft.MultiHeadAttention``, which other kernels compute, so it is gated like any
  variant. Cross-attention keys/values are computed once, outside the loop; the self-attention
  cache is loop-carried. Exports without fp32 weights (int8) keep optimum's own body.
- :func:`build_beam_search_model`: ORT's ``com.microsoft.BeamSearch`` with the optimum graphs
  renamed to the op's conventions (``onnxruntime/contrib_ops/cpu/transformers/
  subgraph_t5_encoder.cc`` / ``subgraph_t5_decoder.cc``, "old" encoder format: encoder + first
  decoder step). ``GreedySearch``'s CPU kernel throws "Not Implemented" for encoder-decoder
  models, so greedy is ``num_beams=1``; it also offers beams. It re-gathers the past by beam
  every step, which makes it slower than the Loop at batch 1 (docs/benchmarks.md).

``onnxruntime.transformers.convert_generation --model_type t5`` cannot be used with this stack
(its fused ``RelativePositionBias`` has no CPU kernel; without fusions its T5 re-export passes
tuple past key values that transformers 4.57 rejects). Greedy ids must equal the Python
loop's on every evaluation prompt (:func:`check_generation_parity`, run by export-backend).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from export.parity import ParityError
from serving.constrain import TRIE_NEXT, TRIE_TOKENS, trie_feeds
from serving.onnx_files import DECODER_FILE, DECODER_WITH_PAST_FILE, ENCODER_FILE
from serving.roles import SKELETONS_FILE

if TYPE_CHECKING:
    import onnx

logger = logging.getLogger(__name__)

MS_DOMAIN = "com.microsoft"
SEQUENCES_OUTPUT = "sequences"

# What each graph input and output means (copied into the backend manifest).
LOOP_IO_DOC: dict[str, dict[str, str]] = {
    "inputs": {
        "input_ids": "int64 [batch, seq]: prompt token ids (tokenizer.json, ending with </s>)",
        "attention_mask": "int64 [batch, seq]: 1 for prompt tokens, 0 for right padding",
        "max_length": "int64 [1], optional: most NEW tokens to generate (default: the "
        "artifact's max_new_tokens; at most 1023); the decoder start token is not counted",
    },
    "outputs": {
        SEQUENCES_OUTPUT: "int64 [batch, <= 1 + max_length]: decoder start token, greedy ids, "
        "then </s> up to the end of the row (a row without </s> hit max_length); decode with "
        "skip_special_tokens=True",
    },
}
BEAM_IO_DOC: dict[str, dict[str, str]] = {
    "inputs": {
        **LOOP_IO_DOC["inputs"],
        "max_length": "int32 [1], optional: most NEW tokens (default: max_new_tokens)",
        "min_length": "int32 [1], optional: eos forbidden before this many decoder tokens "
        "(counting the start token; default 0 = off)",
        "num_beams": "int32 [1], optional: 1 = greedy (default, the parity-gated path)",
        "num_return_sequences": "int32 [1], optional: sequences per prompt, <= num_beams",
        "length_penalty": "float [1], optional: beam-score length exponent (default 1.0)",
        "repetition_penalty": "float [1], optional: 1.0 = off (default)",
    },
    "outputs": {
        SEQUENCES_OUTPUT: "int64 [batch * num_return_sequences, 1 + max_length]: as the loop's",
    },
}

_PRESENT = re.compile(r"^present\.(\d+)\.(decoder|encoder)\.(key|value)$")
_PAST = re.compile(r"^past_key_values\.(\d+)\.(decoder|encoder)\.(key|value)$")


class GenerationGraphError(RuntimeError):
    """The optimum graphs do not have the inputs/outputs the BeamSearch op needs."""


class GenerationParityError(ParityError):
    """The one-file graph's greedy ids differ from the Python loop's on some prompt."""


@dataclass(frozen=True)
class GenerationSettings:
    """Token ids and the default generation length baked into the node / its defaults."""

    decoder_start_token_id: int
    eos_token_id: int
    pad_token_id: int
    max_new_tokens: int

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> GenerationSettings:
        """From ``generation_config.json`` (pad defaults to the start token, as serving does)."""
        start = int(cfg["decoder_start_token_id"])
        return cls(
            decoder_start_token_id=start,
            eos_token_id=int(cfg["eos_token_id"]),
            pad_token_id=int(cfg.get("pad_token_id", start)),
            max_new_tokens=int(cfg.get("max_new_tokens") or 64),
        )


def dir_slot_guard(onnx_dir: Path) -> tuple[tuple[int, int], ...]:
    """The keyword-slot guard of the tokenizer in ``onnx_dir`` (empty without one or its slots):
    the one-file graph bans the same slot ids as ``serving.decode_loop``."""
    path = Path(onnx_dir) / "tokenizer.json"
    if not path.is_file():
        return ()
    from tokenizers import Tokenizer

    from serving.realize import slot_guard

    return slot_guard(Tokenizer.from_file(str(path)).token_to_id)


def _reduce_node(
    op: str, x: str, out: str, *, axis: int, const: Callable[[str, Any, Any], str], opset: int
) -> Any:
    """``op`` (ReduceMax, ReduceMin...) over one axis, without keepdims: axes are an input from
    opset 18 on, an attribute before."""
    from onnx import helper

    if opset >= 18:
        axes = const(f"{out}_axes", [axis], np.int64)
        return helper.make_node(op, [x, axes], [out], keepdims=0)
    return helper.make_node(op, [x], [out], axes=[axis], keepdims=0)


def _slot_penalty_nodes(
    const: Callable[[str, Any, Any], str],
    guard: Sequence[tuple[int, int]],
    *,
    vocab: int,
    opset: int,
) -> list[Any]:
    """Nodes computing ``slot_banned`` [batch, vocab] (1.0 where the row's prompt lacks the
    keyword marker of that slot token, else 0.0) and ``slot_penalty`` [batch, 1, vocab]
    (-1e9 there, added to the logits before ArgMax): ``serving.realize.banned_slot_ids``."""
    from onnx import TensorProto, helper

    slot_map = np.zeros((len(guard), vocab), np.float32)
    for j, pair in enumerate(guard):
        for t in pair:
            if 0 <= t < vocab:
                slot_map[j, t] = 1.0
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
        helper.make_node(
            "Unsqueeze", ["sg_pen", const("sg_axis1u", [1], np.int64)], ["slot_penalty"]
        ),
    ]


TRIE_INPUTS_DOC = {
    TRIE_TOKENS: "int64 [S, K], optional (default: no constraint): row s lists the token ids "
    "that may follow trie state s (-1 pads); state 0 is the root (serving.constrain.Trie.tables)",
    TRIE_NEXT: "int64 [S, K], optional: the state each of those tokens leads to",
}


def _trie_nodes(
    p: str, logits: str, state: str, next_raw: str, state_out: str, const: Any, *, opset: int
) -> tuple[list[Any], list[Any], str]:
    """(nodes before ArgMax, nodes after it, masked logits name): the skeleton-bank constraint
    of ``serving.constrain`` inside the graph. ``state`` [batch] is each row's trie state (-1:
    left the trie or no constraint); only the tokens its row lists keep their logits, then the
    chosen token's next state is carried. A state whose row lists nothing (the default tables,
    or the end of a skeleton) constrains nothing, as the Python loop's ``allowed`` returning
    None does, so the ids equal ``decode_loop.generate(allowed=...)``'s."""
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
        n("ScatterElements", [p + "base", p + "tokc", p + "upd"], "mask", axis=1),
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


def _self_cross(kind: str) -> str:
    return "self" if kind == "decoder" else "cross"


def _kv_name(prefix: str, match: re.Match[str]) -> str:
    layer, kind, kv = match.groups()
    return f"{prefix}_{kv}_{_self_cross(kind)}_{layer}"


def _rename(graph: onnx.GraphProto, mapping: Mapping[str, str]) -> None:
    """Rename tensors everywhere in ``graph`` (nodes, inputs, outputs, initializers, infos)."""
    for node in graph.node:
        node.input[:] = [mapping.get(n, n) for n in node.input]
        node.output[:] = [mapping.get(n, n) for n in node.output]
    for seq in (graph.input, graph.output, graph.value_info):
        for v in seq:
            v.name = mapping.get(v.name, v.name)
    for init in graph.initializer:
        init.name = mapping.get(init.name, init.name)


def _prefixed(graph: onnx.GraphProto, prefix: str) -> onnx.GraphProto:
    """A copy with every name prefixed (unique when two graphs share one subgraph)."""
    from onnx.compose import add_prefix_graph

    return add_prefix_graph(graph, prefix)


def _static_dims(value: Any, dims: Mapping[int, int]) -> None:
    """Fix dims (ORT reads heads, head size and vocab size from the subgraph's shapes)."""
    shape = value.type.tensor_type.shape
    for axis, size in dims.items():
        if axis < len(shape.dim):
            d = shape.dim[axis]
            d.Clear()
            d.dim_value = int(size)


def _int32_input(name: str, dims: Sequence[str | int]) -> Any:
    from onnx import TensorProto, helper

    return helper.make_tensor_value_info(name, TensorProto.INT32, list(dims))


def _cast(src: str, dst: str, to: int) -> Any:
    from onnx import helper

    return helper.make_node("Cast", [src], [dst], to=to, name=f"cast_{dst}")


def _kv_dims(value: Any) -> tuple[int, int]:
    dims = value.type.tensor_type.shape.dim
    heads, head_size = dims[1], dims[3]
    if not (heads.HasField("dim_value") and head_size.HasField("dim_value")):
        raise GenerationGraphError(f"{value.name}: heads / head size are not static: {dims}")
    return int(heads.dim_value), int(head_size.dim_value)


def _vocab(value: Any) -> int:
    d = value.type.tensor_type.shape.dim[2]
    if not d.HasField("dim_value"):
        raise GenerationGraphError(f"{value.name}: vocab size is not static")
    return int(d.dim_value)


def _layers(names: Sequence[str], pattern: re.Pattern[str]) -> int:
    layers = {int(m.group(1)) for n in names if (m := pattern.match(n))}
    if not layers or layers != set(range(len(layers))):
        raise GenerationGraphError(f"past/present names do not cover layers 0..n-1: {names}")
    return len(layers)


def _check_encoder_io(encoder: onnx.ModelProto) -> None:
    enc_in = {i.name for i in encoder.graph.input}
    if enc_in != {"input_ids", "attention_mask"} or [o.name for o in encoder.graph.output] != [
        "last_hidden_state"
    ]:
        raise GenerationGraphError(
            f"encoder: expected inputs input_ids, attention_mask and output last_hidden_state, "
            f"got {sorted(enc_in)} -> {[o.name for o in encoder.graph.output]}"
        )


def _encoder_graph(
    encoder: onnx.ModelProto, *, input_ids: str, attention_mask: str
) -> onnx.GraphProto:
    """optimum's encoder, ``e/``-prefixed, reading the builder's input names and writing
    ``encoder_hidden_states`` (the name both builders' decoder steps read)."""
    _check_encoder_io(encoder)
    enc = _prefixed(encoder.graph, "e/")
    _rename(
        enc,
        {
            "e/input_ids": input_ids,
            "e/attention_mask": attention_mask,
            "e/last_hidden_state": "encoder_hidden_states",
        },
    )
    return enc


class _StepNames(NamedTuple):
    """The names one builder gives the encoder's inputs and the first decoder step's tensors."""

    input_ids: str
    attention_mask: str
    decoder_input_ids: str
    logits: str
    present: str  # a present output: {i} (layer), {sc} ("self" | "cross"), {kv} ("key" | "value")


# The Loop reads the graph inputs directly; BeamSearch feeds int32 ids that its casts widen.
_LOOP = _StepNames("input_ids", "attention_mask", "decoder_start", "first_logits", "{sc}_{kv}_{i}")
_BEAM = _StepNames("e/ids64", "e/mask64", "d/ids64", "logits", "present_{kv}_{sc}_{i}")


def _encoder_and_first_step(
    encoder: onnx.ModelProto, decoder: onnx.ModelProto, names: _StepNames
) -> tuple[onnx.GraphProto, onnx.GraphProto]:
    """optimum's encoder (``e/``-prefixed) and first decoder step (``decoder_model``,
    ``d/``-prefixed) under one builder's tensor ``names``: the Loop and the BeamSearch builders
    run the same two graphs, wired to their own inputs."""
    enc = _encoder_graph(encoder, input_ids=names.input_ids, attention_mask=names.attention_mask)
    dec = _prefixed(decoder.graph, "d/")
    mapping = {
        "d/input_ids": names.decoder_input_ids,
        "d/encoder_attention_mask": names.attention_mask,
        "d/encoder_hidden_states": "encoder_hidden_states",
        "d/logits": names.logits,
    }
    for o in decoder.graph.output:
        if o.name == "logits":
            continue
        match = _PRESENT.match(o.name)
        if match is None:
            raise GenerationGraphError(f"decoder: unexpected output {o.name!r}")
        layer, kind, kv = match.groups()
        mapping[f"d/{o.name}"] = names.present.format(i=layer, sc=_self_cross(kind), kv=kv)
    _rename(dec, mapping)
    return enc, dec


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
        helper.make_tensor_value_info("b_scan", TensorProto.INT64, ["batch", 1]),
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


def encoder_subgraph(encoder: onnx.ModelProto, decoder: onnx.ModelProto) -> onnx.GraphProto:
    """Encoder + first decoder step in ORT's (old) T5 encoder-subgraph convention."""
    from onnx import TensorProto, helper

    _check_encoder_io(encoder)
    dec_in = {i.name for i in decoder.graph.input}
    if dec_in != {"input_ids", "encoder_attention_mask", "encoder_hidden_states"}:
        raise GenerationGraphError(f"decoder: unexpected inputs {sorted(dec_in)}")
    presents = [o.name for o in decoder.graph.output if o.name != "logits"]
    n_layers = _layers(presents, _PRESENT)

    enc, dec = _encoder_and_first_step(encoder, decoder, _BEAM)
    dec_out = {o.name: o for o in dec.output}
    outputs = [dec_out["logits"], next(iter(enc.output))]
    for kind in ("self", "cross"):
        for i in range(n_layers):
            outputs += [dec_out[f"present_key_{kind}_{i}"], dec_out[f"present_value_{kind}_{i}"]]
    heads, head_size = _kv_dims(outputs[2])
    for o in outputs[2:]:
        _static_dims(o, {1: heads, 3: head_size})
    _static_dims(outputs[0], {1: 1})
    nodes = [
        _cast("encoder_input_ids", "e/ids64", TensorProto.INT64),
        _cast("encoder_attention_mask", "e/mask64", TensorProto.INT64),
        _cast("decoder_input_ids", "d/ids64", TensorProto.INT64),
        *enc.node,
        *dec.node,
    ]
    return helper.make_graph(
        nodes,
        "t5 encoder and decoder init",
        [
            _int32_input("encoder_input_ids", ["batch", "encode_sequence_length"]),
            _int32_input("encoder_attention_mask", ["batch", "encode_sequence_length"]),
            _int32_input("decoder_input_ids", ["batch", 1]),
        ],
        outputs,
        initializer=[*enc.initializer, *dec.initializer],
        value_info=[*enc.value_info, *dec.value_info],
    )


def decoder_subgraph(decoder_with_past: onnx.ModelProto) -> onnx.GraphProto:
    """optimum's decoder-with-past in ORT's T5 decoder-subgraph convention."""
    from onnx import TensorProto, helper

    g = _prefixed(decoder_with_past.graph, "p/")
    in_names = [i.name[2:] for i in g.input]
    pasts = [n for n in in_names if n.startswith("past_key_values.")]
    if set(in_names) - set(pasts) != {"input_ids", "encoder_attention_mask"}:
        raise GenerationGraphError(f"decoder_with_past: unexpected inputs {in_names}")
    n_layers = _layers(pasts, _PAST)
    mapping = {
        "p/input_ids": "p/ids64",
        "p/encoder_attention_mask": "p/mask64",
        "p/logits": "logits",
    }
    for name in pasts:
        match = _PAST.match(name)
        if match is None:  # pragma: no cover - filtered by _layers
            raise GenerationGraphError(f"decoder_with_past: unexpected input {name!r}")
        mapping[f"p/{name}"] = _kv_name("past", match)
    for o in g.output:
        match = _PRESENT.match(o.name[2:])
        if match:
            if match.group(2) != "decoder":
                raise GenerationGraphError(f"decoder_with_past: unexpected output {o.name[2:]}")
            mapping[o.name] = _kv_name("present", match)
    _rename(g, mapping)
    by_in = {i.name: i for i in g.input}
    by_out = {o.name: o for o in g.output}
    past_inputs = []
    for kind in ("self", "cross"):
        for i in range(n_layers):
            past_inputs += [by_in[f"past_key_{kind}_{i}"], by_in[f"past_value_{kind}_{i}"]]
    outputs = [by_out["logits"]]
    for i in range(n_layers):
        outputs += [by_out[f"present_key_self_{i}"], by_out[f"present_value_self_{i}"]]
    heads, head_size = _kv_dims(past_inputs[0])
    for v in [*past_inputs, *outputs[1:]]:
        _static_dims(v, {1: heads, 3: head_size})
    _static_dims(outputs[0], {1: 1})
    nodes = [
        _cast("input_ids", "p/ids64", TensorProto.INT64),
        _cast("encoder_attention_mask", "p/mask64", TensorProto.INT64),
        *g.node,
    ]
    return helper.make_graph(
        nodes,
        "t5 decoder",
        [
            # dim 1 == 1 tells ORT to feed only the last token (not the whole sequence).
            _int32_input("input_ids", ["batch", 1]),
            _int32_input("encoder_attention_mask", ["batch", "encode_sequence_length"]),
            *past_inputs,
        ],
        outputs,
        initializer=list(g.initializer),
        value_info=list(g.value_info),
    )


def build_beam_search_model(
    onnx_dir: Path, settings: GenerationSettings, *, doc: str = ""
) -> onnx.ModelProto:
    """The one-file generator model from an optimum export directory (three ONNX files)."""
    from onnx import TensorProto, helper, numpy_helper

    encoder, decoder, with_past = _load_three(onnx_dir)
    opsets = {(o.domain or ""): o.version for o in decoder.opset_import}
    enc_g = encoder_subgraph(encoder, decoder)
    dec_g = decoder_subgraph(with_past)
    vocab = _vocab(dec_g.output[0])
    guard = dir_slot_guard(onnx_dir)
    guard_inits: list[Any] = []

    def const(name: str, value: Any, dtype: Any) -> str:
        guard_inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    # The op's vocab_mask is one row for the whole batch: a slot is banned when every row's
    # prompt lacks its keyword (exact at batch 1, how the backend calls it).
    guard_nodes: list[Any] = []
    if guard:
        guard_nodes = [
            *_slot_penalty_nodes(const, guard, vocab=vocab, opset=opsets[""]),
            _reduce_node(
                "ReduceMin", "slot_banned", "sg_banned_all", axis=0, const=const, opset=opsets[""]
            ),
            helper.make_node("Sub", ["sg_one", "sg_banned_all"], ["sg_allowed"]),
            _cast("sg_allowed", "sg_vocab_mask", TensorProto.INT32),
        ]

    node = helper.make_node(
        "BeamSearch",
        inputs=[
            "input_ids32",
            "max_length_total",
            "min_length",
            "num_beams",
            "num_return_sequences",
            "length_penalty",
            "repetition_penalty",
            "sg_vocab_mask" if guard else "",  # vocab_mask: the keyword-slot guard
            "",  # prefix_vocab_mask
            "attention_mask32",
        ],
        outputs=["sequences32"],
        name="BeamSearch_t5",
        domain=MS_DOMAIN,
        eos_token_id=settings.eos_token_id,
        # Finished rows are filled with pad_token_id and the op drops the eos itself: with the
        # real pad (0, also T5's start token and a token a model may emit) the end of a row
        # would be ambiguous. eos as filler gives HF's layout (tokens, eos, eos...). The op
        # uses pad_token_id nowhere else when attention_mask is given (it always is here).
        pad_token_id=settings.eos_token_id,
        decoder_start_token_id=settings.decoder_start_token_id,
        no_repeat_ngram_size=0,
        early_stopping=1,
        model_type=1,
        encoder=enc_g,
        decoder=dec_g,
    )
    one = np.array([1], dtype=np.int32)
    defaults = [
        numpy_helper.from_array(np.array([settings.max_new_tokens], np.int32), "max_length"),
        numpy_helper.from_array(np.array([0], np.int32), "min_length"),
        numpy_helper.from_array(one.copy(), "num_beams"),
        numpy_helper.from_array(one.copy(), "num_return_sequences"),
        numpy_helper.from_array(np.array([1.0], np.float32), "length_penalty"),
        numpy_helper.from_array(np.array([1.0], np.float32), "repetition_penalty"),
        numpy_helper.from_array(one.copy(), "one_i32"),
        numpy_helper.from_array(np.array([0], np.int32), "zero_i32"),
        numpy_helper.from_array(np.array([3], np.int32), "three_i32"),
    ]
    nodes = [
        *guard_nodes,
        _cast("input_ids", "input_ids32", TensorProto.INT32),
        _cast("attention_mask", "attention_mask32", TensorProto.INT32),
        # The op counts the decoder start token in max_length; the graph input does not.
        helper.make_node("Add", ["max_length", "one_i32"], ["row_length"], name="add_start"),
        # With max_length 2 (one new token) ORT 1.32's T5 loop runs the decoder once more on
        # uninitialised ids ("indices element out of data bounds"): ask for >= 3, cut below.
        helper.make_node("Max", ["row_length", "three_i32"], ["max_length_total"], name="floor"),
        node,
        # [batch, num_return_sequences, len] -> [batch * num_return_sequences, len], int64
        helper.make_node("Flatten", ["sequences32"], ["sequences2d"], axis=2, name="flatten"),
        helper.make_node(
            "Slice", ["sequences2d", "zero_i32", "row_length", "one_i32"], ["sequences_cut"]
        ),
        _cast("sequences_cut", SEQUENCES_OUTPUT, TensorProto.INT64),
    ]
    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"]),
        # Inputs with a same-named initializer: optional for the caller (ORT overridable).
        helper.make_tensor_value_info("max_length", TensorProto.INT32, [1]),
        helper.make_tensor_value_info("min_length", TensorProto.INT32, [1]),
        helper.make_tensor_value_info("num_beams", TensorProto.INT32, [1]),
        helper.make_tensor_value_info("num_return_sequences", TensorProto.INT32, [1]),
        helper.make_tensor_value_info("length_penalty", TensorProto.FLOAT, [1]),
        helper.make_tensor_value_info("repetition_penalty", TensorProto.FLOAT, [1]),
    ]
    outputs = [
        helper.make_tensor_value_info(
            SEQUENCES_OUTPUT, TensorProto.INT64, ["batch_x_sequences", "total_length"]
        )
    ]
    graph = helper.make_graph(
        nodes, "t5 word problem generation", inputs, outputs, initializer=[*defaults, *guard_inits]
    )
    model = _one_file_model(
        graph,
        [helper.make_opsetid("", opsets[""]), helper.make_opsetid(MS_DOMAIN, 1)],
        ir_version=decoder.ir_version,
        doc=doc or "T5 word-problem generator: BeamSearch (num_beams=1: greedy)",
        settings=settings,
        vocab=vocab,
    )
    logger.info("built one-file generator: vocab %d, opset %d", vocab, opsets[""])
    return model


def _one_file_model(
    graph: onnx.GraphProto,
    opsets: list[Any],
    *,
    ir_version: int,
    doc: str,
    settings: GenerationSettings,
    vocab: int,
    **extra_meta: str,
) -> onnx.ModelProto:
    """The model around a builder's main graph; its metadata holds the token ids, the default
    length and the vocab size (what the backend reads, with ``extra_meta`` after them)."""
    import onnx
    from onnx import helper

    model = helper.make_model(
        graph,
        producer_name="ludora-ml export.generation_graph",
        opset_imports=opsets,
        ir_version=ir_version,
    )
    model.doc_string = doc
    meta = {
        "decoder_start_token_id": settings.decoder_start_token_id,
        "eos_token_id": settings.eos_token_id,
        "pad_token_id": settings.pad_token_id,
        "max_new_tokens": settings.max_new_tokens,
        "vocab_size": vocab,
        **extra_meta,
    }
    onnx.helper.set_model_props(model, {k: str(v) for k, v in meta.items()})
    return model


def _load_three(onnx_dir: Path) -> tuple[onnx.ModelProto, onnx.ModelProto, onnx.ModelProto]:
    import onnx

    paths = [onnx_dir / n for n in (ENCODER_FILE, DECODER_FILE, DECODER_WITH_PAST_FILE)]
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"{p}: optimum export file missing")
    encoder, decoder, with_past = (onnx.load(str(p)) for p in paths)
    versions = {
        name: {(o.domain or ""): o.version for o in m.opset_import}.get("")
        for name, m in zip(
            ("encoder", "decoder", "decoder_with_past"), (encoder, decoder, with_past), strict=True
        )
    }
    if len(set(versions.values())) != 1:
        raise GenerationGraphError(f"ai.onnx opsets differ between the optimum files: {versions}")
    return encoder, decoder, with_past


def build_loop_model(
    onnx_dir: Path,
    settings: GenerationSettings,
    *,
    doc: str = "",
    lean: bool = True,
    fused_attention: bool = False,
) -> onnx.ModelProto:
    """The one-file generator as a standard ONNX ``Loop`` (greedy; no contrib op).

    Encoder and the first decoder step (optimum's ``decoder_model``) run once; the ``Loop`` body
    is optimum's ``decoder_with_past`` plus ``ArgMax``. Cross-attention keys/values are read from
    the outer scope (never copied per step); the self-attention cache is loop-carried. A row
    that produced eos is filled with eos; the loop stops when every row has. Same graphs and
    argmax as ``serving.decode_loop``, so the ids are the Python loop's.

    ``lean`` (default) writes the body with :func:`lean_step_body` (same arithmetic, constant
    shapes, ~2.3x fewer nodes per step); graphs it cannot read (int8 variants) fall back to
    optimum's body, logged.
    """
    from onnx import TensorProto, helper, numpy_helper

    encoder, decoder, with_past = _load_three(onnx_dir)
    opset = {(o.domain or ""): o.version for o in decoder.opset_import}[""]
    if opset < 15:
        raise GenerationGraphError(
            f"opset {opset} < 15: the loop graph needs Squeeze axes inputs and Shape(start, end)"
        )
    _check_encoder_io(encoder)
    presents = [o.name for o in decoder.graph.output if o.name != "logits"]
    n_layers = _layers(presents, _PRESENT)
    eos = settings.eos_token_id
    inits: list[Any] = []
    vocab = _vocab(next(o for o in decoder.graph.output if o.name == "logits"))
    guard = dir_slot_guard(onnx_dir)
    # a typed-role model ships its skeleton bank: the graph takes the bank's trie per request
    trie = (Path(onnx_dir) / SKELETONS_FILE).is_file()
    if lean:
        try:
            lean_nodes, lean_inits, lean_infos = _build_lean_loop(
                encoder,
                decoder,
                with_past,
                settings,
                opset=opset,
                fused_attention=fused_attention,
                guard=guard,
                vocab=vocab,
                trie=trie,
            )
            return _assemble(
                lean_nodes,
                lean_inits,
                lean_infos,
                settings,
                opset=opset,
                ir_version=decoder.ir_version,
                contrib=fused_attention,
                step="lean+mha" if fused_attention else "lean",
                vocab=vocab,
                doc=doc,
                trie=trie,
            )
        except GenerationGraphError as exc:
            logger.warning("lean step unavailable (%s): using optimum's decoder body", exc)

    def const(name: str, value: Any, dtype: Any) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    # ---- encoder + first step (main graph)
    enc, dec = _encoder_and_first_step(encoder, decoder, _LOOP)
    nodes: list[Any] = [*enc.node]
    penalty = "slot_penalty" if guard else None
    if guard:
        nodes += _slot_penalty_nodes(const, guard, vocab=vocab, opset=opset)
    first_logits = "first_logits_g" if guard else "first_logits"
    trie_pre: list[Any] = []
    trie_post: list[Any] = []
    if trie:
        trie_pre, trie_post, first_logits = _trie_nodes(
            "ft_", first_logits, "trie_state0", "tok0", "trie_state1", const, opset=opset
        )
    nodes += [
        *_start_token_nodes(const, settings.decoder_start_token_id),
        *(_trie_state0_nodes() if trie else []),
        *dec.node,
        *(
            [helper.make_node("Add", ["first_logits", "slot_penalty"], ["first_logits_g"])]
            if guard
            else []
        ),
        *trie_pre,
        helper.make_node("ArgMax", [first_logits], ["tok0"], axis=-1, keepdims=0),
        *trie_post,
        helper.make_node("Equal", ["tok0", const("eos_id", eos, np.int64)], ["fin0"]),
        helper.make_node("Not", ["fin0"], ["open0"]),
        helper.make_node("Cast", ["open0"], ["open0_i"], to=TensorProto.INT64),
        helper.make_node("ReduceMax", ["open0_i"], ["any_open0_i"], keepdims=0),
        helper.make_node("Cast", ["any_open0_i"], ["cond0"], to=TensorProto.BOOL),
        helper.make_node("Sub", ["max_length", "one_i64"], ["trips1"]),
        helper.make_node("Max", ["trips1", const("zero_i64", [0], np.int64)], ["trips1c"]),
        helper.make_node("Squeeze", ["trips1c", const("axis0", [0], np.int64)], ["trips"]),
    ]
    # ---- loop body: one decoder-with-past step + argmax
    body = _prefixed(with_past.graph, "p/")
    body_map = {
        "p/input_ids": "b_tok",
        "p/encoder_attention_mask": "attention_mask",
        "p/logits": "b_logits",
    }
    for i in body.input:
        m = _PAST.match(i.name[2:])
        if m:
            layer, kind, kv = m.groups()
            body_map[i.name] = (
                f"b_self_{kv}_{layer}" if kind == "decoder" else f"cross_{kv}_{layer}"
            )
    for o in body.output:
        m = _PRESENT.match(o.name[2:])
        if m:
            layer, _, kv = m.groups()
            body_map[o.name] = f"b_self_{kv}_{layer}_out"
    _rename(body, body_map)
    body_types = {v.name: v for v in [*body.input, *body.output]}
    self_names = [f"self_{kv}_{i}" for i in range(n_layers) for kv in ("key", "value")]
    body_inputs, body_outputs = _loop_body_io(
        [body_types[f"b_{n}"] for n in self_names],
        [body_types[f"b_{n}_out"] for n in self_names],
        trie=trie,
    )
    body_graph = helper.make_graph(
        [
            *body.node,
            *_greedy_tail("b_eos", penalty, opset=opset, trie_const=const if trie else None),
        ],
        "greedy step",
        body_inputs,
        body_outputs,
        initializer=[*body.initializer, numpy_helper.from_array(np.array(eos, np.int64), "b_eos")],
        value_info=list(body.value_info),
    )
    nodes += _loop_nodes(
        const,
        body_graph,
        first=["tok0", "fin0"],
        self_names=self_names,
        head=["decoder_start", "tok0"],
        state="trie_state1" if trie else None,
    )
    return _assemble(
        nodes,
        [*enc.initializer, *dec.initializer, *inits],
        [*enc.value_info, *dec.value_info],
        settings,
        opset=opset,
        ir_version=decoder.ir_version,
        contrib=False,
        step="optimum",
        vocab=vocab,
        doc=doc,
        trie=trie,
    )


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


def _assemble(
    nodes: list[Any],
    inits: list[Any],
    infos: list[Any],
    settings: GenerationSettings,
    *,
    opset: int,
    ir_version: int,
    contrib: bool,
    step: str,
    vocab: int,
    doc: str,
    trie: bool = False,
) -> onnx.ModelProto:
    """The loop model's main graph, IO and metadata around ``nodes`` (with ``trie``, the two
    optional trie inputs, whose defaults constrain nothing)."""
    from onnx import TensorProto, helper, numpy_helper

    default = numpy_helper.from_array(np.array([settings.max_new_tokens], np.int64), "max_length")
    trie_defaults = [
        numpy_helper.from_array(np.full((1, 1), -1, np.int64), name)
        for name in (TRIE_TOKENS, TRIE_NEXT)
    ]
    graph = helper.make_graph(
        nodes,
        "t5 word problem generation (greedy loop)",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
            helper.make_tensor_value_info(
                "attention_mask", TensorProto.INT64, ["batch", "sequence"]
            ),
            helper.make_tensor_value_info("max_length", TensorProto.INT64, [1]),
            *(
                helper.make_tensor_value_info(name, TensorProto.INT64, ["states", "branches"])
                for name in ((TRIE_TOKENS, TRIE_NEXT) if trie else ())
            ),
        ],
        [helper.make_tensor_value_info(SEQUENCES_OUTPUT, TensorProto.INT64, ["batch", "length"])],
        initializer=[*inits, default, *(trie_defaults if trie else [])],
        value_info=infos,
    )
    opsets = [helper.make_opsetid("", opset)]
    if contrib:
        opsets.append(helper.make_opsetid(MS_DOMAIN, 1))
    model = _one_file_model(
        graph,
        opsets,
        ir_version=ir_version,
        doc=doc or "T5 word-problem generator: greedy decoding in an ONNX Loop",
        settings=settings,
        vocab=vocab,
        search="greedy (ONNX Loop)",
        step=step,
    )
    logger.info("built one-file greedy loop generator (%s step): vocab %d", step, vocab)
    return model


# ---------------------------------------------------------------------------------- lean step

LEAN_MAX_POSITIONS = 1024  # longest decoder row the lean step's position-bias table covers


def _producers(graph: onnx.GraphProto) -> dict[str, Any]:
    return {o: n for n in graph.node for o in n.output}


def _constant_value(graph: onnx.GraphProto, name: str) -> np.ndarray:
    """Value of an initializer or a Constant node's output."""
    from onnx import numpy_helper

    for init in graph.initializer:
        if init.name == name:
            return np.asarray(numpy_helper.to_array(init))
    for node in graph.node:
        if node.output and node.output[0] == name:
            if node.op_type == "Constant":
                return np.asarray(numpy_helper.to_array(node.attribute[0].t))
            if node.op_type == "Identity":  # torch's export shares equal weights this way
                return _constant_value(graph, node.input[0])
    raise GenerationGraphError(f"lean step: {name!r} is not a constant")


class QuantWeight(NamedTuple):
    """A MatMul weight of the quantize stage's dynamic int8 variant (per output column)."""

    q: np.ndarray  # int8 / uint8 [K, N]
    scale: np.ndarray  # float32 [N] (or a scalar)
    zero_point: np.ndarray  # same type as q

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.q.shape)


def _matmul_weight(g: onnx.GraphProto, node_name: str, *, quantized: bool) -> Any:
    """The weight of optimum's MatMul ``node_name``: an fp32 array, or (``quantized``) the
    :class:`QuantWeight` of its dynamic int8 form (``{node_name}_quant``, a MatMulInteger)."""
    from onnx import numpy_helper

    inits = {i.name: i for i in g.initializer}
    nodes = {n.name: n for n in g.node}

    def value(src: str) -> np.ndarray:
        return numpy_helper.to_array(inits[src]) if src in inits else _constant_value(g, src)

    node = nodes.get(node_name)
    if node is not None:
        weight = value(node.input[1])
        if weight.dtype != np.float32:
            raise GenerationGraphError(f"lean step: {node_name!r} weight is {weight.dtype}")
        return np.asarray(weight)
    quant = nodes.get(f"{node_name}_quant")
    if quant is None or quant.op_type != "MatMulInteger":
        raise GenerationGraphError(f"lean step: no node {node_name!r}")
    if not quantized:
        raise GenerationGraphError(f"lean step: {node_name!r} is int8 (the exact step is fp32)")
    q_name = quant.input[1]
    scale_name = q_name.removesuffix("_quantized") + "_scale"
    return QuantWeight(value(q_name), value(scale_name), value(quant.input[3]))


def _lean_weights(
    with_past: onnx.ModelProto, n_layers: int, *, quantized: bool = False
) -> dict[str, Any]:
    """Weights of optimum's decoder-with-past by node name (fp32 MatMul graphs; with
    ``quantized``, the dynamic int8 variant's MatMuls as :class:`QuantWeight`)."""
    from onnx import numpy_helper

    g = with_past.graph
    inits = {i.name: i for i in g.initializer}
    nodes = {n.name: n for n in g.node}

    def weight(node_name: str, index: int = 1) -> Any:
        if index == 1:
            return _matmul_weight(g, node_name, quantized=quantized)
        node = nodes.get(node_name)
        if node is None:
            raise GenerationGraphError(f"lean step: no node {node_name!r} (not an fp32 export)")
        src = node.input[index]
        value = numpy_helper.to_array(inits[src]) if src in inits else _constant_value(g, src)
        deq = nodes.get(node.output[0].removesuffix("_quantized") + "_DequantizeLinear")
        if quantized and deq is not None and node.op_type == "Gather":
            # an int8 embedding table: the rows DequantizeLinear would give, computed once
            scale, zp = (numpy_helper.to_array(inits[n]) for n in deq.input[1:3])
            return ((value.astype(np.int32) - zp.astype(np.int32)) * scale).astype(np.float32)
        if value.dtype != np.float32:
            raise GenerationGraphError(f"lean step: {node_name!r} weight is {value.dtype}")
        return np.asarray(value)

    w: dict[str, Any] = {
        "embed": weight("/decoder/shared/Gather", 0)
        if "/decoder/shared/Gather" in nodes
        else weight("/decoder/embed_tokens/Gather", 0),
        "final_ln": weight("/decoder/final_layer_norm/Mul_1", 0),
        "lm_head": weight("/lm_head/MatMul"),
        "eps": float(_constant_value(g, nodes["/decoder/final_layer_norm/Add"].input[1])),
    }
    scale = nodes.get("/Mul")
    w["scale"] = float(_constant_value(g, scale.input[1])) if scale is not None else None
    for i in range(n_layers):
        b = f"/decoder/block.{i}/layer"
        for x in ("q", "k", "v", "o"):
            w[f"{i}.self.{x}"] = weight(f"{b}.0/SelfAttention/{x}/MatMul")
        for x in ("q", "o"):
            w[f"{i}.cross.{x}"] = weight(f"{b}.1/EncDecAttention/{x}/MatMul")
        w[f"{i}.wi"] = weight(f"{b}.2/DenseReluDense/wi/MatMul")
        w[f"{i}.wo"] = weight(f"{b}.2/DenseReluDense/wo/MatMul")
        for j in range(3):
            w[f"{i}.ln{j}"] = weight(f"{b}.{j}/layer_norm/Mul_1", 0)
    heads, head_size = _kv_dims(next(v for v in g.input if v.name.startswith("past_key_values")))
    w["heads"], w["head_size"] = heads, head_size
    w["inner"] = int(w["0.self.q"].shape[1])  # QuantWeight has a shape too
    return w


def position_bias_table(with_past: onnx.ModelProto, *, length: int) -> np.ndarray:
    """The self-attention bias row of query position ``length - 1`` over keys 0..length-1.

    Read from optimum's own graph (its bucket arithmetic and embedding), so the values are the
    ones the Python loop adds: at past length P the step needs ``table[..., length-1-P:]``.
    """
    import onnx
    import onnxruntime as ort
    from onnx import helper

    g = with_past.graph
    prod = _producers(g)
    soft = next(
        (n for n in g.node if n.op_type == "Softmax" and "block.0/layer.0/" in n.name), None
    )
    if soft is None:
        raise GenerationGraphError("lean step: no self-attention Softmax in block 0")
    node = prod[soft.input[0]]
    while node.op_type == "Cast":
        node = prod[node.input[0]]
    bias = [x for x in node.input if prod.get(x) is None or "MatMul" not in prod[x].op_type]
    if node.op_type != "Add" or len(bias) != 1:
        raise GenerationGraphError(f"lean step: unexpected scores node {node.name!r}")
    model = onnx.ModelProto()
    model.CopyFrom(with_past)
    model.graph.output.append(helper.make_tensor_value_info(bias[0], onnx.TensorProto.FLOAT, None))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds: dict[str, np.ndarray] = {
        "input_ids": np.zeros((1, 1), np.int64),
        "encoder_attention_mask": np.ones((1, 1), np.int64),
    }
    for v in g.input:
        if v.name.startswith("past_key_values."):
            _, kind = _PAST.match(v.name).groups()[:2]  # type: ignore[union-attr]
            heads, head_size = _kv_dims(v)
            past = length - 1 if kind == "decoder" else 1
            feeds[v.name] = np.zeros((1, heads, past, head_size), np.float32)
    (table,) = sess.run([bias[0]], feeds)
    return np.ascontiguousarray(np.asarray(table, np.float32)[:1])  # [1, heads, 1, length]


def lean_step_body(
    with_past: onnx.ModelProto,
    n_layers: int,
    *,
    opset: int,
    length: int = LEAN_MAX_POSITIONS,
    fused_attention: bool = False,
) -> tuple[list[Any], list[Any]]:
    """(nodes, initializers) of one greedy step with constant shapes, for the loop body.

    The same arithmetic as optimum's decoder-with-past, node for node (RMS norm written as
    T5's Pow/ReduceMean/Add/Sqrt/Div/Mul, scores = q . k^T + bias, Softmax, probs . v), minus
    what a single-token step does not need: the shape chains (shapes are constants here), the
    causal mask (all zero for one query) and the relative-position bucket arithmetic (a slice of
    :func:`position_bias_table`). Reads ``b_tok``, ``b_self_*`` and the outer ``cross_*`` /
    ``cross_mask_bias``; writes ``b_logits`` and ``b_self_*_out``.
    """
    from onnx import helper, numpy_helper

    w = _lean_weights(with_past, n_layers, quantized=fused_attention)
    heads, hs, inner = w["heads"], w["head_size"], w["inner"]
    nodes: list[Any] = []
    inits: list[Any] = []
    count = [0]

    def name(hint: str) -> str:
        count[0] += 1
        return f"l/{hint}_{count[0]}"

    def c(value: Any, dtype: Any) -> str:
        n = name("c")
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), n))
        return n

    def op(op_type: str, inputs: list[str], out: str | None = None, **attrs: Any) -> str:
        out = out or name(op_type)
        nodes.append(helper.make_node(op_type, inputs, [out], name=name(op_type), **attrs))
        return out

    def keep(value: np.ndarray) -> str:
        n = name("w")
        inits.append(numpy_helper.from_array(value, n))
        return n

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

    def mha(inputs: list[str], cache_outputs: list[str]) -> str:
        """ORT's fused ``com.microsoft.MultiHeadAttention`` (T5: no 1/sqrt(d) scaling)."""
        att = name("mha")
        nodes.append(
            helper.make_node(
                "MultiHeadAttention",
                inputs,
                [att, *cache_outputs],
                domain=MS_DOMAIN,
                num_heads=heads,
                scale=1.0,
                name=name("MHA"),
            )
        )
        return att

    def attend(q: str, k: str, v: str, bias: str) -> str:
        scores = op("MatMul", [q, op("Transpose", [k], perm=[0, 1, 3, 2])])
        probs = op("Softmax", [op("Add", [scores, bias])], axis=-1)
        return op("Reshape", [op("MatMul", [probs, v]), merge_shape])

    table = position_bias_table(with_past, length=length)
    # every step, the first included, runs in the Loop: the past length is the iteration count
    start = op("Sub", [c([length - 1], np.int64), "b_iter"])
    self_bias = op("Slice", [c(table, np.float32), start, c([length], np.int64), c([3], np.int64)])
    h = op("Gather", [keep(w["embed"]), "b_tok"])
    if fused_attention:
        _fused_layers(h, self_bias, w, n_layers, op=op, keep=keep, name=name, nodes=nodes, mha=mha)
        return nodes, inits
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


def _fused_layers(
    h: str,
    self_bias: str,
    w: Mapping[str, Any],
    n_layers: int,
    *,
    op: Callable[..., str],
    keep: Callable[[np.ndarray], str],
    name: Callable[[str], str],
    nodes: list[Any],
    mha: Callable[[list[str], list[str]], str],
) -> str:
    """The fused step's decoder layers and lm head (from the embedded token ``h``; returns the
    logits), on ORT contrib ops with CPU kernels: each residual Add + RMS norm is one
    ``SkipSimplifiedLayerNormalization`` (it returns the sum and its norm), q/k/v one MatMul
    over the three weights side by side + ``Split``, attention ``MultiHeadAttention`` (the
    cache concatenated inside; T5: no 1/sqrt(d) scaling). The same arithmetic as the exact
    step up to the kernels' summation order, so ids can differ on a near-tie:
    ``export.backend`` ships it only when the parity gate passes."""
    from onnx import helper

    eps = float(w["eps"])
    inner = int(w["inner"])

    def mm(x: str, weight: Any, out: str | None = None) -> str:
        """x @ weight; an int8 weight as the int8 variant's graph computes it once ORT has
        fused it (x quantized per tensor on the fly: ``DynamicQuantizeMatMul``)."""
        if isinstance(weight, QuantWeight):
            args = [keep(weight.q), keep(weight.scale), keep(weight.zero_point)]
            return op("DynamicQuantizeMatMul", [x, *args], out, domain=MS_DOMAIN)
        return op("MatMul", [x, keep(weight)], out)

    split = op("Constant", [], value=_i64_tensor([inner, inner, inner]))
    # T5's lm-head scale (d_model ** -0.5 with tied embeddings) folded into the final norm's
    # weight: ORT would fuse a Mul before the lm head into a FusedMatMul, whose weight is not
    # pre-packed (the costliest kernel of the step)
    # (not for an int8 lm head: x * scale is what its dynamic quantization reads)
    final = np.asarray(w["final_ln"], np.float32)
    fold = w["scale"] is not None and not isinstance(w["lm_head"], QuantWeight)
    if fold:
        final = final * np.float32(w["scale"])

    def skip_norm(y: str, res: str, weight: np.ndarray) -> tuple[str, str]:
        """(RMS norm of res + y times ``weight``, res + y)."""
        out, total = name("sln"), name("sum")
        nodes.append(
            helper.make_node(
                "SkipSimplifiedLayerNormalization",
                [y, res, keep(weight)],
                [out, "", "", total],
                domain=MS_DOMAIN,
                epsilon=eps,
                name=name("SkipSLN"),
            )
        )
        return out, total

    x = op(
        "SimplifiedLayerNormalization",
        [h, keep(w["0.ln0"])],
        axis=-1,
        epsilon=eps,
        stash_type=1,
    )
    for i in range(n_layers):
        parts = [w[f"{i}.self.{t}"] for t in "qkv"]
        if isinstance(parts[0], QuantWeight):  # per-column scales: the columns side by side
            cols = [p.q.shape[1] for p in parts]
            qkv: Any = QuantWeight(
                np.concatenate([p.q for p in parts], axis=1),
                *(
                    np.concatenate(
                        [np.broadcast_to(p[j], (n,)) for p, n in zip(parts, cols, strict=True)]
                    )
                    for j in (1, 2)
                ),
            )
        else:
            qkv = np.concatenate(parts, axis=1)
        q, k, v = name("q"), name("k"), name("v")
        nodes.append(
            helper.make_node("Split", [mm(x, qkv), split], [q, k, v], axis=-1, name=name("S"))
        )
        att = mha(
            [q, k, v, "", "", self_bias, f"b_self_key_{i}", f"b_self_value_{i}"],
            [f"b_self_key_{i}_out", f"b_self_value_{i}_out"],
        )
        x, h = skip_norm(mm(att, w[f"{i}.self.o"]), h, w[f"{i}.ln1"])
        qf = mm(x, w[f"{i}.cross.q"])
        att = mha([qf, f"cross_key_{i}", f"cross_value_{i}", "", "", "cross_mask_bias"], [])
        x, h = skip_norm(mm(att, w[f"{i}.cross.o"]), h, w[f"{i}.ln2"])
        ff = mm(op("Relu", [mm(x, w[f"{i}.wi"])]), w[f"{i}.wo"])
        last = i == n_layers - 1
        x, h = skip_norm(ff, h, final if last else w[f"{i + 1}.ln0"])
    if w["scale"] is not None and not fold:
        x = op("Mul", [x, keep(np.asarray(w["scale"], np.float32))])
    return mm(x, w["lm_head"], "b_logits")


def _i64_tensor(values: Sequence[int]) -> Any:
    """An int64 TensorProto (a Constant node's value)."""
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(values, np.int64))


def _greedy_tail(
    eos_name: str, penalty: str | None = None, *, opset: int, trie_const: Any = None
) -> list[Any]:
    """Loop-body nodes after the logits: the keyword-slot penalty (an outer-scope tensor, when
    given), the skeleton-bank constraint (with ``trie_const``, the builder's constant maker:
    :func:`_trie_nodes`), argmax, eos filler, finished flags, continue flag."""
    from onnx import TensorProto, helper, numpy_helper

    guard = [helper.make_node("Add", ["b_logits", penalty], ["b_logits_g"])] if penalty else []
    logits = "b_logits_g" if penalty else "b_logits"
    pre: list[Any] = []
    post: list[Any] = []
    if trie_const is not None:
        pre, post, logits = _trie_nodes(
            "bt_", logits, "b_state", "b_next_raw", "b_state_out", trie_const, opset=opset
        )
    return [
        *guard,
        *pre,
        helper.make_node("ArgMax", [logits], ["b_next_raw"], axis=-1, keepdims=0),
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
        helper.make_node("Identity", ["b_next"], ["b_scan"]),
    ]


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
) -> tuple[list[Any], list[Any], list[Any]]:
    """(nodes, initializers, value infos) of the lean one-file graph's main graph (with the
    keyword-slot penalty of ``guard`` added to every step's logits).

    Every decoder step, the first included, is the lean step (past length 0 at the first): no
    optimum ``decoder_model`` in the file. The encoder runs once; the cross-attention keys and
    values are its output times optimum's own k / v weights (read from ``decoder_model``), as
    that graph computes them.
    """
    from onnx import TensorProto, helper, numpy_helper

    pasts = [i.name for i in with_past.graph.input if i.name.startswith("past_key_values.")]
    n_layers = _layers(pasts, _PAST)
    step_nodes, step_inits = lean_step_body(
        with_past, n_layers, opset=opset, fused_attention=fused_attention
    )
    w = _lean_weights(with_past, n_layers, quantized=fused_attention)
    heads, hs = w["heads"], w["head_size"]
    inits: list[Any] = []

    def const(name: str, value: Any, dtype: Any) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    enc = _encoder_graph(encoder, input_ids="input_ids", attention_mask="attention_mask")
    nodes: list[Any] = [*enc.node]
    if guard:
        nodes += _slot_penalty_nodes(const, guard, vocab=vocab, opset=opset)
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
    ]
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
                    "slot_penalty" if guard else None,
                    opset=opset,
                    trie_const=const if with_trie else None,
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

    if not trie:
        nodes += loop(False, "")
        return nodes, [*enc.initializer, *inits], list(enc.value_info)
    # The trie's ~25 nodes a step are paid only by a request that sends a trie: a call with the
    # default tables (no constraint) runs a loop without them. The body's weights are stored
    # once per loop (a subgraph's initializers are its own; outer-scope weights would not be
    # pre-packed for MatMul).
    seq = [helper.make_tensor_value_info("", TensorProto.INT64, ["batch", "length"])]

    def branch(prefix: str, with_trie: bool) -> Any:
        seq[0].name = prefix + SEQUENCES_OUTPUT
        return helper.make_graph(loop(with_trie, prefix), f"{prefix}greedy", [], list(seq))

    nodes += [
        helper.make_node("GreaterOrEqual", [TRIE_TOKENS, "zero_i64"], ["trie_valid"]),
        helper.make_node("Cast", ["trie_valid"], ["trie_valid_i"], to=TensorProto.INT64),
        helper.make_node("ReduceMax", ["trie_valid_i"], ["trie_any_i"], keepdims=0),
        helper.make_node("Cast", ["trie_any_i"], ["trie_given"], to=TensorProto.BOOL),
        helper.make_node(
            "If",
            ["trie_given"],
            [SEQUENCES_OUTPUT],
            then_branch=branch("t/", True),
            else_branch=branch("f/", False),
        ),
    ]
    return nodes, [*enc.initializer, *inits], list(enc.value_info)


def save_generation_model(model: onnx.ModelProto, path: Path) -> None:
    """Write the model (one file; protobuf's 2 GiB bound is far above t5-small)."""
    import onnx

    if model.ByteSize() >= 2**31 - 1:
        raise GenerationGraphError(f"{path}: model is over 2 GiB; one-file export impossible")
    onnx.save(model, str(path))


# ---------------------------------------------------------------------------------- running


def one_file_session(path: Path | str | bytes, *, threads: int = 1) -> Any:
    """A CPU InferenceSession of the one-file model (``threads`` intra-op threads)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    src = path if isinstance(path, bytes) else str(path)
    opts.log_severity_level = 3  # the optional inputs' defaults would warn at every load
    return ort.InferenceSession(src, sess_options=opts, providers=["CPUExecutionProvider"])


def strip_sequence(row: Sequence[int], *, eos_token_id: int) -> list[int]:
    """A ``sequences`` row in the Python loop's convention: no start token, cut before eos."""
    out: list[int] = []
    for tok in list(row)[1:]:
        if int(tok) == eos_token_id:
            break
        out.append(int(tok))
    return out


def max_length_feed(session: Any, max_new_tokens: int) -> np.ndarray:
    """``max_length`` in the dtype the graph declares (int64 for the loop, int32 for beams)."""
    declared = {i.name: i.type for i in session.get_overridable_initializers()}
    declared.update({i.name: i.type for i in session.get_inputs()})
    dtype = np.int32 if declared.get("max_length") == "tensor(int32)" else np.int64
    return np.array([max_new_tokens], dtype=dtype)


def run_greedy(
    session: Any,
    input_ids: Sequence[int],
    *,
    max_new_tokens: int,
    eos_token_id: int,
    trie: Any = None,
) -> list[int]:
    """Greedy ids of one prompt from the one-file graph (Python-loop convention), constrained
    to ``trie``'s sequences when given and the graph takes one."""
    ids = np.asarray([list(input_ids)], dtype=np.int64)
    (seq,) = session.run(
        [SEQUENCES_OUTPUT],
        {
            "input_ids": ids,
            "attention_mask": np.ones_like(ids),
            "max_length": max_length_feed(session, max_new_tokens),
            **trie_feeds(session, trie),
        },
    )
    return strip_sequence(seq[0], eos_token_id=eos_token_id)


@dataclass(frozen=True)
class GenerationParityReport:
    """Outcome of the one-file vs Python-loop gate."""

    n_prompts: int
    n_equal: int
    max_new_tokens: int
    mismatched: tuple[int, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "n_prompts": self.n_prompts,
            "n_equal": self.n_equal,
            "max_new_tokens": self.max_new_tokens,
            "mismatched": list(self.mismatched),
        }


def check_generation_parity(
    session: Any,
    reference: Any,
    input_ids: Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    prompts: Sequence[str] | None = None,
    tries: Sequence[Any] | None = None,
) -> GenerationParityReport:
    """Greedy ids of the one-file graph == ``reference.generate`` (the Python loop) on EVERY prompt.

    ``reference`` is a ``serving.decode_loop.OnnxSeq2SeqGenerator`` over the same export.
    ``tries`` (one ``serving.constrain.Trie`` or None per prompt) constrains both decoders to
    the skeleton bank, as the HTTP app and the drop-in do for a typed-role model. Raises
    :class:`GenerationParityError` naming the first differing prompts and both id lists.
    """
    if not input_ids:
        raise ValueError("check_generation_parity: no prompts")
    eos = int(reference.eos_token_id)
    bad: list[int] = []
    lines: list[str] = []
    for i, ids in enumerate(input_ids):
        trie = tries[i] if tries is not None else None
        constraint = {"allowed": trie.allowed} if trie is not None else {}
        want = reference.generate(list(ids), max_new_tokens=max_new_tokens, **constraint)
        got = run_greedy(session, ids, max_new_tokens=max_new_tokens, eos_token_id=eos, trie=trie)
        if got != want:
            bad.append(i)
            if len(lines) < 5:
                label = repr(prompts[i]) if prompts is not None else f"ids {list(ids)[:12]}"
                lines.append(f"#{i} {label}: python loop {want} vs one-file {got}")
    report = GenerationParityReport(
        len(input_ids), len(input_ids) - len(bad), max_new_tokens, tuple(bad)
    )
    if bad:
        raise GenerationParityError(
            f"one-file generator differs from the Python loop on {len(bad)} of "
            f"{len(input_ids)} prompts (max_new_tokens {max_new_tokens}): " + "; ".join(lines)
        )
    logger.info("one-file parity: %d/%d prompts equal", report.n_equal, report.n_prompts)
    return report
