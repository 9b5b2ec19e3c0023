"""The lean step's fused form on ORT contrib ops with CPU kernels: its decoder layers
(``SkipSimplifiedLayerNormalization``, ``GroupQueryAttention``, ``MultiHeadAttention``,
``DynamicQuantizeMatMul`` for the int8 variant's weights), the main-graph length tables its
attention reads, and layer 0's q/k/v token table (``FIRST_QKV``), stored once beside the loop."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from export.generation_common import MS_DOMAIN
from export.step_parts import QuantWeight, _Builder

ATTENTION_TOTAL = "gqa_total"  # int32 [steps, 1]: row i = i + 1, keys at step i (its own included)
ATTENTION_PAST = "gqa_past"  # int32 [steps, batch]: row i = i, each row's past length at step i
FIRST_QKV = "first_qkv"  # float32 [vocab, 3 * inner]: layer 0's packed q/k/v of each token
FIRST_QKV_MAX_BYTES = 16 * 2**20  # a larger table (t5-small: 197 MB) is not worth its size


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


def narrowed_weights(w: Mapping[str, Any], columns: np.ndarray | None) -> dict[str, Any]:
    """``w`` with its lm head cut to ``columns`` (``export.greedy_nodes.written_columns``; an
    int8 head's per-column scales and zero points with it), or ``w`` as it is for None.

    The fused step's logits are then those columns only: at batch 32 the lm head and its
    ArgMax cost ~480 us of a ~2 ms step over the pipeline's 2,110 tokens, ~240 us over the
    950 columns (``docs/benchmarks.md``)."""
    out = dict(w)
    if columns is None:
        return out
    head = w["lm_head"]
    if isinstance(head, QuantWeight):
        width = head.q.shape[1]

        def cut(a: np.ndarray) -> np.ndarray:
            """A per-column scale or zero point cut with the columns; a per-tensor one kept."""
            a = np.asarray(a)
            return np.ascontiguousarray(a[..., columns]) if a.size == width else a

        q = np.ascontiguousarray(head.q[:, columns])
        out["lm_head"] = QuantWeight(q, cut(head.scale), cut(head.zero_point))
    else:
        out["lm_head"] = np.ascontiguousarray(np.asarray(head)[:, columns])
    return out


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
    cross_bias: str = "cross_mask_bias",
) -> str:
    """The fused step's decoder layers and lm head (from the embedded token ``h`` and layer 0's
    packed q/k/v ``first_qkv``, :func:`first_qkv_table`'s row, or None: computed from ``h``;
    returns the logits), on ORT contrib ops with CPU kernels: each residual Add + RMS norm is one
    ``SkipSimplifiedLayerNormalization`` (it returns the sum and its norm), q/k/v one MatMul
    over the three weights side by side, self-attention ``GroupQueryAttention`` on that packed
    q/k/v (as many key/value heads as query heads; the cache concatenated inside; ``lengths``:
    its total and per-row past lengths), cross-attention ``MultiHeadAttention`` (T5: no
    1/sqrt(d) scaling; ``cross_bias``: its mask bias, one row per query token).
    GroupQueryAttention reads the packed q/k/v where MultiHeadAttention
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
        att = mha([qf, f"cross_key_{i}", f"cross_value_{i}", "", "", cross_bias], [])
        x, h = skip_norm(mm(att, w[f"{i}.cross.o"]), h, w[f"{i}.ln2"])
        ff = mm(op("Relu", [mm(x, w[f"{i}.wi"])]), w[f"{i}.wo"])
        last = i == n_layers - 1
        x, h = skip_norm(ff, h, final if last else w[f"{i + 1}.ln0"])
    if w["scale"] is not None and not fold:
        x = op("Mul", [x, keep(np.asarray(w["scale"], np.float32))])
    return mm(x, w["lm_head"], "b_logits")
