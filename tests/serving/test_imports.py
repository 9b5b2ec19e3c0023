"""Serving stays light: a subprocess starts `ludora-ml serve` (the CLI), loads both models,
answers both endpoints, and none of the heavy training libraries is ever imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from serving import limits
from tests.fixtures.http_probe import PROBE_HELPERS
from tests.fixtures.imports import loaded_modules
from tests.fixtures.store import NOW, artifact_store, set_alias
from tests.serving._server import free_port

FORBIDDEN = (
    "torch",
    "transformers",
    "lightgbm",
    "sklearn",
    "pandas",
    "mlflow",
    "optimum",
    "datasets",
    "numba",
)
REPO = Path(__file__).resolve().parents[2]

PROBE = (
    PROBE_HELPERS
    + r"""
import os, signal, sys, threading
port, store, out = sys.argv[1], sys.argv[2], sys.argv[3]
forbidden = sys.argv[4].split(",")
base = f"http://127.0.0.1:{port}"

def probe():
    result = {"ready": False}
    try:
        result["ready"] = wait_ready(base)
        weak = {"user_id": "u", "recent_quiz_scores": {"fractions": [0.2, 0.4]},
                "now": int(sys.argv[5])}
        result["weakness"] = post(base, "/api/v1/ai/predict-weakness", weak)
        word = {"topic": "fractions", "keywords": ["apples"], "max_length": int(sys.argv[6]),
                "seed": 1}
        result["word"] = post(base, "/api/v1/ai/word-problem", word)
        result["forbidden"] = sorted(m for m in forbidden if m in sys.modules)
    finally:
        with open(out, "w") as fh:
            json.dump(result, fh)
        os.kill(os.getpid(), signal.SIGINT)

threading.Thread(target=probe, daemon=True).start()
from pipelines.cli import app
app(["serve", "--port", port, "--weakness", "1", "--generator", "champion",
     "--artifact-root", store])
"""
)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = artifact_store(tmp_path_factory.mktemp("imports"))
    set_alias(root, "generator", "champion", 1)
    return root


def test_cli_serves_both_models_without_heavy_imports(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "probe.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            PROBE,
            str(free_port()),
            str(store),
            str(out),
            ",".join(FORBIDDEN),
            str(NOW),
            str(limits.MIN_COMPLETE_LENGTH),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.is_file(), proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["ready"], proc.stderr[-2000:]
    status, body = result["weakness"]
    assert status == 200 and body["predicted_weaknesses"][0]["topic_id"] == "fractions"
    status, body = result["word"]
    assert status == 200 and body["model_version"] == "1"
    assert result["forbidden"] == [], f"serving imported {result['forbidden']}"


def test_serving_modules_import_only_light_packages() -> None:
    served = ("app", "weakness", "generator", "store", "schemas", "limits", "settings", "realize")
    modules = [
        *(f"serving.{m}" for m in (*served, "grammar", "topics")),
        "core.online",
        "core.spec",
    ]
    assert loaded_modules(modules, FORBIDDEN) == []
