"""pytest fixtures of the data tests (the builders themselves live in tests.fixtures)."""

from __future__ import annotations

import pytest

from data.simulator import SimulatorConfig
from tests.fixtures.events import sim_config


@pytest.fixture
def tiny_cfg() -> SimulatorConfig:
    """A simulator config that yields a few thousand events in well under a second."""
    return sim_config()
