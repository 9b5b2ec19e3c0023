"""Topics and length over real HTTP: synonyms, 422s that list the allowed values, ``complete``.

The tiny real artifact of ``tests.serving._artifacts`` serves the 422 and listing tests; a copy of
it whose manifest lists its own topics checks the per-artifact list; the real generator service
over a scripted engine (the ``TextEngine`` seam) returns a text cut before its question.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from serving import limits
from serving.app import _completeness, create_app
from serving.generator import GeneratorModel
from serving.settings import ServingSettings
from serving.topics import DEFAULT_TOPICS, SUPPORTED_TOPICS
from tests.fixtures.store import write_manifest
from tests.serving._server import live_server

API = "/api/v1/ai"
WORD = {"topic": "fractions", "keywords": ["apples"], "max_length": limits.MIN_COMPLETE_LENGTH}


@pytest.fixture(scope="module")
def client(store: Path) -> Iterator[httpx.Client]:
    settings = ServingSettings(artifact_root=store, generator_max_attempts=1)
    app = create_app(generator_ref="1", settings=settings)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        yield c


def _detail(r: httpx.Response, field: str) -> str:
    assert r.status_code == 422, r.text
    msgs = [e["msg"] for e in r.json()["detail"] if e["loc"][:2] == ["body", field]]
    assert msgs, r.json()
    return str(msgs[0])


@pytest.mark.parametrize("topic", ["dragons", "history", "geometry2"])
def test_unknown_topic_is_422_listing_the_topics(client: httpx.Client, topic: str) -> None:
    msg = _detail(client.post(f"{API}/word-problem", json={**WORD, "topic": topic}), "topic")
    assert topic in msg
    assert all(t in msg for t in SUPPORTED_TOPICS)


def test_topic_the_artifact_lacks_is_422_listing_its_topics(client: httpx.Client) -> None:
    # "mixed" is a known synonym, but the tiny artifact's manifest lists no topics: templates only
    msg = _detail(client.post(f"{API}/word-problem", json={**WORD, "topic": "mixed"}), "topic")
    assert "mixed operations" in msg and all(t in msg for t in DEFAULT_TOPICS)


@pytest.mark.parametrize("topic", ["Sums", "percent", "times tables", "Fractions"])
def test_synonyms_are_served(client: httpx.Client, topic: str) -> None:
    r = client.post(f"{API}/word-problem", json={**WORD, "topic": topic, "seed": 3})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("max_length", [0, 8, limits.MIN_COMPLETE_LENGTH - 1])
def test_too_small_max_length_is_422_naming_the_minimum(
    client: httpx.Client, max_length: int
) -> None:
    r = client.post(f"{API}/word-problem", json={**WORD, "max_length": max_length})
    msg = _detail(r, "max_length")
    assert str(limits.MIN_COMPLETE_LENGTH) in msg and "complete problem" in msg


def test_minimum_max_length_is_served_and_marks_completeness(client: httpx.Client) -> None:
    r = client.post(f"{API}/word-problem", json={**WORD, "seed": 1})
    assert r.status_code == 200, r.text
    body = r.json()
    ends_with_question = body["generated_problem_text"].rstrip().endswith("?")
    assert body["complete"] is ends_with_question
    assert (body["incomplete_reason"] is None) is ends_with_question


def test_models_lists_topics_and_synonyms(client: httpx.Client) -> None:
    models = {m["name"]: m for m in client.get(f"{API}/models").json()["models"]}
    gen = models["generator"]
    assert gen["topics"] == list(DEFAULT_TOPICS)
    assert gen["topic_synonyms"]["sum"] == "addition"
    assert set(gen["topic_synonyms"].values()) <= set(DEFAULT_TOPICS)
    schema = client.get("/openapi.json").json()["components"]["schemas"]["WordProblemInput"]
    assert schema["properties"]["max_length"]["minimum"] == limits.MIN_COMPLETE_LENGTH


def test_manifest_topics_win(store: Path, tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    art = root / "generator" / "2"
    shutil.copytree(store / "generator" / "1", art)
    (art / "manifest.json").unlink()
    write_manifest(art, name="generator", version=2, topics=["addition", "mixed operations"])
    app = create_app(generator_ref="2", settings=ServingSettings(artifact_root=root))
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        gen = c.get(f"{API}/models").json()["models"][0]
        assert gen["topics"] == ["addition", "mixed operations"]
        assert gen["topic_synonyms"]["multistep"] == "mixed operations"
        assert "percent" not in gen["topic_synonyms"]
        ok = c.post(f"{API}/word-problem", json={**WORD, "topic": "multi-step", "seed": 2})
        assert ok.status_code == 200, ok.text
        msg = _detail(c.post(f"{API}/word-problem", json={**WORD, "topic": "fractions"}), "topic")
        assert "addition, mixed operations" in msg


class _Scripted:
    """A TextEngine returning one fixed text, recording prompts."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.prompts: list[str] = []

    def generate_text(self, prompt: str, **kwargs: Any) -> str:
        self.prompts.append(prompt)
        return self.text


def test_cut_problem_is_marked_incomplete_and_topic_is_canonical() -> None:
    engine = _Scripted("Tom has 3 apples and gets 4 more . How many")
    model = GeneratorModel(
        artifact_dir=Path("."),
        manifest={"version": 7},
        engine=engine,
        settings=ServingSettings(generator_max_attempts=1),
    )
    app = create_app(generator=model, settings=ServingSettings(generator_max_attempts=1))
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        r = c.post(f"{API}/word-problem", json={**WORD, "topic": "Sums", "seed": 1})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["complete"] is False
    assert "no final '?'" in body["incomplete_reason"]
    assert "addition" in engine.prompts[0] and "Sums" not in engine.prompts[0]


class _Result:
    generated_problem_text = "How many apples?"


def test_completeness_prefers_the_generators_verdict() -> None:
    assert _completeness(_Result(), 30) == {"complete": True, "incomplete_reason": None}
    verdict = type("R", (), {"complete": False, "incomplete_reason": "cut", **vars(_Result)})
    assert _completeness(verdict(), 30) == {"complete": False, "incomplete_reason": "cut"}
