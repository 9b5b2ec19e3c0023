"""The lean decoder step of the one-file generator: optimum's decoder-with-past arithmetic with
constant shapes (exact), or on ORT's fused contrib ops (fused; fp32 or the dynamic int8
variant's weights), and the main graph of the loop model built around it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from export.generation_common import (
    _PAST,
    MS_DOMAIN,
    SEQUENCES_OUTPUT,
    GenerationGraphError,
    GenerationSettings,
    _constant_value,
    _encoder_graph,
    _kv_dims,
    _layers,
    _producers,
)
from export.greedy_nodes import (
    _greedy_tail,
    _loop_body_io,
    _loop_nodes,
    _slot_penalty_nodes,
    _start_token_nodes,
    _trie_state0_nodes,
)
from serving.constrain import TRIE_TOKENS

if TYPE_CHECKING:
    import onnx

logger = logging.getLogger(__name__)

LEAN_MAX_POSITIONS = 1024  # longest decoder row the lean step's position-bias table covers
ATTENTION_TOTAL = "gqa_total"  # int32 [steps, 1]: row i = i + 1, keys at step i (its own included)
ATTENTION_PAST = "gqa_past"  # int32 [steps, batch]: row i = i, each row's past length at step i
FIRST_QKV = "first_qkv"  # float32 [vocab, 3 * inner]: layer 0's packed q/k/v of each token
FIRST_QKV_MAX_BYTES = 16 * 2**20  # a larger table (t5-small: 197 MB) is not worth its size


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
    from onnx import helper

    w = _lean_weights(with_past, n_layers, quantized=fused_attention)
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


def _matmul(
    op: Callable[..., str], keep: Callable[[np.ndarray], str], x: str, weight: Any, out: str | None
) -> str:
    """x @ weight; an int8 weight as the int8 variant's graph computes it once ORT has fused it
    (x quantized per tensor on the fly: ``DynamicQuantizeMatMul``)."""
    if isinstance(weight, QuantWeight):
        args = [keep(weight.q), keep(weight.scale), keep(weight.zero_point)]
        return op("DynamicQuantizeMatMul", [x, *args], out, domain=MS_DOMAIN)
    return op("MatMul", [x, keep(weight)], out)


def _qkv_weight(w: Mapping[str, Any], i: int) -> Any:
    """Layer ``i``'s self-attention q/k/v weights side by side (one MatMul for the three)."""
    parts = [w[f"{i}.self.{t}"] for t in "qkv"]
    if not isinstance(parts[0], QuantWeight):
        return np.concatenate(parts, axis=1)
    cols = [p.q.shape[1] for p in parts]  # per-column scales: the columns side by side
    return QuantWeight(
        np.concatenate([p.q for p in parts], axis=1),
        *(
            np.concatenate([np.broadcast_to(p[j], (n,)) for p, n in zip(parts, cols, strict=True)])
            for j in (1, 2)
        ),
    )


def uses_first_qkv_table(w: Mapping[str, Any]) -> bool:
    """Whether the fused step reads layer 0's q/k/v from :func:`first_qkv_table` (its float32
    ``vocab x 3 x inner`` values fit ``FIRST_QKV_MAX_BYTES``; 2.4 MB for the pipeline's model)."""
    return len(w["embed"]) * 3 * int(w["inner"]) * 4 <= FIRST_QKV_MAX_BYTES


def first_qkv_table(w: Mapping[str, Any], *, opset: int) -> np.ndarray:
    """Layer 0's packed q/k/v of every token, [vocab, 3 * inner]: the RMS norm of its embedding
    times the q/k/v weights, which depend on the token alone.

    The fused step reads one row a step (a ``Gather``) instead of running the norm and the
    MatMul. Each row is computed by ORT's own kernels on a one-token input, the shape a step
    has at batch 1, so the values are the ones the step would compute there (int8: quantized
    per token; at batch > 1 the step's dynamic quantization would span the batch's rows).
    """
    import onnx
    import onnxruntime as ort
    from onnx import helper

    b = _Builder("t/")
    x = b.op(
        "SimplifiedLayerNormalization",
        ["h", b.keep(np.asarray(w["0.ln0"], np.float32))],
        axis=-1,
        epsilon=float(w["eps"]),
        stash_type=1,
    )
    _matmul(b.op, b.keep, x, _qkv_weight(w, 0), "qkv")
    embed = np.asarray(w["embed"], np.float32)
    graph = helper.make_graph(
        b.nodes,
        "first q/k/v",
        [helper.make_tensor_value_info("h", onnx.TensorProto.FLOAT, [1, 1, embed.shape[1]])],
        [helper.make_tensor_value_info("qkv", onnx.TensorProto.FLOAT, None)],
        initializer=b.inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid(MS_DOMAIN, 1)]
    )
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    rows = [sess.run(["qkv"], {"h": embed[t][None, None]})[0][0, 0] for t in range(len(embed))]
    return np.ascontiguousarray(np.stack(rows), dtype=np.float32)


