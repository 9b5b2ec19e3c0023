"""Export the T5 generator to ONNX with past key/values, describe it, and gate it on parity.

We keep optimum's *separate* ``decoder_model.onnx`` and ``decoder_with_past_model.onnx`` and drop
``decoder_model_merged.onnx``: the merged file wraps both graphs in an ``If`` node on
``use_cache_branch``, which (1) the int8 quantizers handle less well than two plain graphs,
(2) needs dummy past tensors on the first step, and (3) hides the no-cache path the benchmark
measures. The cost is the decoder weights stored twice on disk.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from export.parity import ParityError
from serving.onnx_files import MERGED_DECODER_FILE, SEQ2SEQ_FILES

logger = logging.getLogger(__name__)

ONNX_FILES = SEQ2SEQ_FILES
COPIED_FILES = ("tokenizer.json", "generation_config.json")


@dataclass(frozen=True)
class ParityReport:
    """Outcome of the parity gate over ``n_prompts`` prompts."""

    n_prompts: int
    n_match: int
    match_share: float
    max_logit_diff: float
    mismatched: tuple[int, ...]
    max_new_tokens: int

    def as_metrics(self) -> dict[str, float | int]:
        return {
            "n_prompts": self.n_prompts,
            "n_match": self.n_match,
            "match_share": self.match_share,
            "max_logit_diff": self.max_logit_diff,
            "max_new_tokens": self.max_new_tokens,
        }


def load_torch_model(model_dir: Path) -> Any:
    """The trained checkpoint, in eval mode (fp32)."""
    from transformers import T5ForConditionalGeneration

    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir}/config.json: checkpoint not found (train first)")
    return T5ForConditionalGeneration.from_pretrained(str(model_dir)).eval()


def export_onnx(model: Any, model_dir: Path, out_dir: Path, *, opset: int) -> list[str]:
    """optimum export (``text2text-generation-with-past``) of ``model`` into ``out_dir``.

    Keeps encoder / decoder / decoder-with-past, copies ``tokenizer.json`` and
    ``generation_config.json`` from the checkpoint, and returns the file names written.
    """
    from optimum.exporters.onnx import onnx_export_from_model

    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_export_from_model(
        model,
        out_dir,
        opset=opset,
        task="text2text-generation-with-past",
        do_validation=False,  # our own gate below compares generations, not just one forward
    )
    for extra in (MERGED_DECODER_FILE, f"{MERGED_DECODER_FILE}_data"):
        (out_dir / extra).unlink(missing_ok=True)
    for name in ONNX_FILES:
        if not (out_dir / name).is_file():
            raise FileNotFoundError(f"{out_dir / name}: optimum did not write it")
    for name in COPIED_FILES:
        src = model_dir / name
        if not src.is_file():
            raise FileNotFoundError(f"{src}: needed next to the ONNX files")
        shutil.copy2(src, out_dir / name)
    from serving.roles import TYPED_FILES

    for name in TYPED_FILES:  # a typed-role model's lexicon, role plans and skeletons
        if (model_dir / name).is_file():
            shutil.copy2(model_dir / name, out_dir / name)
    return sorted(p.name for p in out_dir.iterdir() if p.is_file())


def describe_onnx(path: Path) -> dict[str, Any]:
    """Input / output names, shapes (int or symbolic name) and numpy dtypes of an ONNX graph."""
    import onnx
    from onnx import helper

    graph = onnx.load(str(path), load_external_data=False).graph
    init = {i.name for i in graph.initializer}

    def spec(values: Any) -> list[dict[str, Any]]:
        out = []
        for v in values:
            if v.name in init:
                continue
            t = v.type.tensor_type
            dims = [d.dim_param if d.dim_param else int(d.dim_value) for d in t.shape.dim]
            dtype = np.dtype(helper.tensor_dtype_to_np_dtype(t.elem_type)).name
            out.append({"name": v.name, "shape": dims, "dtype": dtype})
        return out

    return {"inputs": spec(graph.input), "outputs": spec(graph.output)}


def manifest_draft(
    out_dir: Path, *, opset: int, model_config: Any, max_new_tokens: int
) -> dict[str, Any]:
    """The fp32 manifest draft: files with their I/O, opset and generation settings."""
    files = {name: describe_onnx(out_dir / name) for name in ONNX_FILES}
    files.update({name: {} for name in COPIED_FILES})
    return {
        "model": "generator",
        "variant": "fp32",
        "opset": opset,
        "files": files,
        "generation": {
            "decoder_start_token_id": int(model_config.decoder_start_token_id),
            "eos_token_id": int(model_config.eos_token_id),
            "pad_token_id": int(model_config.pad_token_id),
            "max_new_tokens": int(max_new_tokens),
            "num_layers": int(model_config.num_layers),
            "num_decoder_layers": int(model_config.num_decoder_layers),
            "num_heads": int(model_config.num_heads),
            "d_kv": int(model_config.d_kv),
            "d_model": int(model_config.d_model),
            "vocab_size": int(model_config.vocab_size),
        },
        "sizes_bytes": {p.name: p.stat().st_size for p in sorted(out_dir.iterdir()) if p.is_file()},
    }


def torch_greedy_ids(
    model: Any, input_ids: Sequence[int], *, max_new_tokens: int, banned: Sequence[int] = ()
) -> list[int]:
    """PyTorch ``generate(num_beams=1, do_sample=False)`` ids, in the ONNX loop's convention.

    The decoder start token is dropped and the sequence is cut before the first eos; ``banned``
    token ids are never generated (the ONNX loop's keyword-slot guard, ``bad_words_ids`` here).
    """
    import torch

    ids = torch.tensor([list(input_ids)], dtype=torch.long)
    bad = [[int(t)] for t in banned]
    with torch.no_grad():
        seq = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            num_beams=1,
            do_sample=False,
            **({"bad_words_ids": bad} if bad else {}),
        )[0].tolist()
    eos = int(model.config.eos_token_id)
    out = []
    for tok in seq[1:]:
        if tok == eos:
            break
        out.append(int(tok))
    return out


def torch_first_step_logits(model: Any, input_ids: Sequence[int]) -> np.ndarray:
    """Logits of the first decoder position given the decoder start token."""
    import torch

    ids = torch.tensor([list(input_ids)], dtype=torch.long)
    start = torch.tensor([[int(model.config.decoder_start_token_id)]], dtype=torch.long)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), decoder_input_ids=start)
    return np.asarray(logits.logits[0, -1].numpy(), dtype=np.float32)


def check_parity(
    model: Any,
    generator: Any,
    prompts: Sequence[str],
    input_ids: Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    atol: float,
    min_match_share: float,
) -> ParityReport:
    """Greedy ids equal (share >= ``min_match_share``) and first-step logits within ``atol``.

    Raises :class:`ParityError` naming the prompts whose ids differ and the max logit diff.
    """
    from tqdm.auto import tqdm

    if not input_ids:
        raise ValueError("check_parity: no prompts")
    mismatched: list[int] = []
    max_diff = 0.0
    worst = -1
    for i, ids in enumerate(tqdm(input_ids, desc="parity")):
        ref = torch_greedy_ids(
            model, ids, max_new_tokens=max_new_tokens, banned=generator.banned_ids(ids).tolist()
        )
        got = generator.generate(ids, max_new_tokens=max_new_tokens, use_cache=True)
        if ref != got:
            mismatched.append(i)
        diff = float(
            np.max(np.abs(torch_first_step_logits(model, ids) - generator.first_step_logits(ids)))
        )
        if diff > max_diff:
            max_diff, worst = diff, i
    n = len(input_ids)
    share = (n - len(mismatched)) / n
    report = ParityReport(
        n, n - len(mismatched), share, max_diff, tuple(mismatched), max_new_tokens
    )
    problems = []
    if share < min_match_share:
        named = "; ".join(f"#{i}: {prompts[i]!r}" for i in mismatched[:10])
        more = f" (+{len(mismatched) - 10} more)" if len(mismatched) > 10 else ""
        problems.append(
            f"greedy ids match on {share:.3f} of {n} prompts < {min_match_share}; "
            f"differing prompts: {named}{more}"
        )
    if not max_diff <= atol:
        problems.append(
            f"first-step logits max abs diff {max_diff:.3g} > atol {atol} "
            f"(worst prompt #{worst}: {prompts[worst]!r})"
        )
    if problems:
        raise ParityError(
            f"ONNX/PyTorch parity gate failed (max first-step logit diff {max_diff:.3g}): "
            + " | ".join(problems)
        )
    logger.info("parity: %d/%d prompts equal, max logit diff %.3g", report.n_match, n, max_diff)
    return report
