"""One ONNX file with the generation loop inside: ORT's ``BeamSearch`` around optimum's T5 graphs.

The backend runs ``t5_small_word_problem.onnx`` with one ``session.run``; the loop that serving
drives from Python (``serving.generation``) runs inside ONNX Runtime instead. We build the
``com.microsoft.BeamSearch`` node ourselves, because ``onnxruntime.transformers.
convert_generation --model_type t5`` fails with this stack (its fused ``RelativePositionBias``
has no CPU kernel; without fusions its own T5 re-export passes tuple past key values that
transformers 4.57 rejects). ``GreedySearch`` is not an option: its CPU kernel throws "Not
Implemented" for encoder-decoder models, so greedy is ``BeamSearch`` with ``num_beams=1`` and
``early_stopping=1`` (log-softmax is monotone, so the best beam is the argmax token).

Subgraphs, in ORT's "old" T5 format (``onnxruntime/contrib_ops/cpu/transformers/
subgraph_t5_encoder.cc`` / ``subgraph_t5_decoder.cc``):

- ``encoder``: optimum's ``encoder_model`` chained into ``decoder_model`` (the first decoder step,
  exactly the graph the Python loop runs first). Inputs ``encoder_input_ids``,
  ``encoder_attention_mask``, ``decoder_input_ids`` (int32, cast to int64 inside); outputs
  ``logits``, ``encoder_hidden_states``, ``present_{key,value}_self_<i>``,
  ``present_{key,value}_cross_<i>``.
- ``decoder``: optimum's ``decoder_with_past_model``. Inputs ``input_ids`` (int32, [B, 1]),
  ``encoder_attention_mask`` (int32), ``past_{key,value}_self_<i>`` for every layer, then
  ``past_{key,value}_cross_<i>``; outputs ``logits``, ``present_{key,value}_self_<i>``.

Only names, dtypes of the id inputs and static head dims change: the arithmetic is the same
nodes the three-file artifact runs, which is why greedy ids match the Python loop exactly.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import onnx

logger = logging.getLogger(__name__)

ONE_FILE_NAME = "t5_small_word_problem.onnx"
ENCODER_FILE = "encoder_model.onnx"
DECODER_FILE = "decoder_model.onnx"
DECODER_WITH_PAST_FILE = "decoder_with_past_model.onnx"
MS_DOMAIN = "com.microsoft"
SEQUENCES_OUTPUT = "sequences"

# What each graph input and output means (copied into the backend manifest).
IO_DOC: dict[str, dict[str, str]] = {
    "inputs": {
        "input_ids": "int64 [batch, seq]: prompt token ids (tokenizer.json, ending with </s>)",
        "attention_mask": "int64 [batch, seq]: 1 for prompt tokens, 0 for right padding",
        "max_length": "int32 [1]: most NEW tokens to generate (default: the artifact's "
        "max_new_tokens); the start token is not counted",
        "min_length": "int32 [1]: eos is forbidden before this many decoder tokens "
        "(counting the start token; default 0 = off)",
        "num_beams": "int32 [1]: 1 = greedy (default, the parity-gated path)",
        "num_return_sequences": "int32 [1]: sequences per prompt, <= num_beams (default 1)",
        "length_penalty": "float [1]: beam-score length exponent (default 1.0)",
        "repetition_penalty": "float [1]: 1.0 = off (default)",
    },
    "outputs": {
        SEQUENCES_OUTPUT: "int64 [batch * num_return_sequences, 1 + max_length]: decoder "
        "start token, generated ids, then </s> up to the end of the row (a row without </s> hit "
        "max_length); decode with skip_special_tokens=True",
    },
}

_PRESENT = re.compile(r"^present\.(\d+)\.(decoder|encoder)\.(key|value)$")
_PAST = re.compile(r"^past_key_values\.(\d+)\.(decoder|encoder)\.(key|value)$")


class GenerationGraphError(RuntimeError):
    """The optimum graphs do not have the inputs/outputs the BeamSearch op needs."""


class GenerationParityError(RuntimeError):
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


def encoder_subgraph(encoder: onnx.ModelProto, decoder: onnx.ModelProto) -> onnx.GraphProto:
    """Encoder + first decoder step in ORT's (old) T5 encoder-subgraph convention."""
    from onnx import TensorProto, helper

    enc_in = {i.name for i in encoder.graph.input}
    dec_in = {i.name for i in decoder.graph.input}
    if enc_in != {"input_ids", "attention_mask"} or [o.name for o in encoder.graph.output] != [
        "last_hidden_state"
    ]:
        raise GenerationGraphError(
            f"encoder: expected inputs input_ids, attention_mask and output last_hidden_state, "
            f"got {sorted(enc_in)} -> {[o.name for o in encoder.graph.output]}"
        )
    if dec_in != {"input_ids", "encoder_attention_mask", "encoder_hidden_states"}:
        raise GenerationGraphError(f"decoder: unexpected inputs {sorted(dec_in)}")
    presents = [o.name for o in decoder.graph.output if o.name != "logits"]
    n_layers = _layers(presents, _PRESENT)

    enc = _prefixed(encoder.graph, "e/")
    dec = _prefixed(decoder.graph, "d/")
    _rename(enc, {"e/input_ids": "e/ids64", "e/attention_mask": "e/mask64"})
    _rename(enc, {"e/last_hidden_state": "encoder_hidden_states"})
    dec_map = {
        "d/input_ids": "d/ids64",
        "d/encoder_attention_mask": "e/mask64",
        "d/encoder_hidden_states": "encoder_hidden_states",
        "d/logits": "logits",
    }
    for name in presents:
        match = _PRESENT.match(name)
        if match is None:
            raise GenerationGraphError(f"decoder: unexpected output {name!r}")
        dec_map[f"d/{name}"] = _kv_name("present", match)
    _rename(dec, dec_map)
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