def _attention_length_nodes(const: Callable[[str, Any, Any], str]) -> list[Any]:
    """Main-graph nodes of the fused step's GroupQueryAttention length tables (int32, one row
    a step: ``ATTENTION_TOTAL`` and ``ATTENTION_PAST``), from the Loop's ``trips`` and the
    outer ``ids_shape`` ([batch]; every row has decoded as many tokens at a step)."""
    from onnx import TensorProto, helper

    axis1 = const("gqa_axis1", [1], np.int64)
    return [
        helper.make_node(
            "Range",
            [const("gqa_zero", 0, np.int64), "trips", const("gqa_one", 1, np.int64)],
            ["gqa_steps"],
        ),
        helper.make_node("Cast", ["gqa_steps"], ["gqa_steps32"], to=TensorProto.INT32),
        helper.make_node("Unsqueeze", ["gqa_steps32", axis1], ["gqa_col"]),
        helper.make_node("Add", ["gqa_col", const("gqa_one32", 1, np.int32)], [ATTENTION_TOTAL]),
        helper.make_node("Concat", [axis1, "ids_shape"], ["gqa_past_shape"], axis=0),
        helper.make_node("Expand", ["gqa_col", "gqa_past_shape"], [ATTENTION_PAST]),
    ]


def _fused_layers(
    h: str,
    first_qkv: str | None,
    self_bias: str,
    lengths: tuple[str, str],
    w: Mapping[str, Any],
    n_layers: int,
    *,
    op: Callable[..., str],
    keep: Callable[[np.ndarray], str],
    name: Callable[[str], str],
    nodes: list[Any],
    mha: Callable[[list[str], list[str]], str],
) -> str:
    """The fused step's decoder layers and lm head (from the embedded token ``h`` and layer 0's
    packed q/k/v ``first_qkv``, :func:`first_qkv_table`'s row, or None: computed from ``h``;
    returns the logits), on ORT contrib ops with CPU kernels: each residual Add + RMS norm is one
    ``SkipSimplifiedLayerNormalization`` (it returns the sum and its norm), q/k/v one MatMul
    over the three weights side by side, self-attention ``GroupQueryAttention`` on that packed
    q/k/v (as many key/value heads as query heads; the cache concatenated inside; ``lengths``:
    its total and per-row past lengths), cross-attention ``MultiHeadAttention`` (T5: no
    1/sqrt(d) scaling). GroupQueryAttention reads the packed q/k/v where MultiHeadAttention
    needs a ``Split`` first, and its kernel costs less a step (8.2 vs 9.9 us with its q/k/v
    MatMul and bias slice, at 4 x 24 heads, 44 steps). The same arithmetic as the exact
    step up to the kernels' summation order, so ids can differ on a near-tie:
    ``export.backend`` ships it only when the parity gate passes."""
    from onnx import helper

    eps = float(w["eps"])
    heads = int(w["heads"])

    def mm(x: str, weight: Any, out: str | None = None) -> str:
        """x @ weight (:func:`_matmul`)."""
        return _matmul(op, keep, x, weight, out)

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

    x = ""  # layer 0's norm: only when its q/k/v are not a row of the table
    if first_qkv is None:
        x = op(
            "SimplifiedLayerNormalization",
            [h, keep(w["0.ln0"])],
            axis=-1,
            epsilon=eps,
            stash_type=1,
        )
    for i in range(n_layers):
        qkv = first_qkv if i == 0 and first_qkv is not None else mm(x, _qkv_weight(w, i))
        att = name("gqa")
        nodes.append(
            helper.make_node(
                "GroupQueryAttention",
                [
                    qkv,
                    "",
                    "",
                    f"b_self_key_{i}",
                    f"b_self_value_{i}",
                    lengths[1],
                    lengths[0],
                    "",
                    "",
                    "",
                    self_bias,
                ],
                [att, f"b_self_key_{i}_out", f"b_self_value_{i}_out"],
                domain=MS_DOMAIN,
                num_heads=heads,
                kv_num_heads=heads,
                scale=1.0,
                name=name("GQA"),
            )
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
