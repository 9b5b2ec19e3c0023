"""The MLflow UI in a real headless Chromium: runs page, datasets, logged model.

Skipped where Chromium is not installed (``apt-get install chromium``). MLflow 3.17's UI picks
GenAI or Model training per browser (a toggle kept in local storage, default GenAI); a link with
``?workflowType=machine_learning`` opens the Model training view, which these checks use.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.fixtures.store import fresh_tracking_uri
from tests.fixtures.weakness import write_two_feature_splits
from tests.pipelines._mlflow_server import mlflow_server

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=20000",
]


def _browser(*args: str) -> str:
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=180,
            check=True,
        )
    return done.stdout


def _text(dom: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed")
def test_ui_shows_runs_datasets_and_logged_model(tmp_path: Path, monkeypatch) -> None:
    import mlflow

    from pipelines import tracking
    from pipelines.common import setup_mlflow

    uri = fresh_tracking_uri(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    features = tmp_path / "outputs" / "features"
    booster = write_two_feature_splits(features)
    setup_mlflow("weakness", root=tmp_path)
    with mlflow.start_run(run_name="train_weakness") as run:
        mlflow.log_metrics({"auc": 0.97})
        tracking.log_weakness_training(features, booster, ["a", "b"], root=tmp_path)
    exp_id = run.info.experiment_id
    with mlflow_server(uri, tmp_path) as url:
        runs = _text(
            _browser("--dump-dom", f"{url}/#/experiments/{exp_id}?workflowType=machine_learning")
        )
        page = f"{url}/#/experiments/{exp_id}/runs/{run.info.run_id}?workflowType=machine_learning"
        detail = _text(_browser("--window-size=1440,2000", "--dump-dom", page))
        shot = tmp_path / "run.png"
        _browser("--window-size=1440,2000", f"--screenshot={shot}", page)
    assert "Runs" in runs and "train_weakness" in runs and "features/train" in runs
    assert "Logged models (1)" in detail and "weakness-booster" in detail
    assert "features/train (" in detail and "training" in detail  # name (digest), context
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
