"""Summary requests over real HTTP: monotone in averages and counts, topics known / aliased.

The tiny artifact is built with the shared test helpers (features from the shared online code, the
export stage's converter, `write_manifest`) but its booster is fitted by the training code with the
pipeline's monotone constraints and gets per-view Platt maps, as the pipeline's does. When the
pipeline's own exported model exists (`outputs/onnx/weakness`), the same sweep and the three
summary-only requests the previous model scored badly run against it too.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from serving.app import create_app
from serving.settings import ServingSettings
from tests.fixtures.store import NOW, write_manifest
from tests.fixtures.weakness import fit_booster, tiny_spec, training_rows, write_weakness_dir
from tests.serving._server import live_server

API = "/api/v1/ai/predict-weakness"
REPO = Path(__file__).resolve().parents[2]
PIPELINE_ONNX = REPO / "outputs" / "onnx" / "weakness"
AVERAGES = [round(0.05 * i, 2) for i in range(21)]
COUNTS = [None, 1, 2, 5, 10, 40, 300]
LEVELS = ["none", "review", "practice", "intervene"]


def _monotone_artifact(root: Path) -> Path:
    """``root/weakness/1``: a monotone-constrained booster, per-view Platt, aliases, manifest."""
    from core.summary import VIEWS
    from training.weakness import MONOTONE_DEFAULT

    spec = tiny_spec()
    x, y = training_rows(spec, n=400)
    x_val, y_val = training_rows(spec, n=200, seed=1)
    booster = fit_booster(
        (x, y),
        (x_val, y_val),
        spec["names"],
        params={"num_leaves": 7, "min_data_in_leaf": 10, "learning_rate": 0.2},
        rounds=30,
        stop=30,
        monotone=MONOTONE_DEFAULT,
    )
    views = {
        v: {"method": "platt", "a": 1.0 + 0.05 * i, "b": 0.02 * i} for i, v in enumerate(VIEWS)
    }
    calibration = {"method": "platt", "a": 1.0, "b": 0.0, "views": views}
    levels = {"thresholds": [0.3, 0.5, 0.7], "labels": LEVELS}
    out = write_weakness_dir(
        root / "weakness" / "1", booster, spec, calibration=calibration, levels=levels
    )
    write_manifest(
        out,
        name="weakness",
        version=1,
        feature_names=spec["names"],
        topics=sorted(spec["peer"]["topics"]),
        topic_aliases={"bruchrechnen": "fractions"},
    )
    return root


def _pipeline_artifact(root: Path) -> Path | None:
    """The pipeline's exported model as a served artifact (None when not built here)."""
    draft = PIPELINE_ONNX / "manifest.draft.json"
    if not draft.is_file():
        return None
    meta = json.loads(draft.read_text())
    out = root / "weakness" / "1"
    out.mkdir(parents=True)
    for name in ("model.onnx", "feature_spec.json", "calibration.json", "thresholds.json"):
        shutil.copy2(PIPELINE_ONNX / name, out / name)
    write_manifest(
        out,
        name="weakness",
        version=1,
        topics=meta.get("topics"),
        topic_aliases=meta.get("topic_aliases") or {},
    )
    return root


def _client(root: Path) -> Iterator[httpx.Client]:
    app = create_app(weakness_ref="1", settings=ServingSettings(artifact_root=root))
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    yield from _client(_monotone_artifact(tmp_path_factory.mktemp("mono")))


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    root = _pipeline_artifact(tmp_path_factory.mktemp("pipe"))
    if root is None:
        pytest.skip(f"{PIPELINE_ONNX}: no exported weakness model (run the pipeline)")
    yield from _client(root)


