"""pytest fixtures of the training tests (the builders themselves live in tests.fixtures)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def mlflow_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A throwaway tracking store whose `weakness` experiment keeps artifacts under tmp_path."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.create_experiment("weakness", artifact_location=(tmp_path / "mlart").as_uri())
    return uri
