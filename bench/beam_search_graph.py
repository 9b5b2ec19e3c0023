"""ORT's ``com.microsoft.BeamSearch`` op around optimum's T5 graphs: a bench-only comparison
(the product ships ``export.generation_graph.build_loop_model``; docs/benchmarks.md shows the
op slower than the Loop at batch 1, as it re-gathers the past by beam every step).

The optimum graphs renamed to the op's conventions (``onnxruntime/contrib_ops/cpu/transformers/
subgraph_t5_encoder.cc`` / ``subgraph_t5_decoder.cc``, "old" encoder format: encoder + first
decoder step). ``GreedySearch``'s CPU kernel throws "Not Implemented" for encoder-decoder models,
so greedy is ``num_beams=1``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

# export's graph helpers, named through their module: the product's internals, borrowed here
from export import generation_common as common
from export.greedy_nodes import (
    _slot_penalty_nodes,
)

if TYPE_CHECKING:
    import onnx

logger = logging.getLogger(__name__)

BEAM_IO_DOC: dict[str, dict[str, str]] = {
    "inputs": {
        **common.LOOP_IO_DOC["inputs"],
        "max_length": "int32 [1], optional: most NEW tokens (default: max_new_tokens)",
        "min_length": "int32 [1], optional: eos forbidden before this many decoder tokens "
        "(counting the start token; default 0 = off)",
        "num_beams": "int32 [1], optional: 1 = greedy (default, the parity-gated path)",
        "num_return_sequences": "int32 [1], optional: sequences per prompt, <= num_beams",
        "length_penalty": "float [1], optional: beam-score length exponent (default 1.0)",
        "repetition_penalty": "float [1], optional: 1.0 = off (default)",
    },
    "outputs": {
        common.SEQUENCES_OUTPUT: (
            "int64 [batch * num_return_sequences, 1 + max_length]: as the loop's"
        ),
    },
}


def encoder_subgraph(encoder: onnx.ModelProto, decoder: onnx.ModelProto) -> onnx.GraphProto:
    """Encoder + first decoder step in ORT's (old) T5 encoder-subgraph convention."""
    from onnx import TensorProto, helper

    common._check_encoder_io(encoder)
    dec_in = {i.name for i in decoder.graph.input}
    if dec_in != {"input_ids", "encoder_attention_mask", "encoder_hidden_states"}:
        raise common.GenerationGraphError(f"decoder: unexpected inputs {sorted(dec_in)}")
    presents = [o.name for o in decoder.graph.output if o.name != "logits"]
    n_layers = common._layers(presents, common._PRESENT)

    enc, dec = common._encoder_and_first_step(encoder, decoder, common._BEAM)
    dec_out = {o.name: o for o in dec.output}
    outputs = [dec_out["logits"], next(iter(enc.output))]
    for kind in ("self", "cross"):
        for i in range(n_layers):
            outputs += [dec_out[f"present_key_{kind}_{i}"], dec_out[f"present_value_{kind}_{i}"]]
    heads, head_size = common._kv_dims(outputs[2])
    for o in outputs[2:]:
        common._static_dims(o, {1: heads, 3: head_size})
    common._static_dims(outputs[0], {1: 1})
    nodes = [
        common._cast("encoder_input_ids", "e/ids64", TensorProto.INT64),
        common._cast("encoder_attention_mask", "e/mask64", TensorProto.INT64),
        common._cast("decoder_input_ids", "d/ids64", TensorProto.INT64),
        *enc.node,
        *dec.node,
    ]
    return helper.make_graph(
        nodes,
        "t5 encoder and decoder init",
        [
            common._int32_input("encoder_input_ids", ["batch", "encode_sequence_length"]),
            common._int32_input("encoder_attention_mask", ["batch", "encode_sequence_length"]),
            common._int32_input("decoder_input_ids", ["batch", 1]),
        ],
        outputs,
        initializer=[*enc.initializer, *dec.initializer],
        value_info=[*enc.value_info, *dec.value_info],
    )


