"""Property-based fuzz over real HTTP: >= 1,000 generated requests, valid and invalid shapes.

Every answer must be 200 (with a body matching the response model) or a 4xx whose detail names
the field; no request may produce a 5xx. Hypothesis runs derandomized so CI is reproducible.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving import limits
from serving.app import create_app
from serving.schemas import (
    WeaknessPredictionInput,
    WeaknessPredictionOutput,
    WordProblemInput,
    WordProblemOutput,
)
from serving.settings import ServingSettings
from serving.topics import DEFAULT_TOPICS
from tests.serving._artifacts import NOW
from tests.serving._server import artifact_store, live_server

API = "/api/v1/ai"
SENT: Counter[str] = Counter()
FUZZ = settings(
    max_examples=520,
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    store: Path = artifact_store(tmp_path_factory.mktemp("fuzz"))
    cfg = ServingSettings(artifact_root=store, generator_max_attempts=2, max_concurrency=2)
    app = create_app(weakness_ref="1", generator_ref="1", settings=cfg)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as c:
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
# Valid bodies (weighted twice, so many requests reach the model), valid bodies with one field
# replaced by anything, near-schema bodies with out-of-range values, and arbitrary JSON.
mutated_weakness = st.tuples(
    valid_weakness, st.sampled_from(sorted(WeaknessPredictionInput.model_fields)), any_json
).map(lambda t: {**t[0], t[1]: t[2]})
weakness_payload = st.one_of(
    valid_weakness,
    valid_weakness,
    mutated_weakness,
    weakness_body.map(lambda b: {"user_id": "u", **b}),
    any_json,
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
mutated_word = st.tuples(
    valid_word, st.sampled_from(sorted(WordProblemInput.model_fields)), any_json
).map(lambda t: {**t[0], t[1]: t[2]})
word_payload = st.one_of(
    valid_word,
    valid_word,
    mutated_word,
    word_body.map(
        lambda b: {
            "topic": "fractions",
            "keywords": ["apples"],
            "max_length": limits.MIN_COMPLETE_LENGTH,
            **b,
        }
    ),
    any_json,
)


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


@FUZZ
@given(body=weakness_payload)
def test_fuzz_predict_weakness(client: httpx.Client, body: Any) -> None:
    SENT["weakness"] += 1
    r = client.post(
        f"{API}/predict-weakness",
        content=json.dumps(body),
        headers={"content-type": "application/json"},
    )
    SENT[f"weakness:{r.status_code}"] += 1
    _check(r, body, W_FIELDS, WeaknessPredictionOutput)


@FUZZ
@given(body=word_payload)
def test_fuzz_word_problem(client: httpx.Client, body: Any) -> None:
    SENT["word"] += 1
    r = client.post(
        f"{API}/word-problem",
        content=json.dumps(body),
        headers={"content-type": "application/json"},
    )
    SENT[f"word:{r.status_code}"] += 1
    _check(r, body, P_FIELDS, WordProblemOutput)


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(raw=st.binary(max_size=300), ep=st.sampled_from(["predict-weakness", "word-problem"]))
def test_fuzz_raw_bytes(client: httpx.Client, raw: bytes, ep: str) -> None:
    SENT["raw"] += 1
    r = client.post(f"{API}/{ep}", content=raw, headers={"content-type": "application/json"})
    assert r.status_code in (200, 422), (r.status_code, r.text[:200], raw)


def test_fuzz_volume() -> None:
    """The runs above sent at least 1,000 generated requests across both endpoints."""
    if not SENT:
        pytest.skip("fuzz tests not run in this session (e.g. -k selection)")
    assert SENT["weakness"] + SENT["word"] + SENT["raw"] >= 1000, SENT
    assert SENT["weakness"] >= 400 and SENT["word"] >= 400, SENT
    # both valid requests (served by the models) and invalid ones were exercised
    for ep in ("weakness", "word"):
        assert SENT[f"{ep}:200"] >= 50 and SENT[f"{ep}:422"] >= 50, SENT
    print(dict(SENT))
