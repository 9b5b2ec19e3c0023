"""The HTTP app over real HTTP (uvicorn on a loopback port, httpx): contract, errors, limits."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from serving import limits
from serving.app import create_app
from serving.settings import ServingSettings
from tests.fixtures.store import NOW
from tests.serving._server import live_server

API = "/api/v1/ai"
WEAK = {
    "user_id": "learner-1",
    "average_score_per_topic": {"fractions": 0.4, "addition": 0.9},
    "recent_quiz_scores": {"fractions": [0.2, 0.5, 0.3]},
    "time_spent_per_topic_minutes": {"fractions": 30.0},
    "recent_attempts": {
        "division": [{"score": 0.7, "timestamp": NOW - 3600, "time_spent_s": 120, "hints_used": 1}]
    },
    "now": NOW,
}
WORD = {
    "topic": "fractions",
    "keywords": ["apples", "baskets"],
    "prompt_prefix": "",
    "max_length": 24,
    "seed": 7,
}


@pytest.fixture(scope="module")
def client(store: Path) -> Iterator[httpx.Client]:
    settings = ServingSettings(artifact_root=store, generator_max_attempts=2)
    app = create_app(weakness_ref="1", generator_ref="latest", settings=settings)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        yield c


def test_health_ready_models(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["models"] == {"weakness": "1", "generator": "1"}
    models = {m["name"]: m for m in client.get(f"{API}/models").json()["models"]}
    assert set(models) == {"weakness", "generator"}
    assert models["weakness"]["variant"] == "fp32"
    assert models["weakness"]["gates"][0]["passed"] is True


def test_predict_weakness_contract(client: httpx.Client) -> None:
    r = client.post(f"{API}/predict-weakness", json=WEAK)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user_id"] == "learner-1" and body["model_version"] == "1"
    rows = body["predicted_weaknesses"]
    assert {w["topic_id"] for w in rows} == {"fractions", "addition", "division"}
    probs = [w["weakness_probability"] for w in rows]
    assert probs == sorted(probs, reverse=True) and all(0 <= p <= 1 for p in probs)
    assert {w["suggested_action_level"] for w in rows} <= {
        "none",
        "review",
        "practice",
        "intervene",
    }
    # the same request gives the same answer (no hidden state between requests)
    assert client.post(f"{API}/predict-weakness", json=WEAK).json() == body


def test_word_problem_contract_and_seed(client: httpx.Client) -> None:
    r = client.post(f"{API}/word-problem", json=WORD)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {
        "generated_problem_text",
        "equation",
        "answer",
        "consistent",
        "attempts",
        "seed",
        "model_version",
        "missing_keywords",
        "keywords_unused",
        "answer_text",
        "complete",
        "incomplete_reason",
    }
    assert body["seed"] == 7 and 1 <= body["attempts"] <= 2
    assert set(body["missing_keywords"]) <= set(WORD["keywords"])
    assert body["consistent"] == (body["equation"] is not None)
    assert client.post(f"{API}/word-problem", json=WORD).json() == body
    no_seed = client.post(
        f"{API}/word-problem", json={k: v for k, v in WORD.items() if k != "seed"}
    ).json()
    assert 0 <= no_seed["seed"] <= limits.SEED_RANGE[1]


def _loc(r: httpx.Response) -> list[list[Any]]:
    assert r.status_code == 422, r.text
    return [e["loc"] for e in r.json()["detail"]]


# One bad field per case, and the field its 422 must name (test_422_names_the_field).
WEAKNESS_422: list[tuple[dict[str, Any], str]] = [
    ({"average_score_per_topic": {"fractions": 1.5}}, "average_score_per_topic"),
    (
        {"recent_quiz_scores": {"fractions": [0.1] * (limits.MAX_SCORES_PER_TOPIC + 1)}},
        "recent_quiz_scores",
    ),
    ({"recent_quiz_scores": [2.0]}, "recent_quiz_scores"),
    ({"time_spent_per_topic_minutes": {"fractions": -1}}, "time_spent_per_topic_minutes"),
    ({"recent_attempts": {"x": [{"score": 0.5}]}}, "recent_attempts"),
    (
        {"recent_attempts": {"x": [{"score": 0.5, "timestamp": NOW, "activity": "chess"}]}},
        "recent_attempts",
    ),
    (
        {"average_score_per_topic": {f"t{i}": 0.5 for i in range(limits.MAX_TOPICS + 1)}},
        "average_score_per_topic",
    ),
    ({"user_id": ""}, "user_id"),
    ({"user_id": "x" * (limits.MAX_USER_ID_LEN + 1)}, "user_id"),
    ({"now": -5}, "now"),
    ({"average_score_per_topic": {"__unassigned__": 0.5}}, "average_score_per_topic"),
    ({"favourite_colour": "blue"}, "favourite_colour"),
]


def test_weakness_cross_field_errors_name_the_field(client: httpx.Client) -> None:
    late = {**WEAK, "recent_attempts": {"a": [{"score": 0.5, "timestamp": NOW + 1}]}}
    r = client.post(f"{API}/predict-weakness", json=late)
    assert r.status_code == 422 and "recent_attempts['a'][0].timestamp" in r.text
    r = client.post(f"{API}/predict-weakness", json={"user_id": "u"})
    assert r.status_code == 422 and "average_score_per_topic" in r.text
    # without `now`, the server clock is used: an attempt in the future is refused by field
    future = {
        "user_id": "u",
        "recent_attempts": {"a": [{"score": 0.5, "timestamp": limits.TIMESTAMP_RANGE[1]}]},
    }
    r = client.post(f"{API}/predict-weakness", json=future)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][1] == "recent_attempts"


WORD_PROBLEM_422: list[tuple[dict[str, Any], str]] = [
    ({"max_length": limits.MAX_LENGTH_RANGE[1] + 1}, "max_length"),
    ({"max_length": 0}, "max_length"),
    ({"keywords": ["a"] * (limits.MAX_KEYWORDS + 1)}, "keywords"),
    ({"keywords": ["k" * (limits.MAX_KEYWORD_LEN + 1)]}, "keywords"),
    ({"keywords": ["apples, pears"]}, "keywords"),
    ({"keywords": []}, "keywords"),
    ({"topic": ""}, "topic"),
    ({"topic": "a:b"}, "topic"),
    ({"prompt_prefix": "p" * (limits.MAX_PREFIX_LEN + 1)}, "prompt_prefix"),
    ({"seed": -1}, "seed"),
    ({"temperature": 0.0}, "temperature"),
    ({"temperature": "hot"}, "temperature"),
]


@pytest.mark.parametrize(
    ("route", "body", "patch", "field"),
    [("predict-weakness", WEAK, *case) for case in WEAKNESS_422]
    + [("word-problem", WORD, *case) for case in WORD_PROBLEM_422],
)
def test_422_names_the_field(
    client: httpx.Client, route: str, body: dict[str, Any], patch: dict[str, Any], field: str
) -> None:
    locs = _loc(client.post(f"{API}/{route}", json={**body, **patch}))
    assert any(len(loc) > 1 and loc[1] == field for loc in locs), locs


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[" * 50_000 + b"]" * 50_000,
        b'{"now": ' + b"9" * 5000 + b"}",
        b'{"user_id": "\\ud800", "average_score_per_topic": {"a": NaN}}',
        b"\xff\xfe",
        b"",
    ],
)
def test_malformed_bodies_are_422_never_500(client: httpx.Client, raw: bytes) -> None:
    for ep in ("predict-weakness", "word-problem"):
        r = client.post(f"{API}/{ep}", content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 422, (ep, raw[:40], r.status_code, r.text[:200])
        assert r.json()["detail"][0]["loc"][0] == "body"


def test_oversized_body_is_413(client: httpx.Client) -> None:
    big = json.dumps({**WORD, "prompt_prefix": "x" * (limits.MAX_BODY_BYTES + 10)})
    r = client.post(
        f"{API}/word-problem", content=big, headers={"content-type": "application/json"}
    )
    assert r.status_code == 413

    def chunks() -> Iterator[bytes]:  # no content-length: counted while streaming
        yield b'{"topic": "a", "keywords": ["b"], "prompt_prefix": "'
        for _ in range(limits.MAX_BODY_BYTES // 4096 + 2):
            yield b"x" * 4096
        yield b'"}'

    r = client.post(
        f"{API}/word-problem", content=chunks(), headers={"content-type": "application/json"}
    )
    assert r.status_code == 413


def test_openapi_schema_lists_both_endpoints(client: httpx.Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert f"{API}/predict-weakness" in paths and f"{API}/word-problem" in paths


def test_tampered_artifact_not_ready_503(
    store: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad_root = tmp_path / "artifacts"
    shutil.copytree(store / "weakness" / "1", bad_root / "weakness" / "1")
    with (bad_root / "weakness" / "1" / "model.onnx").open("ab") as fh:
        fh.write(b"\0")
    app = create_app(weakness_ref="1", settings=ServingSettings(artifact_root=bad_root))
    with live_server(app) as url, httpx.Client(base_url=url) as c:
        ready = c.get("/readyz")
        assert ready.status_code == 503 and "model.onnx" in ready.json()["errors"]["weakness"]
        r = c.post(f"{API}/predict-weakness", json=WEAK)
        assert r.status_code == 503 and "not loaded" in r.json()["detail"]
        assert c.post(f"{API}/word-problem", json=WORD).status_code == 503
        assert c.get("/healthz").status_code == 200
    # `serve --allow-partial` logs the failed model as one line, not a ManifestError traceback
    failed = [r for r in caplog.records if "failed to load" in r.getMessage()]
    assert failed and not any(r.exc_info for r in failed)
    assert "model.onnx" in failed[0].getMessage()


class _SlowWeakness:
    """Stands in for a model whose inference takes ``delay_s`` (timeouts and saturation)."""

    version = "slow"

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s

    def info(self) -> dict[str, Any]:
        return {"name": "weakness", "version": "slow", "path": "-"}

    def predict(self, request: Any, now: int | None = None) -> Any:
        time.sleep(self.delay_s)
        return {"user_id": request.user_id, "predicted_weaknesses": [], "model_version": "slow"}


def test_slow_inference_is_504_and_saturation_503_never_a_hang() -> None:
    settings = ServingSettings(max_concurrency=1, queue_timeout_s=0.2, request_timeout_s=0.3)
    app = create_app(weakness=_SlowWeakness(0.6), settings=settings)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=10) as c:
        t0 = time.monotonic()
        r = c.post(f"{API}/predict-weakness", json=WEAK)
        assert r.status_code == 504 and time.monotonic() - t0 < 2.0
        # the timed-out call still holds the only slot for ~0.3 s: a second call waits 0.2 s
        r2 = c.post(f"{API}/predict-weakness", json=WEAK)
        assert r2.status_code == 503 and r2.headers["retry-after"] == "1"
        time.sleep(0.8)  # slot released when the slow thread really finished
        results: list[int] = []

        def call() -> None:
            results.append(c.post(f"{API}/predict-weakness", json=WEAK).status_code)

        threads = [threading.Thread(target=call) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert sorted(results) == [503, 503, 504]


def test_fast_injected_model_ok() -> None:
    app = create_app(weakness=_SlowWeakness(0.0), settings=ServingSettings())
    with live_server(app) as url, httpx.Client(base_url=url) as c:
        assert c.post(f"{API}/predict-weakness", json=WEAK).json()["model_version"] == "slow"
        assert c.get("/readyz").status_code == 200
        assert c.post(f"{API}/word-problem", json=WORD).status_code == 503  # not configured


# The published schema says what the server does: schema-valid requests are answered, and what
# the server refuses is refused by the schema too (schemathesis used to find both directions).


def test_openapi_publishes_the_at_least_one_topic_rule(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    any_of = schema["WeaknessPredictionInput"]["anyOf"]
    assert {next(iter(branch["required"])) for branch in any_of} == {
        "average_score_per_topic",
        "recent_quiz_scores",
        "time_spent_per_topic_minutes",
        "recent_attempts",
    }
    r = client.post(f"{API}/predict-weakness", json={"user_id": "u1", "recent_quiz_scores": [0.5]})
    assert r.status_code == 422 and "no topic given" in r.text  # matches no anyOf branch
    topic = schema["WordProblemInput"]["properties"]["topic"]
    served = client.get(f"{API}/models").json()["models"]
    topics = next(m["topics"] for m in served if m["name"] == "generator")
    assert topic["examples"][: len(topics)] == topics
    assert all(t in topic["description"] for t in topics)
    for name in topics:  # every published example is answered
        assert client.post(f"{API}/word-problem", json={**WORD, "topic": name}).status_code == 200


def test_is_revisit_must_be_a_json_boolean(client: httpx.Client) -> None:
    attempt = {"score": 0.5, "timestamp": 1_767_571_200}
    body = {"user_id": "u1", "recent_attempts": {"t1": [{**attempt, "is_revisit": 0}]}}
    r = client.post(f"{API}/predict-weakness", json=body)
    assert r.status_code == 422 and "is_revisit" in r.text
    body["recent_attempts"]["t1"][0]["is_revisit"] = True
    assert client.post(f"{API}/predict-weakness", json=body).status_code == 200


def test_openapi_says_every_topic_key_must_match(client: httpx.Client) -> None:
    """pydantic's patternProperties let any key through on paper; the server refuses them."""
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    minutes = schema["WeaknessPredictionInput"]["properties"]["time_spent_per_topic_minutes"]
    assert "patternProperties" not in json.dumps(schema)
    assert minutes["propertyNames"]["pattern"].startswith("^[^\\x00-\\x1f")
    assert minutes["additionalProperties"]["type"] == "number"
    body = {"user_id": "u1", "time_spent_per_topic_minutes": {"a\x07": 1}}
    assert client.post(f"{API}/predict-weakness", json=body).status_code == 422


@pytest.mark.parametrize(
    ("path", "change"),
    [
        ("predict-weakness", {"time_spent_per_topic_minutes": {"fractions": False}}),
        ("predict-weakness", {"now": True}),
        ("word-problem", {"seed": False}),
        ("word-problem", {"keywords": ["a<b"]}),
    ],
    ids=["minutes_false", "now_true", "seed_false", "angle_bracket"],
)
def test_values_the_schema_forbids_are_refused(
    client: httpx.Client, path: str, change: dict
) -> None:
    body = {**(WEAK if path == "predict-weakness" else WORD), **change}
    assert client.post(f"{API}/{path}", json=body).status_code == 422


def test_an_integral_float_is_a_json_integer(client: httpx.Client) -> None:
    body = {**WEAK, "now": float(WEAK["now"])}
    assert client.post(f"{API}/predict-weakness", json=body).status_code == 200
    assert client.post(f"{API}/word-problem", json={**WORD, "seed": 7.0}).status_code == 200