def _ask(client: httpx.Client, body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    r = client.post(API, json={"user_id": "u", "now": NOW, **body})
    assert r.status_code == 200, r.text
    return {w["topic_id"]: w for w in r.json()["predicted_weaknesses"]}


def _sweep(client: httpx.Client, topic: str, other: bool) -> np.ndarray:
    """P(fail) of ``topic`` per (count, average); ``other``: beside a fixed second topic."""
    grid = np.empty((len(COUNTS), len(AVERAGES)))
    for i, n in enumerate(COUNTS):
        for j, avg in enumerate(AVERAGES):
            body: dict[str, Any] = {"average_score_per_topic": {topic: avg}}
            if other:
                body["average_score_per_topic"]["other"] = 0.7
            if n is not None:
                body["attempts_per_topic"] = {topic: n, **({"other": 5} if other else {})}
            grid[i, j] = _ask(client, body)[topic]["weakness_probability"]
    return grid


def _assert_monotone(client: httpx.Client, topic: str, pass_mark: float = 0.6) -> np.ndarray:
    """Sweeps averages and attempt counts over HTTP; returns the single-topic grid."""
    # a higher average never raises weakness, whatever the count, alone or beside another
    # topic (whose evidence moves the learner-level features with it)
    for other in (False, True):
        grid = _sweep(client, topic, other)
        rises = np.diff(grid, axis=1)
        assert rises.max() <= 1e-9, f"weakness rises with the average: {rises.max():.3g}\n{grid}"
    # more attempts at a passing average (more evidence of success) never raise it; beside a
    # better topic they would lower the learner's overall mean, so this sweep is alone
    grid = _sweep(client, topic, other=False)
    passing = [j for j, a in enumerate(AVERAGES) if a >= pass_mark]
    steps = np.diff(grid[1:, passing], axis=0)  # rows with a count, in increasing count
    assert steps.max() <= 1e-9, f"weakness rises with successful attempts: {steps.max():.3g}"
    return grid


def test_tiny_model_is_monotone_through_http(tiny: httpx.Client) -> None:
    grid = _assert_monotone(tiny, "fractions")
    assert grid[:, 0].min() > grid[:, -1].max()  # the sweep moves the answer at all


def test_unknown_topics_are_marked_and_aliases_map(tiny: httpx.Client) -> None:
    got = _ask(tiny, {"average_score_per_topic": {"fractions": 0.5, "bruchrechnen": 0.5, "x": 0.5}})
    assert got["fractions"]["topic_known"] is True
    assert got["bruchrechnen"]["topic_known"] is True
    assert got["x"]["topic_known"] is False
    # the alias reads the training topic's peer mean: same evidence, same answer
    assert got["bruchrechnen"]["weakness_probability"] == pytest.approx(
        got["fractions"]["weakness_probability"], abs=1e-12
    )


def test_per_view_calibration_is_applied(tiny: httpx.Client) -> None:
    """An average over 1 attempt makes the same features with or without its count: only the
    view (averages vs averages_counts) and so its Platt map differ."""
    plain = _ask(tiny, {"average_score_per_topic": {"fractions": 0.5}})["fractions"]
    counted = _ask(
        tiny,
        {"average_score_per_topic": {"fractions": 0.5}, "attempts_per_topic": {"fractions": 1}},
    )["fractions"]
    assert plain["weakness_probability"] != pytest.approx(counted["weakness_probability"])


@pytest.mark.slow
def test_pipeline_model_is_monotone_through_http(pipeline: httpx.Client) -> None:
    grid = _assert_monotone(pipeline, "fractions")  # a topic the pipeline model was trained on
    assert grid[-1, 0] - grid[-1, -1] > 0.5  # 300 fails vs 300 perfect scores: far apart


@pytest.mark.slow
def test_pipeline_model_orders_summary_only_requests(pipeline: httpx.Client) -> None:
    """Summary-only requests: ordered, and a strong topic at level none or review."""
    one = _ask(pipeline, {"average_score_per_topic": {"a": 0.0, "b": 0.5, "c": 1.0}})
    assert one["a"]["weakness_probability"] > one["b"]["weakness_probability"]
    assert one["b"]["weakness_probability"] > one["c"]["weakness_probability"]
    assert one["c"]["suggested_action_level"] in ("none", "review")
    assert not any(w["topic_known"] for w in one.values())
    two = _ask(
        pipeline,
        {
            "average_score_per_topic": {"fractions": 0.2, "addition": 0.95, "money": 0.6},
            "attempts_per_topic": {"addition": 10},
            "recent_quiz_scores": [0.3, 0.9, 0.6, 0.95, 0.2],
            "time_spent_per_topic_minutes": {"fractions": 40, "addition": 25, "money": 30},
        },
    )
    order = sorted(two, key=lambda t: -two[t]["weakness_probability"])
    assert order[0] == "fractions" and order[-1] == "addition"
    assert two["addition"]["suggested_action_level"] in ("none", "review")
    three = _ask(pipeline, {"recent_quiz_scores": {"addition": [0.95, 0.9, 1.0, 0.95, 0.9, 1.0]}})
    assert three["addition"]["suggested_action_level"] == "none"
