"""Practice sets: readable reasons, verified problems, the endpoints and their 422s.

The weakness model is the tiny real artifact of the shared store (LightGBM -> ONNX, trained on
fractions histories); problems come from the rule-based templates (``tests.fixtures.practice``)
or, over HTTP, from the store's tiny T5. The last test serves the pipeline's own exported models
when ``dvc repro`` has produced them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from serving.app import create_app
from serving.arithmetic import evaluate
from serving.practice import Candidate, explain, practice_set, verified_problems, verify
from serving.schemas import PracticeSetInput, PracticeSetOutput, QuestionOutput
from serving.settings import ServingSettings
from serving.topics import SUPPORTED_TOPICS, equation_fits_topic
from serving.weakness import load_weakness
from tests.fixtures.practice import template_source
from tests.fixtures.store import NOW
from tests.serving._server import live_server, store_client

DAY = 86_400
REPO = Path(__file__).resolve().parents[2]


def weak_in_fractions(**extra: Any) -> dict[str, Any]:
    """A learner failing fractions three weeks ago, strong in addition, with a chess score."""
    return {
        "user_id": "u7",
        "now": NOW,
        "recent_attempts": {
            "fractions": [
                {"score": s, "timestamp": NOW - (21 + i) * DAY}
                for i, s in enumerate([0.2, 0.3, 0.35, 0.4])
            ]
        },
        "average_score_per_topic": {"addition": 0.95, "chess": 0.9},
        "attempts_per_topic": {"addition": 10},
        **extra,
    }


@pytest.fixture(scope="module")
def weakness(store: Path) -> Any:
    return load_weakness("1", ServingSettings(artifact_root=store))


def test_reasons_name_the_evidence_that_raises_the_probability(weakness: Any) -> None:
    request = PracticeSetInput.model_validate(weak_in_fractions())
    reasons = explain(weakness, request, ["fractions", "addition"], NOW)
    fractions = reasons["fractions"]
    texts = " | ".join(r.text for r in fractions)
    assert "no practice for 21 days" in texts or "scores average" in texts, texts
    effects = [r.effect for r in fractions if r.effect is not None]
    assert effects and all(e > 0 for e in effects)
    assert effects == sorted(effects, reverse=True)
    assert len(fractions) <= 4
    # an evidence's effect is the probability drop when it is set to a typical learner's
    row = next(r for r in fractions if r.effect is not None)
    assert row.feature in {"recent_scores", "average_score", "recency", "learner_level", "hints"}


def test_summary_only_topics_are_not_described_as_attempts(weakness: Any) -> None:
    """An average is not a run of attempts: no "last scores", no fail count, no count unsent."""
    request = PracticeSetInput.model_validate(
        {"user_id": "u1", "now": NOW, "average_score_per_topic": {"fractions": 0.2}}
    )
    texts = [r.text for r in explain(weakness, request, ["fractions"], NOW)["fractions"]]
    assert texts and not any("last" in t or "failed" in t or "attempt" in t for t in texts), texts
    counted = PracticeSetInput.model_validate(
        {
            "user_id": "u1",
            "now": NOW,
            "average_score_per_topic": {"fractions": 0.2},
            "attempts_per_topic": {"fractions": 6},
        }
    )
    texts = [r.text for r in explain(weakness, counted, ["fractions"], NOW)["fractions"]]
    average = [t for t in texts if t.startswith("average")]
    assert average == [] or "over 6 attempts" in average[0], texts


def test_verified_problems_fit_the_topic_and_repeat_for_the_same_seed() -> None:
    first = verified_problems(
        template_source, topic="fractions", n=4, keywords=[], grade=4, base_seed=11
    )
    again = verified_problems(
        template_source, topic="fractions", n=4, keywords=[], grade=4, base_seed=11
    )
    assert len(first) == 4 and first == again
    assert len({p.text for p in first}) == 4
    for p in first:
        assert equation_fits_topic("fractions", p.equation, p.text)
        assert abs(evaluate(p.equation) - p.answer) < 1e-9
        assert p.text.endswith("?")
    other = verified_problems(
        template_source, topic="fractions", n=4, keywords=[], grade=4, base_seed=12
    )
    assert [p.text for p in other] != [p.text for p in first]


@pytest.mark.parametrize(
    ("cand", "why"),
    [
        (Candidate("Ann has 3 apples and 4 pears. How many?", "3 + 4", 7.0, 1), "off topic"),
        (Candidate("Half of 8 apples are red.", "8 / 2", 4.0, 1), "no question"),
        (Candidate("What is half of 8 apples?", None, None, 1), "no verified answer"),
    ],
)
def test_verify_refuses_what_a_teacher_could_not_hand_out(cand: Candidate, why: str) -> None:
    assert verify("fractions", cand) is None, why
    assert verify("fractions", Candidate("What is 1/2 of 8 apples?", "8 / 2", 4.0, 1))


def test_practice_set_picks_the_weakest_topics_with_problems_and_notes(weakness: Any) -> None:
    request = PracticeSetInput.model_validate(
        weak_in_fractions(n_topics=3, problems_per_topic=2, grade=4, seed=5)
    )
    out = practice_set(
        request,
        weakness=weakness,
        source=template_source,
        generator_topics=SUPPORTED_TOPICS,
        generator_version="templates",
    )
    probs = [t.weakness_probability for t in out.topics]
    assert probs == sorted(probs, reverse=True) and len(out.topics) == 3
    by_id = {t.topic_id: t for t in out.topics}
    assert out.topics[0].topic_id == "fractions"
    assert by_id["fractions"].reasons and by_id["fractions"].topic_known
    for topic in ("fractions", "addition"):
        assert len(by_id[topic].problems) == 2
        for p in by_id[topic].problems:
            assert equation_fits_topic(topic, p.equation, p.text)
    chess = by_id["chess"]
    assert chess.problems == [] and chess.generator_topic is None and not chess.topic_known
    # the model has no peers for an unknown topic: no "other learners" comparison is made
    assert not any("other learners" in r.text for r in chess.reasons), chess.reasons
    assert "no generated problems" in (chess.note or "") and "fractions" in (chess.note or "")
    again = practice_set(
        request,
        weakness=weakness,
        source=template_source,
        generator_topics=SUPPORTED_TOPICS,
        generator_version="templates",
    )
    assert again == out  # a seeded request is reproducible


# ----------------------------------------------------------------------------- over HTTP


@pytest.fixture(scope="module")
def client(store: Path) -> Iterator[httpx.Client]:
    with store_client(store, generator_max_attempts=1, timeout_s=60) as c:
        yield c


def test_practice_set_over_http_answers_the_response_model(client: httpx.Client) -> None:
    r = client.post(
        "/api/v1/ai/practice-set", json=weak_in_fractions(n_topics=2, problems_per_topic=1)
    )
    assert r.status_code == 200, r.text
    out = PracticeSetOutput.model_validate(r.json())
    assert out.topics[0].topic_id == "fractions"
    assert out.topics[0].reasons
    for t in out.topics:  # the tiny random T5 rarely verifies: then a note says so
        assert len(t.problems) == 1 or t.note


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"n_topics": 0}, "n_topics"),
        ({"n_topics": 6}, "n_topics"),
        ({"problems_per_topic": 9}, "problems_per_topic"),
        ({"grade": 0}, "grade"),
        ({"grade": 13}, "grade"),
        ({"keywords": ["pizza, chips"]}, "keywords"),
        ({"keywords": ["a"] * 9}, "keywords"),
        ({"seed": -1}, "seed"),
        ({"n_topic": 2}, "n_topic"),
    ],
)
def test_bad_practice_requests_are_422s_naming_the_field(
    client: httpx.Client, change: dict[str, Any], field: str
) -> None:
    r = client.post("/api/v1/ai/practice-set", json=weak_in_fractions(**change))
    assert r.status_code == 422, r.text
    locs = [e["loc"] for e in r.json()["detail"]]
    assert any(loc[:2] == ["body", field] for loc in locs), locs


def test_question_endpoint_maps_topic_id_through_synonyms(client: httpx.Client) -> None:
    q = {"question_type": "ai_word_problem", "topic_id": "Times tables", "seed": 3, "grade": 3}
    r = client.get("/api/v1/q/questions/generate", params=q)
    assert r.status_code == 200, r.text
    out = QuestionOutput.model_validate(r.json())
    assert (out.topic, out.topic_id, out.question_type) == (
        "multiplication",
        "Times tables",
        "ai_word_problem",
    )


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"question_type": "ai_word_problem", "topic_id": "chess"}, "topic_id"),
        ({"question_type": "quiz", "topic_id": "sums"}, "question_type"),
        ({"topic_id": "sums"}, "question_type"),
        ({"question_type": "ai_word_problem"}, "topic_id"),
        ({"question_type": "ai_word_problem", "topic_id": "sums", "grade": 99}, "grade"),
        ({"question_type": "ai_word_problem", "topic_id": "sums", "max_length": 5}, "max_length"),
    ],
)
def test_bad_question_queries_are_422s_naming_the_parameter(
    client: httpx.Client, query: dict[str, Any], field: str
) -> None:
    r = client.get("/api/v1/q/questions/generate", params=query)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert any(e["loc"][:2] == ["query", field] for e in detail), detail
    if field == "topic_id" and "topic_id" in query:
        assert "supported topics" in detail[0]["msg"]


# ------------------------------------------------------------------ the pipeline's own models

WEAKNESS_DIR = REPO / "outputs" / "onnx" / "weakness"
QUANTIZE_METRICS = REPO / "metrics" / "quantize.json"
VARIANTS = REPO / "outputs" / "onnx" / "generator_variants"


@pytest.fixture(scope="module")
def pipeline_client() -> Iterator[httpx.Client]:
    if not (WEAKNESS_DIR / "model.onnx").is_file() or not VARIANTS.is_dir():
        pytest.skip("the pipeline's models are not built here (dvc repro score quests)")
    from pipelines.quests import shipped_variant
    from serving.decode_loop import OnnxSeq2SeqGenerator
    from serving.generator import GeneratorModel, typed_parts
    from serving.weakness import open_weakness

    settings = ServingSettings.from_env({})
    manifest = json.loads((WEAKNESS_DIR / "manifest.draft.json").read_text())
    weakness = open_weakness(WEAKNESS_DIR, manifest, settings)
    model_dir = shipped_variant(VARIANTS, QUANTIZE_METRICS)
    engine = OnnxSeq2SeqGenerator(model_dir, intra_op_num_threads=1)
    generator = GeneratorModel(
        artifact_dir=model_dir,
        manifest={"version": "pipeline", "topics": list(SUPPORTED_TOPICS)},
        engine=engine,
        settings=settings,
        **typed_parts(model_dir, engine),
    )
    app = create_app(weakness=weakness, generator=generator, settings=settings)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=60) as c:
        yield c


def test_pipeline_model_knows_ludoras_topics(pipeline_client: httpx.Client) -> None:
    """The README's summary request: every topic known, fractions weakest, addition least."""
    body = {
        "user_id": "u42",
        "average_score_per_topic": {"fractions": 0.2, "addition": 0.95, "money": 0.6},
        "attempts_per_topic": {"addition": 10},
        "recent_quiz_scores": [0.3, 0.9, 0.6, 0.95, 0.2],
        "time_spent_per_topic_minutes": {"fractions": 40, "addition": 25, "money": 30},
    }
    r = pipeline_client.post("/api/v1/ai/predict-weakness", json=body)
    assert r.status_code == 200, r.text
    rows = r.json()["predicted_weaknesses"]
    assert [w["topic_id"] for w in rows] == ["fractions", "money", "addition"]
    assert all(w["topic_known"] for w in rows)
    levels = ["none", "review", "practice", "intervene"]
    order = [levels.index(w["suggested_action_level"]) for w in rows]
    assert order == sorted(order, reverse=True) and order[0] > order[-1]


def test_pipeline_practice_set_gives_verified_fraction_problems(
    pipeline_client: httpx.Client,
) -> None:
    body = weak_in_fractions(n_topics=2, problems_per_topic=3, grade=4, keywords=["pizza"], seed=1)
    r = pipeline_client.post("/api/v1/ai/practice-set", json=body)
    assert r.status_code == 200, r.text
    first = r.json()["topics"][0]
    assert first["topic_id"] == "fractions" and first["topic_known"]
    assert first["reasons"] and all(x["text"] for x in first["reasons"])
    assert len(first["problems"]) == 3, first
    for p in first["problems"]:
        assert equation_fits_topic("fractions", p["equation"], p["text"])
        assert abs(evaluate(p["equation"]) - p["answer"]) < 1e-9
