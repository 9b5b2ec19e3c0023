"""What the one-file generator builders share: names, settings, errors, optimum's three graphs
read and renamed, and small node helpers (``export.generation_graph`` assembles the graph,
``export.greedy_nodes`` writes the decoding logic, ``export.lean_step`` the decoder step)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from export.parity import ParityError
from serving.one_file import SEQUENCES_OUTPUT
from serving.onnx_files import DECODER_FILE, DECODER_WITH_PAST_FILE, ENCODER_FILE

if TYPE_CHECKING:
    import onnx

    from serving.constrain import SkeletonBank

logger = logging.getLogger(__name__)

MS_DOMAIN = "com.microsoft"

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


def dir_bank(model_dir: Path, *, eos: int) -> SkeletonBank | None:
    """The skeleton bank of a typed-role model directory, its targets encoded as serving and
    the trie encode them (the directory's tokenizer, eos appended); None without
    ``skeletons.json``."""
    from tokenizers import Tokenizer

    from serving.constrain import load_bank
    from serving.decode_loop import TOKENIZER_FILE
    from serving.decoding import encode_prompt
    from serving.roles import SKELETONS_FILE

    if not (Path(model_dir) / SKELETONS_FILE).is_file():
        return None
    tokenizer = Tokenizer.from_file(str(Path(model_dir) / TOKENIZER_FILE))
    return load_bank(Path(model_dir), lambda text: encode_prompt(tokenizer, text, eos))


def dir_unwritten(onnx_dir: Path, *, vocab: int, eos: int) -> np.ndarray:
    """``serving.constrain.unwritten_ids`` of the model in ``onnx_dir`` (none without a
    tokenizer or a skeleton bank): the one-file graph leaves out the tokens
    ``serving.decode_loop`` bans."""
    from serving.constrain import unwritten_ids
    from serving.decode_loop import TOKENIZER_FILE

    if not (Path(onnx_dir) / TOKENIZER_FILE).is_file():
        return np.zeros(0, dtype=np.int64)
    return unwritten_ids(dir_bank(onnx_dir, eos=eos), vocab)


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
