"""The request rules across fields that JSON Schema cannot state, as the schemathesis hooks and
their test read them: judged by the server's own request models, never restated here."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError


def breaks_cross_field_rule(model: type[BaseModel], body: Any, *, now: float) -> bool:
    """True when ``body`` passes every field of ``model`` but one of its rules across fields:
    the model validator (topics and events in total, a count beside its average, attempts before
    ``now``), or, when the body sends no ``now``, an attempt after the server's clock ``now``."""
    try:
        request = model.model_validate(body)
    except ValidationError as exc:
        # a model validator's error has an empty loc; a field's names the field
        return all(err["loc"] == () for err in exc.errors())
    if getattr(request, "now", None) is not None:
        return False
    attempts = getattr(request, "recent_attempts", None) or {}
    return any(a.timestamp > now for topic in attempts.values() for a in topic)
