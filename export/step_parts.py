"""What the lean decoder step is built from: optimum's decoder-with-past weights read by node name
(fp32, or the dynamic int8 variant's as :class:`QuantWeight`), its relative-position bias table
computed by ORT on that graph, and the builder the step's nodes are written with.

Kept apart from the step itself (``export.lean_step``) and its fused form
(``export.fused_step``), which both read these."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from export.generation_common import (
    _PAST,
    GenerationGraphError,
    _constant_value,
    _kv_dims,
    _producers,
)

if TYPE_CHECKING:
    import onnx


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


class _Builder:
    """The nodes and initializers of a graph being written, each name unique (``prefix`` + hint
    + a counter)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.count = 0

    def name(self, hint: str) -> str:
        """A fresh name."""
        self.count += 1
        return f"{self.prefix}{hint}_{self.count}"

    def const(self, value: Any, dtype: Any) -> str:
        """An initializer holding ``value`` as ``dtype``."""
        from onnx import numpy_helper

        n = self.name("c")
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), n))
        return n

    def op(self, op_type: str, inputs: list[str], out: str | None = None, **attrs: Any) -> str:
        """One node; returns its (only) output."""
        from onnx import helper

        out = out or self.name(op_type)
        self.nodes.append(
            helper.make_node(op_type, inputs, [out], name=self.name(op_type), **attrs)
        )
        return out

    def mha(self, inputs: list[str], cache_outputs: list[str], *, heads: int) -> str:
        """ORT's fused ``com.microsoft.MultiHeadAttention`` over ``inputs`` (T5: no 1/sqrt(d)
        scaling); returns its attention output."""
        from onnx import helper

        from export.generation_common import MS_DOMAIN

        att = self.name("mha")
        self.nodes.append(
            helper.make_node(
                "MultiHeadAttention",
                inputs,
                [att, *cache_outputs],
                domain=MS_DOMAIN,
                num_heads=heads,
                scale=1.0,
                name=self.name("MHA"),
            )
        )
        return att

    def keep(self, value: np.ndarray) -> str:
        """An initializer holding the weight ``value`` as it is."""
        from onnx import numpy_helper

        n = self.name("w")
        self.inits.append(numpy_helper.from_array(value, n))
        return n


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