def build_generation_model(
    onnx_dir: Path, settings: GenerationSettings, *, doc: str = ""
) -> onnx.ModelProto:
    """The one-file generator model from an optimum export directory (three ONNX files)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    paths = [onnx_dir / n for n in (ENCODER_FILE, DECODER_FILE, DECODER_WITH_PAST_FILE)]
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"{p}: optimum export file missing")
    encoder, decoder, with_past = (onnx.load(str(p)) for p in paths)
    opsets = {(o.domain or ""): o.version for o in decoder.opset_import}
    for other in (encoder, with_past):
        other_ops = {(o.domain or ""): o.version for o in other.opset_import}
        if other_ops.get("") != opsets.get(""):
            raise GenerationGraphError(f"opsets differ between the optimum files: {other_ops}")
    enc_g = encoder_subgraph(encoder, decoder)
    dec_g = decoder_subgraph(with_past)
    vocab = _vocab(dec_g.output[0])

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
            "",  # vocab_mask
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
        nodes, "t5 word problem generation", inputs, outputs, initializer=defaults
    )
    model = helper.make_model(
        graph,
        producer_name="ludora-ml export.generation_graph",
        opset_imports=[helper.make_opsetid("", opsets[""]), helper.make_opsetid(MS_DOMAIN, 1)],
        ir_version=decoder.ir_version,
    )
    model.doc_string = doc or "T5 word-problem generator: BeamSearch (num_beams=1: greedy)"
    meta = {
        "decoder_start_token_id": settings.decoder_start_token_id,
        "eos_token_id": settings.eos_token_id,
        "pad_token_id": settings.pad_token_id,
        "max_new_tokens": settings.max_new_tokens,
        "vocab_size": vocab,
    }
    onnx.helper.set_model_props(model, {k: str(v) for k, v in meta.items()})
    logger.info("built one-file generator: vocab %d, opset %d", vocab, opsets[""])
    return model


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
    return ort.InferenceSession(src, sess_options=opts, providers=["CPUExecutionProvider"])


def strip_sequence(row: Sequence[int], *, eos_token_id: int) -> list[int]:
    """A ``sequences`` row in the Python loop's convention: no start token, cut before eos."""
    out: list[int] = []
    for tok in list(row)[1:]:
        if int(tok) == eos_token_id:
            break
        out.append(int(tok))
    return out


def run_greedy(
    session: Any, input_ids: Sequence[int], *, max_new_tokens: int, eos_token_id: int
) -> list[int]:
    """Greedy ids of one prompt from the one-file graph (Python-loop convention)."""
    ids = np.asarray([list(input_ids)], dtype=np.int64)
    (seq,) = session.run(
        [SEQUENCES_OUTPUT],
        {
            "input_ids": ids,
            "attention_mask": np.ones_like(ids),
            "max_length": np.array([max_new_tokens], dtype=np.int32),
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
) -> GenerationParityReport:
    """Greedy ids of the one-file graph == ``reference.generate`` (the Python loop) on EVERY prompt.

    ``reference`` is a ``serving.generation.OnnxSeq2SeqGenerator`` over the same export. Raises
    :class:`GenerationParityError` naming the first differing prompts and both id lists.
    """
    if not input_ids:
        raise ValueError("check_generation_parity: no prompts")
    eos = int(reference.eos_token_id)
    bad: list[int] = []
    lines: list[str] = []
    for i, ids in enumerate(input_ids):
        want = reference.generate(list(ids), max_new_tokens=max_new_tokens)
        got = run_greedy(session, ids, max_new_tokens=max_new_tokens, eos_token_id=eos)
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
