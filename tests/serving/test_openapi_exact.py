"""The published OpenAPI schema says exactly what the server takes (schemathesis --checks all).

What schemathesis found, each pinned here: the word-problem topic was an ``enum`` while the
server also took "shopping*" and "fractions!" (and the question's ``topic_id`` listed nothing),
practice-set integers took ``false``, and bodies valid against the schema broke rules across
fields the schema did not mention. The full run: docs/serving.md "Limits, errors, concurrency".
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving import limits
from serving.schemas import (
    TOPIC_NAME_PATTERN,
    PracticeSetInput,
    WeaknessPredictionInput,
    WordProblemInput,
)
from serving.topics import DEFAULT_TOPICS, SUPPORTED_TOPICS, SYNONYMS, topic_pattern
from tests.fixtures.store import NOW
from tests.serving._server import store_client
from tests.serving.schemathesis.rules import breaks_cross_field_rule

API = "/api/v1/ai"
QUESTION = "/api/v1/q/questions/generate"
WORD = {"topic": "fractions", "keywords": ["apples"], "max_length": limits.MIN_COMPLETE_LENGTH}
ATTEMPT = {"score": 0.5, "timestamp": NOW - 3600}


def _accepts(name: str) -> bool:
    try:
        WordProblemInput.model_validate({**WORD, "topic": name})
    except ValueError:
        return False
    return True


def _published(pattern: str, name: str) -> bool:
    # fullmatch: JSON Schema's ECMA-262 '$' ends the text (Python's re.search would also
    # match before a final newline)
    return re.fullmatch(pattern, name) is not None and len(name) <= limits.MAX_TOPIC_LEN


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.from_regex(TOPIC_NAME_PATTERN, fullmatch=True).filter(lambda s: len(s) <= 64))
def test_every_name_the_topic_pattern_allows_is_taken(name: str) -> None:
    assert _accepts(name), name


_NAMES = sorted({*SUPPORTED_TOPICS, *SYNONYMS})
_EDITS = "aesAS &-_%*!.,'\t\u00a0\u212a"  # letters, separators, punctuation, NBSP, Kelvin sign


@st.composite
def _edited_names(draw: st.DrawFn) -> str:
    """A topic or synonym with a few characters inserted, deleted or re-cased."""
    name = draw(st.sampled_from(_NAMES))
    for _ in range(draw(st.integers(0, 3))):
        i = draw(st.integers(0, len(name)))
        edit = draw(st.sampled_from(["insert", "delete", "upper"]))
        if edit == "insert":
            name = name[:i] + draw(st.sampled_from(_EDITS)) + name[i:]
        elif edit == "delete" and name:
            name = name[: max(i - 1, 0)] + name[i:]
        else:
            name = name[:i] + name[i:].upper()
    return name


@settings(max_examples=600, deadline=None, derandomize=True)
@given(_edited_names())
def test_the_topic_pattern_is_exactly_what_the_schema_takes(name: str) -> None:
    assert _accepts(name) == _published(TOPIC_NAME_PATTERN, name), name


@pytest.fixture(scope="module")
def client(store: Path) -> Iterator[httpx.Client]:
    with store_client(store, generator_max_attempts=1, timeout_s=60) as c:
        yield c


def _topic_schemas(openapi: dict[str, Any]) -> list[dict[str, Any]]:
    word = openapi["components"]["schemas"]["WordProblemInput"]["properties"]["topic"]
    params = openapi["paths"][QUESTION]["get"]["parameters"]
    (topic_id,) = [p["schema"] for p in params if p["name"] == "topic_id"]
    return [word, topic_id]


# The tiny artifact's manifest lists no topics: it serves DEFAULT_TOPICS, so "mixed" (a synonym
# of a corpus topic) is refused by the server and must be refused by the schema too.
@pytest.mark.parametrize(
    "name",
    [
        *("Times Tables", "area & perimeter", "Area_and_Perimeter", " sums ", "clocks", "percent"),
        *("shopping*", "fractions!", "fraction's", "add\u00a0up", "mixed", "dragons"),
    ],
)
def test_published_topic_names_are_answered_and_the_rest_refused(
    client: httpx.Client, name: str
) -> None:
    openapi = client.get("/openapi.json").json()
    for schema in _topic_schemas(openapi):
        assert "enum" not in schema  # an enum of the names as written would refuse "Fractions"
        assert schema["pattern"] == topic_pattern(DEFAULT_TOPICS)
    published = _published(topic_pattern(DEFAULT_TOPICS), name)
    word = client.post(f"{API}/word-problem", json={**WORD, "topic": name, "seed": 1})
    question = client.get(
        QUESTION,
        params={"question_type": "ai_word_problem", "topic_id": name, "seed": 1, "max_length": 32},
    )
    expected = 200 if published else 422
    assert (word.status_code, question.status_code) == (expected, expected), (word, question)


@pytest.mark.parametrize(
    "change",
    [{"seed": False}, {"n_topics": True}, {"problems_per_topic": True}, {"grade": True}],
    ids=["seed_false", "n_topics_true", "problems_true", "grade_true"],
)
def test_practice_set_integers_are_json_integers(client: httpx.Client, change: dict) -> None:
    (field,) = change
    props = client.get("/openapi.json").json()["components"]["schemas"]["PracticeSetInput"]
    types = {b.get("type") for b in props["properties"][field].get("anyOf", [])}
    assert "boolean" not in types | {props["properties"][field].get("type")}
    body = {"user_id": "u1", "average_score_per_topic": {"fractions": 0.4}, "now": NOW, **change}
    r = client.post(f"{API}/practice-set", json=body)
    assert r.status_code == 422, r.text
    assert any(e["loc"][:2] == ["body", field] for e in r.json()["detail"])


def test_rules_across_fields_are_published(client: httpx.Client) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    for name in ("WeaknessPredictionInput", "PracticeSetInput"):
        schema = schemas[name]
        assert {next(iter(b["required"])) for b in schema["anyOf"]} >= {"recent_attempts"}
        assert schema["if"]["required"] == ["attempts_per_topic"]
        assert schema["then"]["required"] == ["average_score_per_topic"]
        for words in ("distinct topics", "events", "attempts_per_topic key", "server's clock"):
            assert words in schema["description"], (name, words)
    # counts without any average: outside the schema's if/then, and refused by the server
    body = {"user_id": "u1", "recent_attempts": {"t": [ATTEMPT]}, "attempts_per_topic": {"t": 3}}
    r = client.post(f"{API}/predict-weakness", json=body)
    assert r.status_code == 422 and "attempts_per_topic" in r.text


@pytest.mark.parametrize(
    ("body", "breaks"),
    [
        ({"recent_attempts": {"t": [ATTEMPT]}}, False),
        ({"recent_attempts": {"t": [ATTEMPT]}, "attempts_per_topic": {"t": 2}}, True),
        ({"recent_attempts": {"t": [{**ATTEMPT, "timestamp": NOW + 60}]}}, True),
        ({"recent_attempts": {"t": [{**ATTEMPT, "timestamp": NOW + 60}]}, "now": NOW}, True),
        ({"recent_attempts": {"t": [{**ATTEMPT, "timestamp": NOW + 60}]}, "now": NOW + 99}, False),
        ({"average_score_per_topic": {"t": 0.5}, "attempts_per_topic": {"u": 2}}, True),
        # a field error is a schema mismatch to report, not a rule across fields
        ({"recent_attempts": {"t": [{**ATTEMPT, "is_revisit": 0}]}}, False),
        ({"recent_quiz_scores": [0.5]}, True),  # no topic: the anyOf says it too
    ],
)
def test_cross_field_rule_filter_of_the_schemathesis_run(body: dict, breaks: bool) -> None:
    for model in (WeaknessPredictionInput, PracticeSetInput):
        assert breaks_cross_field_rule(model, {"user_id": "u1", **body}, now=NOW) == breaks
