"""Invisible and bidirectional formatting characters are refused in ids, topics and words.

A zero-width space made two learner ids that look the same differ; a right-to-left override in
a request topic was accepted and echoed back reversed. The request schemas (what the app
validates and publishes as OpenAPI) refuse them with a 422 naming the field.
"""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from serving.ids import ID_PATTERN
from serving.schemas import WeaknessPredictionInput, WordProblemInput

SNEAKY = ["\u200b", "\u200d", "\u202e", "\u2066", "\ufeff", "\u00ad"]


@pytest.mark.parametrize("char", SNEAKY)
def test_learner_and_topic_ids_refuse_invisible_characters(char: str) -> None:
    with pytest.raises(ValidationError, match="user_id"):
        WeaknessPredictionInput.model_validate(
            {"user_id": f"u{char}1", "average_score_per_topic": {"fractions": 0.5}}
        )
    with pytest.raises(ValidationError, match="average_score_per_topic"):
        WeaknessPredictionInput.model_validate(
            {"user_id": "u1", "average_score_per_topic": {f"frac{char}tions": 0.5}}
        )


@pytest.mark.parametrize("char", SNEAKY)
def test_prompt_words_refuse_invisible_characters(char: str) -> None:
    with pytest.raises(ValidationError, match="keywords"):
        WordProblemInput.model_validate(
            {"topic": "fractions", "keywords": [f"app{char}les"], "max_length": 64}
        )


def test_ordinary_text_in_any_script_still_passes() -> None:
    for value in ("learner-42", "学習者", "تلميذ", "élève 7", "🙂"):
        assert re.match(ID_PATTERN, value)
    WeaknessPredictionInput.model_validate(
        {"user_id": "élève-7", "average_score_per_topic": {"fractions": 0.5}}
    )
