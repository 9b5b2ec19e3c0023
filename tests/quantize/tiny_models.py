"""Tiny stand-ins for the exported models (d_model 32 T5, a 20-tree LightGBM), built offline.

Shared by the quantize, package and promotion tests; each builder takes a few seconds.
"""

from __future__ import annotations

import functools
import json
import tempfile
from pathlib import Path

import numpy as np

WORDS = (
    "generate",
    "word",
    "problem",
    "about",
    "addition",
    "subtraction",
    "using",
    "keywords",
    "apple",
    "pear",
    "cat",
    "dog",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "has",
    "gets",
    "more",
    "less",
    "how",
    "many",
    "|||",
    "+",
    "-",
    "=",
    ",",
)
SPECIALS = ("<pad>", "</s>", "<unk>")


def tiny_tokenizer_json(path: Path) -> None:
    """A word-level tokenizer: pad 0, eos 1, unk 2, then the words above."""
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers

    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    for w in WORDS:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_special_tokens([AddedToken(s, special=True) for s in SPECIALS])
    tok.save(str(path))


def export_tiny_t5(out_dir: Path, *, seed: int = 0) -> Path:
    """Random tiny T5 exported by optimum (encoder, decoder, decoder-with-past) + tokenizer."""
    import torch
    from optimum.exporters.onnx import onnx_export_from_model
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(seed)
    cfg = T5Config(
        vocab_size=64,
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
        initializer_factor=4.0,  # larger random weights: varied, non-constant greedy outputs
    )
    model = T5ForConditionalGeneration(cfg).eval()
    onnx_export_from_model(
        model, str(out_dir), task="text2text-generation-with-past", do_validation=False
    )
    tiny_tokenizer_json(out_dir / "tokenizer.json")
    gen = json.loads((out_dir / "generation_config.json").read_text())
    gen["max_new_tokens"] = 8
    (out_dir / "generation_config.json").write_text(json.dumps(gen))
    return out_dir


def tiny_records(n: int, seed: int = 0) -> list[dict[str, object]]:
    """Text records shaped like `outputs/text/*.jsonl`."""
    rng = np.random.default_rng(seed)
    nouns = ["apple", "pear", "cat", "dog"]
    nums = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
    out = []
    for _ in range(n):
        kw = [str(k) for k in rng.choice(nouns, 2, replace=False)]
        a, b = (str(x) for x in rng.choice(nums, 2))
        topic = str(rng.choice(["addition", "subtraction"]))
        problem = f"{kw[0]} has {a} {kw[1]} gets {b} how many"
        out.append(
            {
                "topic": topic,
                "keywords": kw,
                "prompt_prefix": a,
                "prompt": (
                    f"generate word problem about {topic} using keywords {kw[0]} , {kw[1]} {a}"
                ),
                "problem": problem,
                "target": f"{problem} ||| {a} + {b}",
            }
        )
    return out


def overlap_metric(outputs: list[str], records: list[dict[str, object]]) -> dict[str, float]:
    """Stand-in for generation_metrics: token overlap with the target, keyword hits."""
    rouge, cover = [], []
    for out, rec in zip(outputs, records, strict=True):
        o, t = set(out.split()), set(str(rec["target"]).split())
        rouge.append(len(o & t) / max(len(o | t), 1))
        kws = list(rec["keywords"])  # type: ignore[call-overload]
        cover.append(sum(k in o for k in kws) / len(kws))
    return {
        "rouge_l": float(np.mean(rouge)),
        "keyword_coverage": float(np.mean(cover)),
        "answer_consistency": 1.0,
    }


def tiny_lightgbm_onnx(path: Path, *, n_features: int = 4, seed: int = 0, noise: float = 0.0):
    """A small LightGBM classifier converted with onnxmltools; returns (X_test, y_test)."""
    import lightgbm as lgb
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(600, n_features)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.5, size=600) > 0).astype(np.int64)
    y_fit = y.copy()
    if noise:
        flip = rng.random(400) < noise
        y_fit[:400][flip] = 1 - y_fit[:400][flip]
    clf = lgb.LGBMClassifier(n_estimators=20, num_leaves=7, verbose=-1, random_state=seed, n_jobs=1)
    clf.fit(x[:400], y_fit[:400])
    onx = onnxmltools.convert_lightgbm(
        clf,
        initial_types=[("features", FloatTensorType([None, n_features]))],
        zipmap=False,
        target_opset=15,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(onx.SerializeToString())
    return x[400:], y[400:]


def make_weakness_export(out_dir: Path, *, seed: int = 0, noise: float = 0.0, auc=None):
    """An `outputs/onnx/weakness/`-shaped dir (model, spec, calibration, thresholds, draft).

    Returns the held-out test table (features f0..f3 + label) as a pandas DataFrame. Built once
    per (seed, noise) and process, then copied: training is the slow part.
    """
    import shutil

    cached, df = _cached_weakness_export(seed, noise)
    shutil.copytree(cached, out_dir, dirs_exist_ok=True)
    if auc is not None:
        draft = json.loads((out_dir / "manifest.draft.json").read_text())
        draft["metrics"]["onnx_test"]["auc"] = auc
        (out_dir / "manifest.draft.json").write_text(json.dumps(draft))
    return df.copy()


@functools.lru_cache(maxsize=8)
def _cached_weakness_export(seed: int, noise: float):
    out_dir = Path(tempfile.mkdtemp(prefix="tiny-weakness-"))
    auc = None
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    names = ["f0", "f1", "f2", "f3"]
    x, y = tiny_lightgbm_onnx(out_dir / "model.onnx", seed=seed, noise=noise)
    import onnxruntime as ort

    sess = ort.InferenceSession(str(out_dir / "model.onnx"))
    p = sess.run(["probabilities"], {"features": x})[0][:, 1]
    spec = {"version": 1, "input_name": "features", "names": names, "dtypes": ["float32"] * 4}
    (out_dir / "feature_spec.json").write_text(json.dumps(spec))
    (out_dir / "calibration.json").write_text(json.dumps({"method": "identity"}))
    (out_dir / "thresholds.json").write_text(
        json.dumps({"thresholds": [0.3, 0.6], "labels": ["low", "medium", "high"]})
    )
    draft = {
        "model": "weakness",
        "variant": "fp32",
        "onnx": {"probability_output": "probabilities", "probability_column": 1},
        "metrics": {"onnx_test": {"auc": float(roc_auc_score(y, p)) if auc is None else auc}},
        "gates": [
            {
                "name": "onnx_vs_native_max_abs_diff_raw",
                "threshold": 1e-5,
                "value": 0.0,
                "pass": True,
            }
        ],
        "mlflow_run_id": "run-tiny",
        "git_commit": "abc",
        "params_hash": "def",
    }
    (out_dir / "manifest.draft.json").write_text(json.dumps(draft))
    df = pd.DataFrame(x, columns=names)
    df["label"] = y.astype(np.int8)
    return out_dir, df


@functools.lru_cache(maxsize=1)
def _template_mlflow_db() -> Path:
    """An initialized (migrated) empty MLflow SQLite store; migrations take seconds."""
    from mlflow import MlflowClient

    path = Path(tempfile.mkdtemp(prefix="tiny-mlflow-")) / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


def fresh_tracking_uri(tmp_path: Path) -> str:
    """A private, empty MLflow store under ``tmp_path`` (a copy of the migrated template)."""
    import shutil

    target = tmp_path / "mlflow.db"
    shutil.copy(_template_mlflow_db(), target)
    return f"sqlite:///{target}"
