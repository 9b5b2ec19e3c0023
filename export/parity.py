"""The one error every export parity gate raises: the exported model disagrees with its reference.

The weakness export compares ONNX probabilities and decisions with the native booster, the
generator export compares greedy ids and first-step logits with PyTorch, and the one-file graph
compares its ids with the Python loop (:class:`export.generation_graph.GenerationParityError`,
a subclass, so the backend export can fall back to the loop builder on that one alone). A stage
catching ``ParityError`` stops before anything is published, whichever model it exported.
"""

from __future__ import annotations


class ParityError(RuntimeError):
    """An exported model's outputs differ from its reference beyond the gate's tolerance.

    The message names the rows or prompts that differ and the measured difference.
    """
