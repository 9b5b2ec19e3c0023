"""The weakness service: request -> history mapping, prediction equals the pipeline's functions,
verification refuses tampered or inconsistent artifacts."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from serving.errors import ArtifactError, RequestError
from serving.manifest import ManifestError
from serving.schemas import WeaknessPredictionInput
from serving.settings import ServingSettings
from serving.weakness import UNASSIGNED_TOPIC, WeaknessModel, build_history, load_weakness
from tests.fixtures.store import DAY, NOW, write_manifest
from tests.fixtures.weakness import make_weakness_artifact


@pytest.fixture(scope="module")
def model(store: Path) -> WeaknessModel:
    return load_weakness("1", ServingSettings(artifact_root=store))


def _req(**kw: object) -> WeaknessPredictionInput:
    return WeaknessPredictionInput.model_validate({"user_id": "u1", "now": NOW, **kw})


def test_history_attempts_win_over_scores_and_average() -> None:
    req = _req(
        recent_attempts={
            "a": [
                {
                    "score": 0.5,
                    "timestamp": NOW - 10,
                    "time_spent_s": 60,
                    "hints_used": 2,
                    "is_revisit": True,
                    "activity": "minigame",
                }
            ]
        },
        recent_quiz_scores={"a": [0.1, 0.2], "b": [0.3, 0.4]},
        average_score_per_topic={"a": 0.9, "b": 0.9, "c": 0.8},
        time_spent_per_topic_minutes={"b": 4.0},
    )
    h = build_history(req, now=NOW, quiz_spacing_s=DAY)
    assert h["topic_id"] == ["a", "b", "b", "c"]
    assert h["score"] == [0.5, 0.3, 0.4, 0.8]
    # recent_quiz_scores: oldest first, one spacing apart, the last one spacing before now
    assert h["timestamp"] == [NOW - 10, NOW - 2 * DAY, NOW - DAY, NOW - DAY]
    assert h["time_spent_s"][:3] == [60.0, 120.0, 120.0]  # 4 min shared by b's two events
    assert math.isnan(h["time_spent_s"][3]) and math.isnan(h["hints_used"][1])
    assert h["hints_used"][0] == 2.0 and h["is_revisit"] == [True, False, False, False]
    assert h["activity"][0] == "minigame"


def test_history_flat_scores_go_to_the_unassigned_topic() -> None:
    req = _req(recent_quiz_scores=[0.2, 0.9], average_score_per_topic={"a": 0.5})
    h = build_history(req, now=NOW, quiz_spacing_s=DAY)
    assert h["topic_id"] == ["a", UNASSIGNED_TOPIC, UNASSIGNED_TOPIC]
    assert req.topics() == ["a"]


def test_prediction_equals_shared_pipeline_functions(model: WeaknessModel) -> None:
    """Served probability == request_features -> ONNX -> apply_calibration, run by hand."""
    import onnxruntime as ort

    from core.online import request_features
    from serving.weakness_post import action_levels, apply_calibration

    req = _req(
        recent_quiz_scores={"fractions": [0.1, 0.3, 0.2], "addition": [1.0, 0.9]},
        average_score_per_topic={"division": 0.7},
    )
    out = model.predict(req)
    h = build_history(req, now=NOW, quiz_spacing_s=model.settings.quiz_spacing_s)
    topics = req.topics()
    x = request_features(model.spec, h, topics, NOW)
    sess = ort.InferenceSession(str(model.artifact_dir / "model.onnx"))
    p_raw = sess.run(["probabilities"], {"features": x})[0][:, 1]
    p = apply_calibration(p_raw, model.calibration)
    want = dict(zip(topics, p, strict=True))
    levels = dict(
        zip(
            topics,
            action_levels(p, [0.3, 0.5, 0.7], ["none", "review", "practice", "intervene"]),
            strict=True,
        )
    )
    got = {w.topic_id: w.weakness_probability for w in out.predicted_weaknesses}
    assert got == pytest.approx(want, abs=1e-12)
    assert {w.topic_id: w.suggested_action_level for w in out.predicted_weaknesses} == levels
    probs = [w.weakness_probability for w in out.predicted_weaknesses]
    assert probs == sorted(probs, reverse=True)
    assert out.model_version == "1"


def test_low_scores_predict_higher_risk(model: WeaknessModel) -> None:
    out = model.predict(
        _req(
            recent_quiz_scores={
                "weak": [0.1, 0.0, 0.2, 0.1, 0.15],
                "strong": [1.0, 0.95, 0.9, 1.0, 0.95],
            }
        )
    )
    p = {w.topic_id: w.weakness_probability for w in out.predicted_weaknesses}
    assert p["weak"] > p["strong"]
    assert out.predicted_weaknesses[0].topic_id == "weak"


def test_attempt_after_server_now_is_a_request_error(model: WeaknessModel) -> None:
    req = WeaknessPredictionInput.model_validate(
        {"user_id": "u", "recent_attempts": {"a": [{"score": 1, "timestamp": NOW + 5}]}}
    )
    with pytest.raises(RequestError) as err:
        model.predict(req, now=NOW)
    assert err.value.field == "recent_attempts['a'][0].timestamp"


def test_tampered_file_is_refused(store: Path, tmp_path: Path) -> None:
    bad = tmp_path / "weakness" / "1"
    shutil.copytree(store / "weakness" / "1", bad)
    spec = json.loads((bad / "feature_spec.json").read_text())
    spec["pass_mark"] = 0.5
    (bad / "feature_spec.json").write_text(json.dumps(spec))
    with pytest.raises(ManifestError, match=r"feature_spec\.json"):
        load_weakness(str(bad), ServingSettings(artifact_root=tmp_path))


def test_spec_width_mismatch_is_refused(store: Path, tmp_path: Path) -> None:
    bad = tmp_path / "weakness" / "1"
    shutil.copytree(store / "weakness" / "1", bad)
    spec = json.loads((bad / "feature_spec.json").read_text())
    spec["input_name"] = "x"
    (bad / "feature_spec.json").write_text(json.dumps(spec))
    write_manifest(bad, name="weakness", version=1)  # re-sign: the content itself is wrong
    with pytest.raises(ArtifactError, match="input_name"):
        load_weakness(str(bad), ServingSettings(artifact_root=tmp_path))


def test_generator_artifact_is_not_a_weakness_model(store: Path) -> None:
    with pytest.raises(ArtifactError, match="not a weakness model"):
        load_weakness(str(store / "generator" / "1"), ServingSettings(artifact_root=store))


def test_fresh_version_resolves_by_alias(tmp_path: Path) -> None:
    from tests.fixtures.store import set_alias

    make_weakness_artifact(tmp_path, version=3)
    set_alias(tmp_path, "weakness", "champion", 3)
    m = load_weakness("champion", ServingSettings(artifact_root=tmp_path))
    assert m.version == "3"
    rows = np.zeros((2, len(m.spec["names"])), dtype=np.float32)
    p = m.predict_features(rows)
    assert p.shape == (2,) and np.all((p >= 0) & (p <= 1))
