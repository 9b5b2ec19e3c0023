"""Errors the serving runtime maps to HTTP answers (422, 503, 504); stdlib only."""

from __future__ import annotations


class RequestError(ValueError):
    """A request that passed the schema but cannot be served; ``field`` names the culprit (422)."""

    def __init__(self, field: str, message: str, loc: tuple[str | int, ...] = ()) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.loc = loc  # structured path (pydantic style) when known


class ArtifactError(ValueError):
    """An artifact is internally inconsistent (spec vs ONNX input, missing or bad files)."""


class ServerBusy(RuntimeError):
    """No inference slot freed up within the queue timeout (503)."""


class InferenceTimeout(RuntimeError):
    """Inference did not finish within the per-request timeout (504)."""
