"""The backend's one-file generator graph as a ``serving.decoding.TokenDecoder``.

``export.generation_graph`` builds the graph (the greedy loop inside one ONNX file, the skeleton
trie as optional inputs); this module runs it, with the Python loop's conventions for ids, so the
drop-in and the HTTP app generate through the same ``serving.generator.GeneratorModel``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Unpack

import numpy as np

from serving.constrain import trie_feeds
from serving.decoding import (
    Sampling,
    check_sampling_args,
    decode_ids,
    encode_prompt,
    prompt_array,
)

if TYPE_CHECKING:
    from serving.constrain import Trie

SEQUENCES_OUTPUT = "sequences"
"""The graph's output: [batch, 1 + new tokens], the decoder start token first."""


def one_file_session(path: Path | str | bytes, *, threads: int = 1) -> Any:
    """A CPU InferenceSession of a backend graph (``threads`` intra-op threads)."""
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
    trie: Trie | None = None,
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


class OneFileDecoder:
    """:class:`TokenDecoder` over the one-file graph: greedy only (its loop has no sampler)."""

    def __init__(
        self, session: Any, tokenizer: Any, *, eos_token_id: int, default_max_new_tokens: int = 64
    ) -> None:
        self.session = session
        self.tokenizer = tokenizer
        self.eos_token_id = int(eos_token_id)
        self.default_max_new_tokens = int(default_max_new_tokens)

    def encode(self, prompt: str) -> list[int]:
        """Prompt -> ids ending with one eos."""
        return encode_prompt(self.tokenizer, prompt, self.eos_token_id)

    def decode(self, ids: Sequence[int]) -> str:
        """Token ids -> text without special tokens."""
        return decode_ids(self.tokenizer, ids)

    def generate(
        self,
        input_ids: Sequence[int] | str,
        *,
        max_new_tokens: int | None = None,
        trie: Trie | None = None,
        **sampling: Unpack[Sampling],
    ) -> list[int]:
        """Greedy ids of one graph run; the other sampling arguments are checked like the
        Python loop's and otherwise unused."""
        if sampling.get("do_sample"):
            raise ValueError("do_sample: the one-file graph decodes greedily only")
        n_new = self.default_max_new_tokens if max_new_tokens is None else max_new_tokens
        check_sampling_args(
            max_new_tokens=n_new,
            temperature=sampling.get("temperature", 1.0),
            top_k=sampling.get("top_k", 0),
            top_p=sampling.get("top_p", 1.0),
        )
        ids = self.encode(input_ids) if isinstance(input_ids, str) else list(input_ids)
        prompt_array(ids)  # the same bounds as the Python loop's
        return run_greedy(
            self.session, ids, max_new_tokens=n_new, eos_token_id=self.eos_token_id, trie=trie
        )

    def generate_text(self, prompt: str, **kwargs: Any) -> str:
        """Prompt text -> generated text (same keyword arguments as :meth:`generate`)."""
        return self.decode(self.generate(self.encode(prompt), **kwargs))
