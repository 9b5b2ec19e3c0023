"""Shared tiny fixtures for the data tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from data.simulator import SimulatorConfig

SHARED_KT = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "data"
    / "learner_events"
    / "assistments09"
    / "preprocessed_data_train.csv"
)

TINY_SIM = {
    "seed": 3,
    "n_learners": 80,
    "n_topics": 5,
    "days": 40,
    "sessions_per_week": 3.0,
    "activities_per_session": 5,
    "quiz_share": 0.5,
    "start": "2026-01-05T00:00:00Z",
}


@pytest.fixture
def tiny_cfg() -> SimulatorConfig:
    """A simulator config that yields a few thousand events in well under a second."""
    return SimulatorConfig(**TINY_SIM)
