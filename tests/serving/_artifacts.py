"""Tiny, real artifacts for the serving tests and benchmarks (built in seconds, offline).

Weakness: a LightGBM booster trained on features computed by the shared online feature code from
synthetic histories, converted with the export stage's converter. Generator: a randomly
initialised 1-layer T5 with a word-level tokenizer, exported with the export stage's optimum call.
Both get a ``manifest.json`` written with :mod:`serving.manifest`'s own helpers.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from serving.manifest import SCHEMA_VERSION, content_hash, describe_onnx_io, file_entry

NOW = 1_767_225_600  # 2026-01-01T00:00:00Z
DAY = 86_400
TOPICS = ("fractions", "addition", "division")


def write_manifest(
    artifact_dir: Path, *, name: str, version: int, variant: str = "fp32", **extra: Any
) -> dict[str, Any]:
    """manifest.json listing every file of ``artifact_dir`` (sha256, size, ONNX io names)."""
    files = {
        p.name: file_entry(p)
        for p in sorted(artifact_dir.iterdir())
        if p.is_file() and p.name != "manifest.json"
    }
    onnx = {n: describe_onnx_io(artifact_dir / n) for n in files if n.endswith(".onnx")}
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "name": name,
        "version": version,
        "created_at": "2026-01-01T00:00:00Z",
        "variant": variant,
        "content_sha256": content_hash(files),
        "files": files,
        "onnx": onnx,
        "gates": [
            {
                "name": "auc_floor",
                "metric": "auc",
                "kind": "floor",
                "threshold": 0.5,
                "value": 0.7,
                "passed": True,
            }
        ],
        "gates_passed": True,
        **extra,
    }
    (artifact_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def tiny_spec() -> dict[str, Any]:
    from features.spec import build_spec

    return build_spec(
        pass_mark=0.6,
        rolling_windows=[3, 10],
        half_life_s=7 * DAY,
        assessment_activities=["quiz"],
        peer={"prior_mean": 0.7, "prior_weight": 20.0, "topics": {"fractions": [30.0, 50.0]}},
    )


def synthetic_history(
    rng: np.random.Generator, mastery: float, n_events: int, topic: str = "fractions"
) -> dict[str, list[Any]]:
    """One learner's quiz events in ``topic`` with scores around ``mastery``, before NOW."""
    ts = sorted(int(NOW - rng.integers(1, 30 * DAY)) for _ in range(n_events))
    scores = np.clip(rng.normal(mastery, 0.15, n_events), 0, 1).round(2)
    return {
        "topic_id": [topic] * n_events,
        "timestamp": ts,
        "score": scores.tolist(),
        "time_spent_s": rng.uniform(30, 300, n_events).tolist(),
        "hints_used": rng.integers(0, 3, n_events).tolist(),
        "is_revisit": (rng.random(n_events) < 0.2).tolist(),
    }


def training_rows(
    spec: dict[str, Any], n: int = 300, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Feature rows (shared online code) and fail labels: low-mastery learners fail more."""
    from features.online import request_features

    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for _ in range(n):
        mastery = float(rng.uniform(0.1, 0.95))
        hist = synthetic_history(rng, mastery, int(rng.integers(0, 12)))
        xs.append(request_features(spec, hist, ["fractions"], NOW)[0])
        ys.append(int(rng.random() > mastery))
    return np.asarray(xs, dtype=np.float32), np.asarray(ys)


def make_weakness_artifact(root: Path, version: int = 1) -> Path:
    """``root/weakness/<version>/`` with model.onnx, spec, calibration, thresholds, manifest."""
    import lightgbm as lgb
    import onnx

    from export.weakness_onnx import convert_booster

    spec = tiny_spec()
    x, y = training_rows(spec)
    ds = lgb.Dataset(x, label=y, feature_name=list(spec["names"]), free_raw_data=False)
    params = {
        "objective": "binary",
        "num_leaves": 7,
        "min_data_in_leaf": 10,
        "verbose": -1,
        "seed": 1,
        "deterministic": True,
        "num_threads": 1,
    }
    booster = lgb.train(params, ds, num_boost_round=20)
    out = root / "weakness" / str(version)
    out.mkdir(parents=True)
    onnx.save(convert_booster(booster, spec, target_opset=15), str(out / "model.onnx"))
    booster.save_model(str(root / "weakness" / f"booster_v{version}.txt"))
    (out / "feature_spec.json").write_text(json.dumps(spec))
    (out / "calibration.json").write_text(json.dumps({"method": "platt", "a": 1.0, "b": 0.0}))
    (out / "thresholds.json").write_text(
        json.dumps(
            {"thresholds": [0.3, 0.5, 0.7], "labels": ["none", "review", "practice", "intervene"]}
        )
    )
    write_manifest(out, name="weakness", version=version, feature_names=spec["names"])
    return out


_WORDS = [
    "generate",
    "word",
    "problem",
    "about",
    "using",
    "keywords",
    "fractions",
    "addition",
    "apples",
    "baskets",
    "coins",
    "Tom",
    "has",
    "gives",
    "Anna",
    "how",
    "many",
    "are",
    "left",
    "?",
    ".",
    "+",
    "-",
    "*",
    "/",
    "(",
    ")",
    "|||",
    "0",
    "1",
    "2",
    "3",
    "4",
    "5",
    "6",
    "7",
    "8",
    "9",
]


def make_generator_artifact(root: Path, version: int = 1) -> Path:
    """``root/generator/<version>/``: a random 1-layer T5 exported to ONNX, + tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GenerationConfig, T5Config, T5ForConditionalGeneration

    from export.generator_onnx import export_onnx

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for w in _WORDS:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    ckpt = root / "_generator_ckpt"
    ckpt.mkdir(parents=True, exist_ok=True)
    tok.save(str(ckpt / "tokenizer.json"))
    import torch

    torch.manual_seed(0)
    cfg = T5Config(
        vocab_size=len(vocab),
        d_model=16,
        d_ff=32,
        num_layers=1,
        num_decoder_layers=1,
        num_heads=2,
        d_kv=8,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
    )
    model = T5ForConditionalGeneration(cfg).eval()
    model.save_pretrained(ckpt)
    GenerationConfig(
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, max_new_tokens=32
    ).save_pretrained(ckpt)
    out = root / "generator" / str(version)
    tmp = root / "_generator_export"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch tracer chatter about a tiny random model
        export_onnx(model, ckpt, tmp, opset=17)
    out.mkdir(parents=True)
    for name in (
        "encoder_model.onnx",
        "decoder_model.onnx",
        "decoder_with_past_model.onnx",
        "tokenizer.json",
        "generation_config.json",
    ):
        shutil.copy2(tmp / name, out / name)
    shutil.rmtree(tmp)
    write_manifest(out, name="generator", version=version)
    return out


def set_alias(root: Path, model: str, alias: str, version: int) -> None:
    """Point ``alias`` of ``model`` at ``version`` in ``aliases.json`` (as promotion does)."""
    path = root / model / "aliases.json"
    data = json.loads(path.read_text()) if path.is_file() else {"champion": None, "history": []}
    data[alias] = version
    path.write_text(json.dumps(data))
