"""The drop-in in a backend-shaped package: the seed's schemas, services and router over the export.

The fast variant runs the package with this repo's venv; the ``venv`` one builds a fresh virtualenv
with only ``requirements-serving.txt`` (no system site packages; ~1 min with pip's warm cache)
and checks the answers are the same and no heavy module was imported.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from serving.settings import ServingSettings
from tests.fixtures.http_probe import run_isolated, serving_venv
from tests.fixtures.store import NOW
from tests.serving._backend_pkg import write_backend_package

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
REQUESTS = {
    "weakness": [
        {"user_id": "u1", "average_score_per_topic": {"fractions": 0.55, "addition": 0.9}},
        {
            "user_id": "u2",
            "recent_quiz_scores": {"fractions": [0.4, 0.6, 0.5]},
            "time_spent_per_topic_minutes": {"fractions": 35},
        },
    ],
    "word_problem": [{"topic": "fractions", "keywords": ["apples", "coins"], "max_length": 24}],
    "practice": [
        {
            "user_id": "u3",
            "average_score_per_topic": {"fractions": 0.3, "addition": 0.9, "chess": 0.5},
            "n_topics": 3,
            "problems_per_topic": 1,
            "grade": 4,
            "seed": 1,
        }
    ],
    "question": [{"question_type": "ai_word_problem", "topic_id": "Times tables", "grade": 3}],
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.fixtures.store import champion_store

    return champion_store(tmp_path_factory, "dropin")


@pytest.fixture(scope="module")
def export_dir(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from export.backend import BackendExportConfig, export_backend

    to = tmp_path_factory.mktemp("dropin-out") / "onnx_placeholder_models"
    export_backend(BackendExportConfig(to=to), ServingSettings(artifact_root=store))
    return to


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_backend_package(tmp_path_factory.mktemp("backend-pkg"))


def run_package(python: str, package: Path, export_dir: Path) -> dict[str, Any]:
    env = {
        "PYTHONPATH": f"{package}{os.pathsep}{REPO}",
        "LUDORA_BACKEND_DIR": str(export_dir),
        "CHECK_NOW": str(NOW),
    }
    stdout = run_isolated(
        [python, str(package / "check.py"), json.dumps(REQUESTS)], cwd=package, env=env
    )
    line = next(x for x in stdout.splitlines() if x.startswith("RESULT "))
    return dict(json.loads(line[len("RESULT ") :]))


def _expected_weakness(store: Path) -> list[list[tuple[str, float, str]]]:
    from serving.schemas import WeaknessPredictionInput
    from serving.weakness import load_weakness

    model = load_weakness("champion", ServingSettings(artifact_root=store))
    out = []
    for body in REQUESTS["weakness"]:
        res = model.predict(WeaknessPredictionInput.model_validate({**body, "now": NOW}))
        out.append(
            [
                (w.topic_id, w.weakness_probability, w.suggested_action_level)
                for w in res.predicted_weaknesses
            ]
        )
    return out


def _check(result: dict[str, Any], store: Path) -> None:
    want = _expected_weakness(store)
    for (status, body), expected in zip(result["weakness"], want, strict=True):
        assert status == 200
        got = [
            (w["topic_id"], w["weakness_probability"], w["suggested_action_level"])
            for w in body["predicted_weaknesses"]
        ]
        assert [g[0] for g in got] == [e[0] for e in expected]
        assert [g[2] for g in got] == [e[2] for e in expected]
        assert max(abs(g[1] - e[1]) for g, e in zip(got, expected, strict=True)) <= 1e-9
    (status, body), *_ = result["word_problem"]
    assert status == 200 and isinstance(body["generated_problem_text"], str)
    (status, body), *_ = result["question"]
    assert status == 200 and body["topic"] == "multiplication"
    assert body["topic_id"] == "Times tables" and body["question_type"] == "ai_word_problem"
    (status, body), *_ = result["practice"]
    assert status == 200
    topics = {t["topic_id"]: t for t in body["topics"]}
    assert set(topics) == {"fractions", "addition", "chess"}
    probs = [t["weakness_probability"] for t in body["topics"]]
    assert probs == sorted(probs, reverse=True)
    assert topics["chess"]["problems"] == [] and "no generated problems" in topics["chess"]["note"]
    assert all(t["reasons"] for t in body["topics"])


def test_backend_package_in_this_venv(store: Path, export_dir: Path, package: Path) -> None:
    result = run_package(sys.executable, package, export_dir)
    _check(result, store)


@pytest.mark.venv
def test_backend_package_in_a_light_venv(
    store: Path, export_dir: Path, package: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    python = serving_venv(tmp_path_factory.mktemp("light") / "venv")
    light = run_package(str(python), package, export_dir)
    assert light["heavy_modules"] == []
    _check(light, store)
    assert light == {**run_package(sys.executable, package, export_dir), "heavy_modules": []}
