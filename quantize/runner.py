"""Calibration inputs for static quantization, recorded from real fp32 generation.

The decoder-with-past must be calibrated on the inputs it sees in serving: one new token plus
past key values of growing length. We run serving's own generation loop
(``serving.decode_loop.OnnxSeq2SeqGenerator``) on training prompts and record every feed each
ONNX session receives, by wrapping the sessions; nothing about the loop is re-implemented here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from serving.onnx_files import SEQ2SEQ_FILES

logger = logging.getLogger(__name__)

ENCODER, DECODER, DECODER_WITH_PAST = ONNX_FILES = SEQ2SEQ_FILES


class _RecordingSession:
    """Delegates to an InferenceSession and keeps a copy of every feed dict."""

    def __init__(self, session: Any, sink: list[dict[str, np.ndarray]]):
        self._session = session
        self._sink = sink

    def run(self, output_names: Any, feeds: dict[str, np.ndarray], *args: Any, **kw: Any) -> Any:
        self._sink.append({k: np.array(v, copy=True) for k, v in feeds.items()})
        return self._session.run(output_names, feeds, *args, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def record_feeds(
    model_dir: Path | str, prompts: Sequence[str], max_new_tokens: int
) -> dict[str, list[dict[str, np.ndarray]]]:
    """Greedy fp32 generation on ``prompts``; every session's feeds, per ONNX file."""
    from serving.decode_loop import OnnxSeq2SeqGenerator

    gen = OnnxSeq2SeqGenerator(model_dir)
    feeds: dict[str, list[dict[str, np.ndarray]]] = {name: [] for name in ONNX_FILES}
    gen.encoder = _RecordingSession(gen.encoder, feeds[ENCODER])  # type: ignore[assignment]
    gen.decoder = _RecordingSession(gen.decoder, feeds[DECODER])  # type: ignore[assignment]
    gen.decoder_with_past = _RecordingSession(  # type: ignore[assignment]
        gen.decoder_with_past, feeds[DECODER_WITH_PAST]
    )
    for prompt in prompts:
        gen.generate_text(prompt, max_new_tokens=max_new_tokens)
    logger.info("calibration feeds: %s", {name: len(v) for name, v in feeds.items()})
    return feeds
