"""schemathesis hooks for the serving API (loaded by ``schemathesis.toml`` beside this file).

The published schema states every rule JSON Schema can state (docs/serving.md "Limits, errors,
concurrency"). The rules across fields it cannot (keys of one object among another's, totals
over several fields, timestamps against ``now`` or the server's clock) are in the request
bodies' ``description`` and answered 422 by the server. A generated *positive* body that breaks
one of them is valid against the schema yet rightly refused, so it is not sent; a body the
server's models refuse on a field (a real mismatch) still is.
"""

from __future__ import annotations

import time
from typing import Any

import schemathesis
from schemathesis import GenerationMode

from serving.schemas import PracticeSetInput, WeaknessPredictionInput
from tests.serving.schemathesis.rules import breaks_cross_field_rule

_BODIES = {
    "/api/v1/ai/predict-weakness": WeaknessPredictionInput,
    "/api/v1/ai/practice-set": PracticeSetInput,
}


@schemathesis.hook
def filter_case(ctx: Any, case: Any) -> bool:
    """Keep every case but a positive body that breaks a rule the schema cannot state."""
    model = _BODIES.get(case.operation.path)
    meta = case.meta
    if model is None or meta is None or meta.generation.mode != GenerationMode.POSITIVE:
        return True
    if not isinstance(case.body, dict):
        return True
    return not breaks_cross_field_rule(model, case.body, now=time.time())