def decoder_subgraph(decoder_with_past: onnx.ModelProto) -> onnx.GraphProto:
    """optimum's decoder-with-past in ORT's T5 decoder-subgraph convention."""
    from onnx import TensorProto, helper

    g = common._prefixed(decoder_with_past.graph, "p/")
    in_names = [i.name[2:] for i in g.input]
    pasts = [n for n in in_names if n.startswith("past_key_values.")]
    if set(in_names) - set(pasts) != {"input_ids", "encoder_attention_mask"}:
        raise common.GenerationGraphError(f"decoder_with_past: unexpected inputs {in_names}")
    n_layers = common._layers(pasts, common._PAST)
    mapping = {
        "p/input_ids": "p/ids64",
        "p/encoder_attention_mask": "p/mask64",
        "p/logits": "logits",
    }
    for name in pasts:
        match = common._PAST.match(name)
        if match is None:  # pragma: no cover - filtered by _layers
            raise common.GenerationGraphError(f"decoder_with_past: unexpected input {name!r}")
        mapping[f"p/{name}"] = common._kv_name("past", match)
    for o in g.output:
        match = common._PRESENT.match(o.name[2:])
        if match:
            if match.group(2) != "decoder":
                raise common.GenerationGraphError(
                    f"decoder_with_past: unexpected output {o.name[2:]}"
                )
            mapping[o.name] = common._kv_name("present", match)
    common._rename(g, mapping)
    by_in = {i.name: i for i in g.input}
    by_out = {o.name: o for o in g.output}
    past_inputs = []
    for kind in ("self", "cross"):
        for i in range(n_layers):
            past_inputs += [by_in[f"past_key_{kind}_{i}"], by_in[f"past_value_{kind}_{i}"]]
    outputs = [by_out["logits"]]
    for i in range(n_layers):
        outputs += [by_out[f"present_key_self_{i}"], by_out[f"present_value_self_{i}"]]
    heads, head_size = common._kv_dims(past_inputs[0])
    for v in [*past_inputs, *outputs[1:]]:
        common._static_dims(v, {1: heads, 3: head_size})
    common._static_dims(outputs[0], {1: 1})
    nodes = [
        common._cast("input_ids", "p/ids64", TensorProto.INT64),
        common._cast("encoder_attention_mask", "p/mask64", TensorProto.INT64),
        *g.node,
    ]
    return helper.make_graph(
        nodes,
        "t5 decoder",
        [
            # dim 1 == 1 tells ORT to feed only the last token (not the whole sequence).
            common._int32_input("input_ids", ["batch", 1]),
            common._int32_input("encoder_attention_mask", ["batch", "encode_sequence_length"]),
            *past_inputs,
        ],
        outputs,
        initializer=list(g.initializer),
        value_info=list(g.value_info),
    )


def build_beam_search_model(
    onnx_dir: Path, settings: common.GenerationSettings, *, doc: str = ""
) -> onnx.ModelProto:
    """The one-file generator model from an optimum export directory (three ONNX files)."""
    from onnx import TensorProto, helper, numpy_helper

    encoder, decoder, with_past = common._load_three(onnx_dir)
    opsets = {(o.domain or ""): o.version for o in decoder.opset_import}
    enc_g = encoder_subgraph(encoder, decoder)
    dec_g = decoder_subgraph(with_past)
    vocab = common._vocab(dec_g.output[0])
    guard = common.dir_slot_guard(onnx_dir)
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
            common._reduce_node(
                "ReduceMin", "slot_banned", "sg_banned_all", axis=0, const=const, opset=opsets[""]
            ),
            helper.make_node("Sub", ["sg_one", "sg_banned_all"], ["sg_allowed"]),
            common._cast("sg_allowed", "sg_vocab_mask", TensorProto.INT32),
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
        domain=common.MS_DOMAIN,
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
        common._cast("input_ids", "input_ids32", TensorProto.INT32),
        common._cast("attention_mask", "attention_mask32", TensorProto.INT32),
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
        common._cast("sequences_cut", common.SEQUENCES_OUTPUT, TensorProto.INT64),
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
            common.SEQUENCES_OUTPUT, TensorProto.INT64, ["batch_x_sequences", "total_length"]
        )
    ]
    graph = helper.make_graph(
        nodes, "t5 word problem generation", inputs, outputs, initializer=[*defaults, *guard_inits]
    )
    model = common._one_file_model(
        graph,
        [helper.make_opsetid("", opsets[""]), helper.make_opsetid(common.MS_DOMAIN, 1)],
        ir_version=decoder.ir_version,
        doc=doc or "T5 word-problem generator: BeamSearch (num_beams=1: greedy)",
        settings=settings,
        vocab=vocab,
    )
    logger.info("built one-file generator: vocab %d, opset %d", vocab, opsets[""])
    return model
