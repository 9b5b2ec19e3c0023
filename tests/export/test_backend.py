"""`export-backend` on tiny packaged artifacts: four items, gates, target safety, the seed's API."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from export.backend import (
    OWN_ENTRIES,
    BackendExportConfig,
    BackendExportError,
    export_backend,
    weakness_parity,
)
from serving.backend import (
    BackendDirError,
    generate_ai_word_problem,
    load_backend,
    predict_user_weakness,
    verify_backend_dir,
)
from serving.onnx_files import ONE_FILE_NAME, WEAKNESS_BACKEND_FILE
from serving.schemas import WeaknessPredictionInput, WordProblemInput
from serving.settings import ServingSettings
from tests.fixtures.store import NOW, write_manifest
from tests.fixtures.weakness import tiny_spec, training_rows

pytestmark = pytest.mark.slow

REQUESTS = [
    {"average_score_per_topic": {"fractions": 0.55, "addition": 0.9}},
    {"recent_quiz_scores": {"fractions": [0.4, 0.6, 0.5]}, "time_spent_per_topic_minutes": {}},
    {
        "recent_attempts": {
            "division": [
                {"score": 0.3, "timestamp": NOW - 3600, "time_spent_s": 120, "hints_used": 2},
                {"score": 0.8, "timestamp": NOW - 600},
            ]
        },
        "average_score_per_topic": {"fractions": 0.2},
    },
]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.fixtures.store import champion_store

    return champion_store(tmp_path_factory, "bk")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    import pandas as pd

    from serving.prompt import format_prompt

    d = tmp_path_factory.mktemp("bk-data")
    spec = tiny_spec()
    x, _ = training_rows(spec, n=120, seed=7)
    pd.DataFrame(x, columns=spec["names"]).to_parquet(d / "test.parquet")
    kws = [["apples", "baskets"], ["coins"], ["Tom", "apples"], ["baskets", "coins", "Anna"]]
    lines = [
        json.dumps({"prompt": format_prompt(t, k, "")})
        for t in ("addition", "fractions")
        for k in kws
    ]
    (d / "test.jsonl").write_text("\n".join(lines) + "\n")
    return d / "test.parquet", d / "test.jsonl"


def _cfg(to: Path, data: tuple[Path, Path], **kw: object) -> BackendExportConfig:
    return BackendExportConfig(to=to, features_test=data[0], prompts_file=data[1], **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def exported(
    store: Path, data: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict]:
    to = tmp_path_factory.mktemp("bk-out") / "onnx_placeholder_models"
    manifest = export_backend(_cfg(to, data), ServingSettings(artifact_root=store))
    return to, manifest


def test_export_writes_the_four_items_with_gates(exported: tuple[Path, dict]) -> None:
    import onnx

    to, manifest = exported
    assert {p.name for p in to.iterdir()} == OWN_ENTRIES
    assert verify_backend_dir(to)["files"] == manifest["files"]
    assert set(manifest["files"]) >= {
        WEAKNESS_BACKEND_FILE,
        ONE_FILE_NAME,
        "tokenizer/tokenizer.json",
        "tokenizer/tokenizer_config.json",
    }
    w, g = manifest["weakness"], manifest["generator"]
    assert w["source"]["version"] == 1 and g["source"]["version"] == 1
    assert max(w["parity"]["max_abs_diff"].values()) <= 1e-6
    assert w["parity"]["n_rows"] == 120
    assert g["parity"]["n_equal"] == g["parity"]["n_prompts"] == 8
    assert "sequences" in g["outputs"] and "max_length" in g["inputs"]
    meta = {p.key: p.value for p in onnx.load(str(to / WEAKNESS_BACKEND_FILE)).metadata_props}
    assert json.loads(meta["feature_names"]) == tiny_spec()["names"]
    assert json.loads(meta["action_thresholds"]) == [0.3, 0.5, 0.7]
    assert json.loads(meta["action_labels"]) == ["none", "review", "practice", "intervene"]


def test_tokenizer_dir_loads_with_transformers(exported: tuple[Path, dict]) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(exported[0] / "tokenizer"))
    assert tok.eos_token == "</s>" and tok.pad_token == "<pad>"
    ids = tok.convert_tokens_to_ids(["Tom", "has"])
    assert tok.decode([0, *ids, 1, 1], skip_special_tokens=True) == "Tom has"


def test_seed_weakness_function_equals_http_service(
    store: Path, exported: tuple[Path, dict]
) -> None:
    from serving.weakness import load_weakness

    app_model = load_weakness("champion", ServingSettings(artifact_root=store))
    backend = load_backend(exported[0])
    for body in REQUESTS:
        req = WeaknessPredictionInput.model_validate({"user_id": "u1", "now": NOW, **body})
        want = app_model.predict(req)
        got = predict_user_weakness(req, backend=backend)
        assert [t.topic_id for t in got.predicted_weaknesses] == [
            t.topic_id for t in want.predicted_weaknesses
        ]
        for a, b in zip(got.predicted_weaknesses, want.predicted_weaknesses, strict=True):
            assert abs(a.weakness_probability - b.weakness_probability) <= 1e-9
            assert a.suggested_action_level == b.suggested_action_level


def test_http_app_and_drop_in_generate_through_one_interface(
    store: Path, exported: tuple[Path, dict], data: tuple[Path, Path]
) -> None:
    """The HTTP app's decoder (three ONNX files, Python loop) and the drop-in's (the one-file
    graph) are both a ``TokenDecoder``: equal greedy ids on the evaluation prompts; and the one
    ``GeneratorModel`` policy over either gives the same greedy result."""
    from serving.decode_loop import OnnxSeq2SeqGenerator
    from serving.decoding import TokenDecoder
    from serving.generator import GeneratorModel, load_generator
    from serving.one_file import OneFileDecoder

    settings = ServingSettings(artifact_root=store)
    http = load_generator("champion", settings)
    backend = load_backend(exported[0])
    assert isinstance(http.engine, OnnxSeq2SeqGenerator)
    assert isinstance(backend.generator.engine, OneFileDecoder)
    decoders: list[TokenDecoder] = [http.engine, backend.generator.engine]
    prompts = [json.loads(line)["prompt"] for line in data[1].read_text().splitlines()]
    for prompt in prompts:
        loop_ids, graph_ids = (d.generate(d.encode(prompt), max_new_tokens=12) for d in decoders)
        assert loop_ids == graph_ids, prompt
    greedy_http = GeneratorModel(
        artifact_dir=http.artifact_dir,
        manifest=http.manifest,
        engine=http.engine,
        settings=settings.model_copy(update={"generator_max_attempts": 1}),
        sample=False,
    )
    for topic, keywords in (("fractions", ["apples", "coins"]), ("addition", ["Tom", "apples"])):
        request = {"topic": topic, "keywords": keywords, "max_length": 32, "seed": 3}
        want = greedy_http.generate(**request)  # type: ignore[arg-type]
        assert backend.generator.generate(**request) == want  # type: ignore[arg-type]
        out = generate_ai_word_problem(WordProblemInput.model_validate(request), backend=backend)
        assert (out.generated_problem_text, out.equation, out.answer, out.seed) == (
            want.generated_problem_text,
            want.equation,
            want.answer,
            3,
        )
        assert out.model_version == "1" and out.attempts == 1
        assert out.consistent == (out.equation is not None)
    with pytest.raises(ValueError, match="do_sample"):  # the graph's loop has no sampler
        backend.generator.engine.generate([5, 1], do_sample=True)


def test_tampered_export_is_refused(exported: tuple[Path, dict], tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(exported[0], copy)
    path = copy / ONE_FILE_NAME
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BackendDirError, match=rf"{re.escape(ONE_FILE_NAME)}: sha256"):
        load_backend(copy)


def test_target_safety(store: Path, data: tuple[Path, Path], tmp_path: Path) -> None:
    settings = ServingSettings(artifact_root=store)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(BackendExportError, match="not a previous export-backend output"):
        export_backend(_cfg(foreign, data, max_prompts=1), settings)
    assert (foreign / "notes.txt").read_text() == "keep me"
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(BackendExportError, match="not a directory"):
        export_backend(_cfg(a_file, data, max_prompts=1, force=True), settings)
    assert a_file.read_text() == "x"
    # --force moves the foreign directory aside; it is never deleted
    manifest = export_backend(_cfg(foreign, data, max_prompts=1, force=True), settings)
    aside = Path(manifest["replaced_dir_moved_to"])
    assert (aside / "notes.txt").read_text() == "keep me"
    assert (foreign / "manifest.json").is_file()
    # a previous export is ours: replaced without --force
    export_backend(_cfg(foreign, data, max_prompts=1), settings)
    assert verify_backend_dir(foreign)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_weakness_parity_failure_is_named(store: Path, exported: tuple[Path, dict]) -> None:
    from serving.weakness import load_weakness

    ref = load_weakness("champion", ServingSettings(artifact_root=store))
    ref.calibration = {"method": "platt", "a": 1.0, "b": 0.01}  # not what the graph folded in
    rows, _ = training_rows(tiny_spec(), n=20, seed=3)
    session = load_backend(exported[0]).weakness.session
    with pytest.raises(BackendExportError, match=r"weakness parity: .* > 1e-06 \(view default"):
        weakness_parity(session, ref, rows, atol=1e-6)


def test_per_view_calibration_folds_into_the_graph(
    store: Path, data: tuple[Path, Path], tmp_path: Path
) -> None:
    from serving.weakness import load_weakness

    views_store = tmp_path / "artifacts"
    shutil.copytree(store, views_store)
    w = views_store / "weakness" / "1"
    cal = {
        "method": "platt",
        "a": 1.2,
        "b": -0.1,
        "views": {
            "averages": {"method": "platt", "a": 0.6, "b": 0.4},
            "recent_scores": {"method": "isotonic", "x": [0.1, 0.4, 0.8], "y": [0.05, 0.5, 0.9]},
        },
    }
    (w / "calibration.json").write_text(json.dumps(cal))
    write_manifest(w, name="weakness", version=1, feature_names=tiny_spec()["names"])
    settings = ServingSettings(artifact_root=views_store)
    manifest = export_backend(_cfg(tmp_path / "out", data, max_prompts=1), settings)
    assert manifest["weakness"]["calibration_views"] == ["averages", "recent_scores"]
    assert set(manifest["weakness"]["parity"]["max_abs_diff"]) == {
        "default",
        "averages",
        "recent_scores",
    }
    backend = load_backend(tmp_path / "out")
    app_model = load_weakness("1", settings)
    rows, _ = training_rows(tiny_spec(), n=30, seed=11)
    views = ["averages", "recent_scores", "full", "averages", "unknown"] * 6
    want = np.clip(app_model.predict_features(rows, views), 0, 1)
    got = backend.weakness.predict_features(rows, views)
    np.testing.assert_allclose(got, want, atol=1e-12, rtol=0)
    for body in REQUESTS:
        req = WeaknessPredictionInput.model_validate({"user_id": "u1", "now": NOW, **body})
        a = predict_user_weakness(req, backend=backend).predicted_weaknesses
        b = app_model.predict(req).predicted_weaknesses
        assert [(t.topic_id, round(t.weakness_probability, 12)) for t in a] == [
            (t.topic_id, round(t.weakness_probability, 12)) for t in b
        ]


def test_fused_graph_failing_the_gate_falls_back_to_the_exact_step(
    store: Path, data: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import export.backend as eb
    from export.generation_graph import GenerationParityError

    real = eb.check_generation_parity
    calls: list[str] = []

    def gate(session, reference, ids, **kw):  # type: ignore[no-untyped-def]
        step = session.get_modelmeta().custom_metadata_map["step"]
        calls.append(step)
        if step == "lean+mha":
            raise GenerationParityError("one-file generator differs (simulated)")
        return real(session, reference, ids, **kw)

    monkeypatch.setattr(eb, "check_generation_parity", gate)
    manifest = export_backend(
        _cfg(tmp_path / "out", data, max_prompts=2, fused_attention=True),
        ServingSettings(artifact_root=store),
    )
    assert calls == ["lean+mha", "lean"]
    parity = manifest["generator"]["parity"]
    assert parity["step"] == "lean" and parity["n_equal"] == 2
    assert "simulated" in parity["rejected"][0]
    monkeypatch.setattr(
        eb,
        "check_generation_parity",
        lambda *a, **k: (_ for _ in ()).throw(GenerationParityError("always differs")),
    )
    with pytest.raises(BackendExportError, match="exact lean step: always differs"):
        export_backend(
            _cfg(tmp_path / "out2", data, max_prompts=2), ServingSettings(artifact_root=store)
        )
    assert not (tmp_path / "out2").exists()  # nothing published when the gate fails
