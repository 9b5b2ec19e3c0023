"""ONNX Runtime generation loop for the exported T5 generator (no torch, no transformers).

The export (``export.generator_onnx``) writes ``encoder_model.onnx``, ``decoder_model.onnx``
(full decoder, no past: the first step, and every step when the cache is off) and
``decoder_with_past_model.onnx`` (one new token + the past key/values), plus ``tokenizer.json``
and ``generation_config.json``. Sessions are opened once and reused for every request.

Past key/value names are read from the sessions, so the loop works for any layer count; the
encoder's cross-attention keys/values come out of the first decoder step and are fed back
unchanged, because ``decoder_with_past`` only returns the self-attention ones.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime as ort

from serving.decoding import (
    check_sampling_args,
    decode_ids,
    encode_prompt,
    prompt_array,
)
from serving.onnx_files import DECODER_FILE, DECODER_WITH_PAST_FILE, ENCODER_FILE

if TYPE_CHECKING:
    from serving.constrain import Trie

logger = logging.getLogger(__name__)

TOKENIZER_FILE = "tokenizer.json"
GENERATION_CONFIG_FILE = "generation_config.json"

_OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def filter_logits(logits: np.ndarray, *, top_k: int, top_p: float) -> np.ndarray:
    """Top-k then nucleus (top-p) filtering: removed entries become -inf (HF semantics)."""
    out = logits.astype(np.float64, copy=True)
    # Only the finite entries can be kept: a constrained step (the skeleton trie, banned slots)
    # leaves a handful of a 2,000-token vocabulary, and sorting the -inf rest cost more than the
    # model's step. Same results: -inf entries sort last and carry no probability.
    live = np.flatnonzero(np.isfinite(out))
    if 0 < top_k < live.size:
        kth = np.partition(out[live], -top_k)[-top_k]
        out[out < kth] = -np.inf
        live = np.flatnonzero(np.isfinite(out))
    if top_p < 1.0:
        order = live[np.argsort(-out[live], kind="stable")]
        sorted_logits = out[order]
        probs = np.exp(sorted_logits - sorted_logits[0])
        probs /= probs.sum()
        cum = np.cumsum(probs)
        # Keep the smallest prefix whose mass reaches top_p (always at least one token).
        remove = cum - probs >= top_p
        remove[0] = False
        out[order[remove]] = -np.inf
    return out


class OnnxSeq2SeqGenerator:
    """Greedy / sampled generation over plain onnxruntime sessions of an exported T5 (the
    HTTP app's ``serving.decoding.TokenDecoder``).

    ``model_dir`` holds the ONNX files (names overridable, e.g. for quantized variants),
    ``generation_config.json`` (decoder start / eos / pad ids) and optionally ``tokenizer.json``.
    """

    def __init__(
        self,
        model_dir: Path | str,
        *,
        intra_op_num_threads: int = 1,
        graph_optimization_level: str = "all",
        encoder_file: str = ENCODER_FILE,
        decoder_file: str = DECODER_FILE,
        decoder_with_past_file: str | None = DECODER_WITH_PAST_FILE,
        providers: Sequence[str] = ("CPUExecutionProvider",),
    ) -> None:
        self.model_dir = Path(model_dir)
        if not isinstance(intra_op_num_threads, int) or intra_op_num_threads < 0:
            raise ValueError(
                f"intra_op_num_threads: must be an integer >= 0, got {intra_op_num_threads!r}"
            )
        if graph_optimization_level not in _OPT_LEVELS:
            raise ValueError(
                f"graph_optimization_level: must be one of {sorted(_OPT_LEVELS)}, "
                f"got {graph_optimization_level!r}"
            )
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = intra_op_num_threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = _OPT_LEVELS[graph_optimization_level]

        def open_session(name: str) -> ort.InferenceSession:
            path = self.model_dir / name
            if not path.is_file():
                raise FileNotFoundError(f"{path}: ONNX file not found")
            return ort.InferenceSession(str(path), sess_options=opts, providers=list(providers))

        self.encoder = open_session(encoder_file)
        self.decoder = open_session(decoder_file)
        self.decoder_with_past = (
            open_session(decoder_with_past_file) if decoder_with_past_file else None
        )
        gen_cfg = self._read_generation_config()
        self.decoder_start_token_id = int(gen_cfg["decoder_start_token_id"])
        self.eos_token_id = int(gen_cfg["eos_token_id"])
        self.pad_token_id = int(gen_cfg.get("pad_token_id", self.decoder_start_token_id))
        self.default_max_new_tokens = int(gen_cfg.get("max_new_tokens") or 64)

        self._decoder_outputs = [o.name for o in self.decoder.get_outputs()]
        self._past_names: list[str] = []
        if self.decoder_with_past is not None:
            self._past_names = [
                i.name
                for i in self.decoder_with_past.get_inputs()
                if i.name.startswith("past_key_values.")
            ]
            self._with_past_outputs = [o.name for o in self.decoder_with_past.get_outputs()]
            # present.<i>.<decoder|encoder>.<key|value> feeds past_key_values.<same suffix>.
            available = {
                n.replace("present.", "past_key_values.", 1) for n in self._decoder_outputs
            }
            missing = [n for n in self._past_names if n not in available]
            if missing:
                raise ValueError(
                    f"{self.model_dir}: decoder outputs lack the past inputs {missing} "
                    f"needed by {decoder_with_past_file}"
                )
        self.tokenizer: Any = None
        # keyword slots a prompt lacks are never decoded (serving.realize.banned_slot_ids)
        self.slot_guard: tuple[tuple[int, int], ...] = ()
        # nor are the tokens no skeleton of a typed-role model's bank holds
        # (serving.constrain.unwritten_ids: the one-file graph's narrower lm head)
        self.unwritten = np.zeros(0, dtype=np.int64)
        tok_path = self.model_dir / TOKENIZER_FILE
        if tok_path.is_file():
            from tokenizers import Tokenizer

            from serving.constrain import load_bank, unwritten_ids
            from serving.realize import slot_guard

            self.tokenizer = Tokenizer.from_file(str(tok_path))
            self.slot_guard = slot_guard(self.tokenizer.token_to_id)
            self.unwritten = unwritten_ids(load_bank(self.model_dir, self.encode), self.vocab)
        logger.info(
            "opened generator %s (%d past tensors, cache %s)",
            self.model_dir,
            len(self._past_names),
            "on" if self.decoder_with_past is not None else "off",
        )

    def _read_generation_config(self) -> dict[str, Any]:
        path = self.model_dir / GENERATION_CONFIG_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path}: generation config not found")
        cfg = json.loads(path.read_text())
        for key in ("decoder_start_token_id", "eos_token_id"):
            if not isinstance(cfg.get(key), int):
                raise ValueError(f"{path}: '{key}' must be an integer, got {cfg.get(key)!r}")
        return dict(cfg)

    # ------------------------------------------------------------------ text helpers

    def encode(self, prompt: str) -> list[int]:
        """Prompt -> ids ending with one eos (same rule as training's ``encode_text``)."""
        if self.tokenizer is None:
            raise FileNotFoundError(f"{self.model_dir / TOKENIZER_FILE}: tokenizer not found")
        return encode_prompt(self.tokenizer, prompt, self.eos_token_id)

    def decode(self, ids: Sequence[int]) -> str:
        """Token ids -> text without special tokens."""
        if self.tokenizer is None:
            raise FileNotFoundError(f"{self.model_dir / TOKENIZER_FILE}: tokenizer not found")
        return decode_ids(self.tokenizer, ids)

    # ------------------------------------------------------------------ model steps

    def _as_input(self, input_ids: Sequence[int] | str) -> np.ndarray:
        return prompt_array(self.encode(input_ids) if isinstance(input_ids, str) else input_ids)

    def _encode(self, input_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mask = np.ones_like(input_ids, dtype=np.int64)
        (hidden,) = self.encoder.run(
            ["last_hidden_state"], {"input_ids": input_ids, "attention_mask": mask}
        )
        return hidden, mask

    def _full_decoder(
        self, decoder_ids: np.ndarray, hidden: np.ndarray, mask: np.ndarray
    ) -> dict[str, np.ndarray]:
        outs = self.decoder.run(
            self._decoder_outputs,
            {
                "input_ids": decoder_ids,
                "encoder_hidden_states": hidden,
                "encoder_attention_mask": mask,
            },
        )
        return dict(zip(self._decoder_outputs, outs, strict=True))

    @property
    def vocab(self) -> int:
        """The decoder's output vocabulary size (its logits' last dimension)."""
        dim = self.decoder.get_outputs()[self._decoder_outputs.index("logits")].shape[-1]
        if isinstance(dim, int):
            return dim
        if self.tokenizer is None:
            raise ValueError(f"{self.model_dir}: logits of unknown width and no tokenizer")
        return int(self.tokenizer.get_vocab_size())

    def banned_ids(self, input_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Token ids this prompt must never generate: the keyword slots it has no keyword for,
        and the tokens the model's skeleton bank never writes (``self.unwritten``)."""
        from serving.realize import banned_slot_ids

        ids = banned_slot_ids((int(i) for i in np.asarray(input_ids).ravel()), self.slot_guard)
        return np.union1d(np.asarray(ids, dtype=np.int64), self.unwritten)

    def first_step_logits(self, input_ids: Sequence[int] | str) -> np.ndarray:
        """Logits (vocab,) of the first generated position, for the export parity gate."""
        hidden, mask = self._encode(self._as_input(input_ids))
        start = np.array([[self.decoder_start_token_id]], dtype=np.int64)
        return self._full_decoder(start, hidden, mask)["logits"][0, -1]

    def generate(
        self,
        input_ids: Sequence[int] | str,
        *,
        max_new_tokens: int | None = None,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int | None = None,
        use_cache: bool = True,
        trie: Trie | None = None,
    ) -> list[int]:
        """Generated token ids (without the decoder start token, stopping before eos).

        Greedy by default; ``do_sample`` draws from the temperature / top-k / top-p filtered
        distribution with ``numpy.random.default_rng(seed)``, so a seed reproduces a sample.
        ``use_cache=False`` re-runs the full decoder over all tokens each step (benchmark only).
        ``trie`` (``serving.constrain``) confines the output to its sequences: each step draws
        only among ``trie.allowed(generated_ids)`` (eos included) while that is not None.
        """
        n_new = self.default_max_new_tokens if max_new_tokens is None else max_new_tokens
        check_sampling_args(max_new_tokens=n_new, temperature=temperature, top_k=top_k, top_p=top_p)
        if use_cache and self.decoder_with_past is None:
            raise ValueError("use_cache: this model was opened without decoder_with_past")
        rng = np.random.default_rng(seed) if do_sample else None
        allowed = trie.allowed if trie is not None else None
        prompt_ids = self._as_input(input_ids)
        banned = self.banned_ids(prompt_ids[0])
        hidden, mask = self._encode(prompt_ids)
        tokens = [self.decoder_start_token_id]
        out: list[int] = []
        past: dict[str, np.ndarray] = {}
        for step in range(n_new):
            if step == 0 or not use_cache:
                res = self._full_decoder(np.asarray([tokens], dtype=np.int64), hidden, mask)
                if use_cache:
                    past = {
                        n.replace("present.", "past_key_values.", 1): v
                        for n, v in res.items()
                        if n.startswith("present.")
                    }
            else:
                if self.decoder_with_past is None:  # unreachable: checked above
                    raise RuntimeError("decoder_with_past session is not open")
                feeds = {
                    "input_ids": np.asarray([[tokens[-1]]], dtype=np.int64),
                    "encoder_attention_mask": mask,
                    **{n: past[n] for n in self._past_names},
                }
                outs = self.decoder_with_past.run(self._with_past_outputs, feeds)
                res = dict(zip(self._with_past_outputs, outs, strict=True))
                for n, v in res.items():
                    if n.startswith("present."):
                        past[n.replace("present.", "past_key_values.", 1)] = v
            logits = res["logits"][0, -1]
            if banned.size:
                logits = logits.copy()
                logits[banned] = -np.inf
            if allowed is not None:
                ok = allowed(out)
                if ok is not None and ok.size:
                    masked = np.full_like(logits, -np.inf)
                    masked[ok] = logits[ok]
                    logits = masked
            token = self._pick(logits, rng, temperature=temperature, top_k=top_k, top_p=top_p)
            if token == self.eos_token_id:
                break
            out.append(token)
            tokens.append(token)
        return out

    @staticmethod
    def _pick(
        logits: np.ndarray,
        rng: np.random.Generator | None,
        *,
        temperature: float,
        top_k: int,
        top_p: float,
    ) -> int:
        if rng is None:
            return int(np.argmax(logits))
        scores = filter_logits(logits.astype(np.float64) / temperature, top_k=top_k, top_p=top_p)
        probs = np.exp(scores - scores.max())
        probs /= probs.sum()
        return int(rng.choice(probs.shape[0], p=probs))

    def generate_text(self, prompt: str, **kwargs: Any) -> str:
        """Prompt text -> generated text (same keyword arguments as :meth:`generate`)."""
        return self.decode(self.generate(self.encode(prompt), **kwargs))
