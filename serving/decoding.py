"""One interface for the generator's two decoders, and the rules they share.

The HTTP app decodes with ``serving.decode_loop.OnnxSeq2SeqGenerator`` (optimum's three ONNX files,
a Python loop that can sample); the backend's drop-in with ``serving.one_file.OneFileDecoder``
(the one ONNX file ``export.generation_graph`` builds, its greedy loop inside the graph). Both are
a :class:`TokenDecoder`, so ``serving.generator.GeneratorModel`` (prompt, retries, rendering and
checks) serves both, and their greedy ids are equal (export-backend's parity gate, and the tests).
Both encode, decode and bound their arguments with the functions here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypedDict, Unpack

import numpy as np

if TYPE_CHECKING:
    from serving.constrain import Trie

MAX_NEW_TOKENS_LIMIT = 512
MAX_INPUT_TOKENS = 1024


class Sampling(TypedDict, total=False):
    """How a step draws its token: greedy (argmax) unless ``do_sample``; then a draw from the
    temperature / top-k / top-p filtered distribution with ``numpy.random.default_rng(seed)``."""

    do_sample: bool
    temperature: float
    top_k: int
    top_p: float
    seed: int | None


class TokenDecoder(Protocol):
    """Prompt ids -> generated ids (no start token, cut before eos), greedy unless sampled.

    ``trie`` (``serving.constrain``) confines the output to a skeleton bank's sequences; a
    decoder that cannot sample raises ``ValueError`` for ``do_sample=True``.
    """

    eos_token_id: int

    def encode(self, prompt: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def generate(
        self,
        input_ids: Sequence[int] | str,
        *,
        max_new_tokens: int | None = None,
        trie: Trie | None = None,
        **sampling: Unpack[Sampling],
    ) -> list[int]: ...

    def generate_text(self, prompt: str, **kwargs: Any) -> str: ...


def check_sampling_args(
    *, max_new_tokens: int, temperature: float, top_k: int, top_p: float
) -> None:
    """ValueError naming the argument and its allowed range."""
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int | np.integer):
        raise ValueError(f"max_new_tokens: expected an integer, got {max_new_tokens!r}")
    if not 1 <= max_new_tokens <= MAX_NEW_TOKENS_LIMIT:
        raise ValueError(
            f"max_new_tokens: must be in [1, {MAX_NEW_TOKENS_LIMIT}], got {max_new_tokens}"
        )
    if not (isinstance(temperature, int | float) and np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature: must be a finite number > 0, got {temperature!r}")
    if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer) or top_k < 0:
        raise ValueError(f"top_k: must be an integer >= 0 (0 = off), got {top_k!r}")
    if not (isinstance(top_p, int | float) and 0.0 < top_p <= 1.0):
        raise ValueError(f"top_p: must be in (0, 1], got {top_p!r}")


def encode_prompt(tokenizer: Any, prompt: str, eos_token_id: int) -> list[int]:
    """Prompt -> ids ending with one eos (same rule as training's ``encode_text``)."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("prompt: must be a non-empty string")
    ids = list(tokenizer.encode(prompt).ids)
    if not ids or ids[-1] != eos_token_id:
        ids.append(eos_token_id)
    return ids


def decode_ids(tokenizer: Any, ids: Sequence[int]) -> str:
    """Token ids -> text without special tokens."""
    return str(tokenizer.decode(list(ids), skip_special_tokens=True)).strip()


def prompt_array(input_ids: Sequence[int]) -> np.ndarray:
    """[1, n] int64 encoder input, bounded (ValueError naming ``input_ids``)."""
    ids = list(input_ids)
    if not ids:
        raise ValueError("input_ids: must not be empty")
    if len(ids) > MAX_INPUT_TOKENS:
        raise ValueError(f"input_ids: at most {MAX_INPUT_TOKENS} tokens, got {len(ids)}")
    arr = np.asarray(ids, dtype=np.int64)
    if arr.ndim != 1:
        raise ValueError("input_ids: expected a flat sequence of token ids")
    return arr[None, :]
