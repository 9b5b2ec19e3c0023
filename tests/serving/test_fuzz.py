"""Property-based fuzz over real HTTP: >= 1,000 generated requests, valid and invalid shapes.

Every answer must be 200 (with a body matching the response model) or a 4xx whose detail names
the field; no request may produce a 5xx. Hypothesis runs derandomized so CI is reproducible.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving import limits
from serving.schemas import (
    PracticeSetInput,
    PracticeSetOutput,
    QuestionOutput,
    WeaknessPredictionInput,
    WeaknessPredictionOutput,
    WordProblemInput,
    WordProblemOutput,
)
from serving.topics import DEFAULT_TOPICS
from tests.fixtures.store import NOW
from tests.serving._server import store_client

API = "/api/v1/ai"
FUZZ = settings(
    max_examples=520,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def client(store: Path) -> Iterator[httpx.Client]:
    with store_client(store, generator_max_attempts=2, timeout_s=30) as c:
        yield c


json_leaf = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
any_json = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
topic = st.sampled_from(["fractions", "addition", "division", "new topic", "__x", "", "a,b"]) | (
    st.text(max_size=70)
)
score = (
    st.floats(min_value=-0.5, max_value=1.5)
    | st.sampled_from([0.0, 1.0, 0.5, float("nan"), float("inf")])
    | any_json
)
timestamp = (
    st.integers(NOW - 90 * 86_400, NOW + 100)
    | st.sampled_from([0, -1, limits.TIMESTAMP_RANGE[1] + 1, 10**30])
    | any_json
)
attempt = st.fixed_dictionaries(
    {"score": score, "timestamp": timestamp},
    optional={
        "time_spent_s": st.floats(-10, 1e6) | any_json,
        "hints_used": st.integers(-2, 2000) | any_json,
        "is_revisit": st.booleans() | any_json,
        "activity": st.sampled_from(["quiz", "minigame", "exercise", "chess"]) | any_json,
        "extra": any_json,
    },
)
weakness_body = st.fixed_dictionaries(
    {},
    optional={
        "user_id": st.text(max_size=140) | any_json,
        "average_score_per_topic": st.dictionaries(topic, score, max_size=6) | any_json,
        "recent_quiz_scores": st.dictionaries(topic, st.lists(score, max_size=12), max_size=5)
        | st.lists(score, max_size=12)
        | any_json,
        "time_spent_per_topic_minutes": st.dictionaries(
            topic, st.floats(-5, 2e6) | any_json, max_size=5
        ),
        "recent_attempts": st.dictionaries(topic, st.lists(attempt, max_size=8), max_size=4)
        | st.none()
        | any_json,
        "now": st.integers(NOW - 10, NOW + 10) | st.none() | any_json,
        "surprise": any_json,
    },
)
ok_topic = st.sampled_from(["fractions", "addition", "division", "new topic"]) | st.text(
    st.characters(categories=["L", "N"]), min_size=1, max_size=20
)
ok_score = st.floats(0.0, 1.0)
ok_attempt = st.fixed_dictionaries(
    {"score": ok_score, "timestamp": st.integers(NOW - 90 * 86_400, NOW)},
    optional={
        "time_spent_s": st.floats(0, limits.MAX_TIME_SPENT_S) | st.none(),
        "hints_used": st.integers(0, 20) | st.none(),
        "is_revisit": st.booleans(),
        "activity": st.sampled_from(["quiz", "minigame", "exercise"]),
    },
)
valid_weakness = st.fixed_dictionaries(
    {
        "user_id": st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=30),
        "average_score_per_topic": st.dictionaries(ok_topic, ok_score, min_size=1, max_size=6),
        "now": st.just(NOW) | st.none(),
    },
    optional={
        "recent_quiz_scores": st.dictionaries(ok_topic, st.lists(ok_score, max_size=20), max_size=5)
        | st.lists(ok_score, max_size=20),
        "time_spent_per_topic_minutes": st.dictionaries(ok_topic, st.floats(0, 1e4), max_size=5),
        "recent_attempts": st.dictionaries(ok_topic, st.lists(ok_attempt, max_size=20), max_size=4),
    },
)


def payloads(valid: Any, model: Any, near: Any) -> Any:
    """Valid bodies (weighted twice, so many requests reach the model), valid bodies with one
    field of ``model`` replaced by anything, near-schema bodies, and arbitrary JSON."""
    mutated = st.tuples(valid, st.sampled_from(sorted(model.model_fields)), any_json).map(
        lambda t: {**t[0], t[1]: t[2]}
    )
    return st.one_of(valid, valid, mutated, near, any_json)


weakness_payload = payloads(
    valid_weakness, WeaknessPredictionInput, weakness_body.map(lambda b: {"user_id": "u", **b})
)

word_text = st.sampled_from(["apples", "coins", "basket of eggs", "", " ", "a:b", "x,y"]) | (
    st.text(max_size=50)
)
word_body = st.fixed_dictionaries(
    {},
    optional={
        "topic": word_text | any_json,
        "keywords": st.lists(word_text, max_size=10) | any_json,
        "prompt_prefix": st.text(max_size=220) | any_json,
        "max_length": st.integers(-5, 200) | any_json,
        "seed": st.integers(-5, 2**32) | st.none() | any_json,
        "temperature": st.floats(-1, 3) | st.none() | any_json,
        "surprise": any_json,
    },
)
ok_word = st.sampled_from(["apples", "coins", "basket of eggs", "train"]) | st.text(
    st.characters(categories=["L", "N"]), min_size=1, max_size=limits.MAX_KEYWORD_LEN
)
# Valid topics: the ones the tiny artifact serves, some written as synonyms.
ok_topic = st.sampled_from([*DEFAULT_TOPICS, "Sums", "percent", "times tables", " Fractions "])
valid_word = st.fixed_dictionaries(
    {"topic": ok_topic, "keywords": st.lists(ok_word, min_size=1, max_size=limits.MAX_KEYWORDS)},
    optional={
        "prompt_prefix": st.text(st.characters(categories=["L", "N", "Zs"]), max_size=60),
        "max_length": st.integers(*limits.MAX_LENGTH_RANGE),
        "seed": st.integers(*limits.SEED_RANGE) | st.none(),
        "temperature": st.floats(*limits.TEMPERATURE_RANGE) | st.none(),
    },
)
word_payload = payloads(
    valid_word,
    WordProblemInput,
    word_body.map(
        lambda b: {
            "topic": "fractions",
            "keywords": ["apples"],
            "max_length": limits.MIN_COMPLETE_LENGTH,
            **b,
        }
    ),
)


# Practice sets: a valid learner summary plus the set's own fields (kept small: every valid
# request generates up to n_topics x problems_per_topic problems with the tiny T5).
practice_extra = st.fixed_dictionaries(
    {},
    optional={
        "n_topics": st.integers(1, 2),
        "problems_per_topic": st.integers(1, 2),
        "grade": st.integers(*limits.GRADE_RANGE) | st.none(),
        "keywords": st.lists(ok_word, max_size=3),
        "seed": st.integers(*limits.SEED_RANGE) | st.none(),
    },
)
valid_practice = st.tuples(valid_weakness, practice_extra).map(lambda t: {**t[0], **t[1]})
practice_near = st.tuples(
    weakness_body,
    st.fixed_dictionaries(
        {},
        optional={
            "n_topics": st.integers(-2, 9) | any_json,
            "problems_per_topic": st.integers(-2, 9) | any_json,
            "grade": st.integers(-2, 20) | any_json,
            "keywords": st.lists(word_text, max_size=10) | any_json,
            "seed": st.integers(-5, 2**32) | any_json,
        },
    ),
).map(lambda t: {"user_id": "u", **t[0], **t[1]})
practice_payload = payloads(valid_practice, PracticeSetInput, practice_near)
valid_query = st.fixed_dictionaries(
    {"question_type": st.just("ai_word_problem"), "topic_id": ok_topic},
    optional={
        "keywords": st.lists(ok_word, max_size=3),
        "grade": st.integers(*limits.GRADE_RANGE),
        "seed": st.integers(*limits.SEED_RANGE),
    },
)
near_query = st.fixed_dictionaries(
    {},
    optional={
        "question_type": st.sampled_from(["ai_word_problem", "quiz", ""]) | st.text(max_size=20),
        "topic_id": ok_topic | word_text,
        "keywords": st.lists(word_text, max_size=10),
        "grade": st.integers(-2, 20) | st.text(max_size=5),
        "max_length": st.integers(-5, 200) | st.text(max_size=5),
        "seed": st.integers(-5, 2**32) | st.text(max_size=5),
        "surprise": st.text(max_size=5),
    },
)
question_query = st.one_of(valid_query, valid_query, near_query)


def _check(r: httpx.Response, body: Any, fields: set[str], out_model: Any) -> None:
    assert r.status_code < 500, (r.status_code, r.text[:300], body)
    if r.status_code == 200:
        out_model.model_validate(r.json())
        return
    assert r.status_code == 422, (r.status_code, r.text[:300])
    detail = r.json()["detail"]
    assert isinstance(detail, list) and detail
    keys = set(body) if isinstance(body, dict) else set()
    for err in detail:
        loc = err["loc"]
        assert loc[0] == "body"
        if len(loc) >= 2:
            assert loc[1] in fields or loc[1] in keys, err
        else:  # a whole-body error: unparsable, not an object, or a cross-field rule
            assert err["type"] in {"json_invalid", "model_attributes_type", "value_error"}, err
            if err["type"] == "value_error":
                assert any(f in err["msg"] for f in fields), err


W_FIELDS = set(WeaknessPredictionInput.model_fields)
P_FIELDS = set(WordProblemInput.model_fields)


def _post(client: httpx.Client, endpoint: str, content: bytes | str) -> httpx.Response:
    return client.post(
        f"{API}/{endpoint}", content=content, headers={"content-type": "application/json"}
    )


def _send(client: httpx.Client, sent: Counter[str], name: str, body: Any) -> None:
    """POST ``body`` to endpoint ``name`` and check the answer; count request and status."""
    endpoint, fields, out_model = ENDPOINTS[name]
    sent[name] += 1
    r = _post(client, endpoint, json.dumps(body))
    sent[f"{name}:{r.status_code}"] += 1
    _check(r, body, fields, out_model)


ENDPOINTS: dict[str, tuple[str, set[str], Any]] = {
    "weakness": ("predict-weakness", W_FIELDS, WeaknessPredictionOutput),
    "word": ("word-problem", P_FIELDS, WordProblemOutput),
    "practice": ("practice-set", set(PracticeSetInput.model_fields), PracticeSetOutput),
}


@FUZZ
@given(body=weakness_payload)
def _fuzz_weakness(client: httpx.Client, sent: Counter[str], body: Any) -> None:
    _send(client, sent, "weakness", body)


@FUZZ
@given(body=word_payload)
def _fuzz_word(client: httpx.Client, sent: Counter[str], body: Any) -> None:
    _send(client, sent, "word", body)


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(body=practice_payload)
def _fuzz_practice(client: httpx.Client, sent: Counter[str], body: Any) -> None:
    _send(client, sent, "practice", body)


@settings(max_examples=120, deadline=None, derandomize=True)
@given(query=question_query)
def _fuzz_question(client: httpx.Client, sent: Counter[str], query: dict[str, Any]) -> None:
    sent["question"] += 1
    r = client.get("/api/v1/q/questions/generate", params=query)
    sent[f"question:{r.status_code}"] += 1
    assert r.status_code in (200, 422), (r.status_code, r.text[:300], query)
    if r.status_code == 200:
        QuestionOutput.model_validate(r.json())
        return
    for err in r.json()["detail"]:
        assert err["loc"][0] == "query" and err["loc"][1] in set(query) | {
            "question_type",
            "topic_id",
        }, err


@settings(max_examples=60, deadline=None, derandomize=True)
@given(raw=st.binary(max_size=300), ep=st.sampled_from(["predict-weakness", "word-problem"]))
def _fuzz_raw(client: httpx.Client, sent: Counter[str], raw: bytes, ep: str) -> None:
    sent["raw"] += 1
    r = _post(client, ep, raw)
    assert r.status_code in (200, 422), (r.status_code, r.text[:200], raw)


DRIVERS: dict[str, Callable[[httpx.Client, Counter[str]], None]] = {
    "weakness": _fuzz_weakness,
    "word": _fuzz_word,
    "raw": _fuzz_raw,
    "practice": _fuzz_practice,
    "question": _fuzz_question,
}


class FuzzRuns:
    """Each fuzz run done at most once per module, with what it sent.

    The per-endpoint tests and the volume test draw on the same runs, so the volume test
    holds when it is selected alone (``-k volume``): it runs what has not run yet.
    """

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.sent: dict[str, Counter[str]] = {}

    def run(self, name: str) -> Counter[str]:
        """Counts of the run ``name`` (requests, then answers by status); raises on a bad one."""
        if name not in self.sent:
            sent: Counter[str] = Counter()
            DRIVERS[name](self.client, sent)
            self.sent[name] = sent
        return self.sent[name]


@pytest.fixture(scope="module")
def runs(client: httpx.Client) -> FuzzRuns:
    return FuzzRuns(client)


def test_fuzz_predict_weakness(runs: FuzzRuns) -> None:
    assert runs.run("weakness")["weakness"] >= 400


def test_fuzz_word_problem(runs: FuzzRuns) -> None:
    assert runs.run("word")["word"] >= 400


def test_fuzz_raw_bytes(runs: FuzzRuns) -> None:
    assert runs.run("raw")["raw"] >= 50


def test_fuzz_practice_set(runs: FuzzRuns) -> None:
    sent = runs.run("practice")
    assert sent["practice"] >= 150
    assert sent["practice:200"] >= 30 and sent["practice:422"] >= 30, sent


def test_fuzz_question(runs: FuzzRuns) -> None:
    sent = runs.run("question")
    assert sent["question"] >= 100
    assert sent["question:200"] >= 10 and sent["question:422"] >= 10, sent


def test_fuzz_volume(runs: FuzzRuns) -> None:
    """At least 1,000 generated requests across both endpoints, valid and invalid ones."""
    sent = runs.run("weakness") + runs.run("word") + runs.run("raw")
    assert sent["weakness"] + sent["word"] + sent["raw"] >= 1000, sent
    # both valid requests (served by the models) and invalid ones were exercised
    for ep in ("weakness", "word"):
        assert sent[f"{ep}:200"] >= 50 and sent[f"{ep}:422"] >= 50, sent
