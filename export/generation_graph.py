"""One ONNX file with the generation loop inside, around optimum's three T5 graphs.

The backend runs ``t5_small_word_problem.onnx`` with one ``session.run``; the loop that serving
drives from Python (``serving.decode_loop``) runs inside ONNX Runtime instead. The builder:

- :func:`build_loop_model`: greedy decoding in a standard ONNX ``Loop``. The encoder runs
  once; every step is the *lean step* (``export.lean_step``): optimum's decoder-with-past
  arithmetic node for node with constant shapes (exact), or the same on ORT's fused contrib ops
  (``fused_attention``, tried first by export-backend and gated like any variant; it also reads
  the dynamic int8 variant). Cross-attention keys/values are computed once, outside the loop;
  the self-attention cache is loop-carried. Graphs the lean step cannot read keep optimum's own
  body. The decoding logic around the step (keyword-slot penalty, skeleton-bank trie, argmax,
  eos) is ``export.greedy_nodes``; shared pieces are ``export.generation_common``. ORT's
  ``BeamSearch`` op, a bench-only comparison, is ``bench/beam_search_graph.py``.

``onnxruntime.transformers.convert_generation --model_type t5`` cannot be used with this stack
(its fused ``RelativePositionBias`` has no CPU kernel; without fusions its T5 re-export passes
tuple past key values that transformers 4.57 rejects). Greedy ids must equal the Python
loop's on every evaluation prompt (:func:`check_generation_parity`, run by export-backend).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from export.generation_common import (
    _LOOP,
    _PAST,
    _PRESENT,
    LOOP_IO_DOC,
    MS_DOMAIN,
    SEQUENCES_OUTPUT,
    GenerationGraphError,
    GenerationParityError,
    GenerationSettings,
    _check_encoder_io,
    _encoder_and_first_step,
    _layers,
    _load_three,
    _one_file_model,
    _prefixed,
    _rename,
    _vocab,
    dir_slot_guard,
    dir_unwritten,
)
from export.greedy_nodes import (
    TRIE_INPUTS_DOC,
    _greedy_tail,
    _loop_body_io,
    _loop_nodes,
    _slot_penalty_nodes,
    _start_token_nodes,
    _trie_nodes,
    _trie_state0_nodes,
)
from export.lean_step import (
    _build_lean_loop,
)
from serving.constrain import TRIE_DRAFT, TRIE_DRAFT_NEXT, TRIE_NEXT, TRIE_TOKENS
from serving.one_file import (
    OneFileDecoder,
    max_length_feed,
    one_file_session,
    run_greedy,
    strip_sequence,
)
from serving.roles import SKELETONS_FILE

if TYPE_CHECKING:
    import onnx

logger = logging.getLogger(__name__)

# the builders' public names, importable from here as before the split into modules (the
# runners of the built graph live in serving.one_file, the drop-in's decoder)
__all__ = [
    "LOOP_IO_DOC",
    "MS_DOMAIN",
    "SEQUENCES_OUTPUT",
    "TRIE_INPUTS_DOC",
    "GenerationGraphError",
    "GenerationParityError",
    "GenerationParityReport",
    "GenerationSettings",
    "build_loop_model",
    "check_generation_parity",
    "dir_slot_guard",
    "max_length_feed",
    "one_file_session",
    "run_greedy",
    "save_generation_model",
    "strip_sequence",
]


def build_loop_model(
    onnx_dir: Path,
    settings: GenerationSettings,
    *,
    doc: str = "",
    lean: bool = True,
    fused_attention: bool = False,
    draft: Sequence[Sequence[int]] | None = None,
) -> onnx.ModelProto:
    """The one-file generator as a standard ONNX ``Loop`` (greedy; no contrib op).

    Encoder and the first decoder step (optimum's ``decoder_model``) run once; the ``Loop`` body
    is optimum's ``decoder_with_past`` plus ``ArgMax``. Cross-attention keys/values are read from
    the outer scope (never copied per step); the self-attention cache is loop-carried. A row
    that produced eos is filled with eos; the loop stops when every row has. Same graphs and
    argmax as ``serving.decode_loop``, so the ids are the Python loop's.

    ``lean`` (default) writes the body with ``export.lean_step`` (same arithmetic, constant
    shapes, ~2.3x fewer nodes per step; ``fused_attention``: on ORT's fused contrib ops, fp32 or
    dynamic int8); graphs it cannot read fall back to optimum's body, logged. ``draft`` (with
    ``fused_attention``, fp32; token sequences such as the skeleton bank's,
    ``export.draft_loop.bank_sequences``): a single prompt without a trie decodes by draft and
    verify (``export.draft_loop``), the same ids in fewer steps.
    """
    from onnx import TensorProto, helper, numpy_helper

    encoder, decoder, with_past = _load_three(onnx_dir)
    opset = {(o.domain or ""): o.version for o in decoder.opset_import}[""]
    if opset < 15:
        raise GenerationGraphError(
            f"opset {opset} < 15: the loop graph needs Squeeze axes inputs and Shape(start, end)"
        )
    _check_encoder_io(encoder)
    if any(n.op_type == "QuantizeLinear" for n in with_past.graph.node):
        # measured with ONNX Runtime 1.32: a Loop around a QDQ body aborts the process at load
        # (a C++ assertion, no exception), so no file is written that a backend cannot open
        raise GenerationGraphError(
            f"{onnx_dir}: a static int8 (QDQ) export has no one-file form (ONNX Runtime aborts "
            "loading its decoder inside a Loop); export the fp32 or dynamic int8 variant"
        )
    presents = [o.name for o in decoder.graph.output if o.name != "logits"]
    n_layers = _layers(presents, _PRESENT)
    eos = settings.eos_token_id
    inits: list[Any] = []
    vocab = _vocab(next(o for o in decoder.graph.output if o.name == "logits"))
    guard = dir_slot_guard(onnx_dir)
    unwritten = dir_unwritten(onnx_dir, vocab=vocab, eos=eos)
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
                draft=draft if fused_attention else None,
                unwritten=unwritten,
            )
            return _assemble(
                lean_nodes,
                lean_inits,
                lean_infos,
                settings,
                opset=opset,
                ir_version=decoder.ir_version,
                contrib=fused_attention,
                step=("lean+mha+draft" if _drafts(lean_inits) else "lean+mha")
                if fused_attention
                else "lean",
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
    penalty = "slot_penalty" if guard or unwritten.size else None
    if penalty:
        nodes += _slot_penalty_nodes(const, guard, vocab=vocab, opset=opset, unwritten=unwritten)
    first_logits = "first_logits_g" if penalty else "first_logits"
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
            if penalty
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


def _drafts(inits: Sequence[Any]) -> bool:
    """Whether the built graph holds the draft loop (fp32 weights only)."""
    from export.draft_loop import DRAFT_TABLE

    return any(i.name == DRAFT_TABLE for i in inits)


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
    optional trie inputs, whose defaults constrain nothing, and for a graph with the draft loop
    the trie's two optional draft inputs, whose defaults draft nothing)."""
    from onnx import TensorProto, helper, numpy_helper

    default = numpy_helper.from_array(np.array([settings.max_new_tokens], np.int64), "max_length")
    # optional trie inputs: name -> width (the trie's branches; the draft loop's drafted tokens)
    trie_inputs: dict[str, int | str] = {TRIE_TOKENS: "branches", TRIE_NEXT: "branches"}
    if trie and _drafts(inits):
        from export.draft_loop import DRAFT_TOKENS

        trie_inputs.update({TRIE_DRAFT: DRAFT_TOKENS, TRIE_DRAFT_NEXT: DRAFT_TOKENS})
    trie_defaults = [  # -1: no constraint, nothing drafted
        numpy_helper.from_array(np.full((1, 1 if isinstance(w, str) else w), -1, np.int64), n)
        for n, w in trie_inputs.items()
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
                helper.make_tensor_value_info(name, TensorProto.INT64, ["states", width])
                for name, width in (trie_inputs.items() if trie else ())
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


def save_generation_model(model: onnx.ModelProto, path: Path) -> None:
    """Write the model (one file; protobuf's 2 GiB bound is far above t5-small)."""
    import onnx

    if model.ByteSize() >= 2**31 - 1:
        raise GenerationGraphError(f"{path}: model is over 2 GiB; one-file export impossible")
    onnx.save(model, str(path))


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

    ``reference`` is a ``serving.decode_loop.OnnxSeq2SeqGenerator`` over the same export; the
    session runs as the drop-in runs it (``serving.one_file.OneFileDecoder``), both through the
    one ``serving.decoding.TokenDecoder`` call. ``tries`` (one ``serving.constrain.Trie`` or None
    per prompt) constrains both decoders to the skeleton bank, as the HTTP app and the drop-in
    do for a typed-role model. Raises :class:`GenerationParityError` naming the first differing
    prompts and both id lists.
    """
    if not input_ids:
        raise ValueError("check_generation_parity: no prompts")
    one_file = OneFileDecoder(session, None, eos_token_id=int(reference.eos_token_id))
    bad: list[int] = []
    lines: list[str] = []
    for i, ids in enumerate(input_ids):
        trie = tries[i] if tries is not None else None
        want, got = (
            decoder.generate(list(ids), max_new_tokens=max_new_tokens, trie=trie)
            for decoder in (reference, one_file)
        )
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
