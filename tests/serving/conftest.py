"""pytest fixtures shared by the serving tests (builders live in tests.fixtures)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.store import artifact_store


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared two-model store (weakness v1, generator v1). Tests that change a store
    override this fixture with a copy (``tests.fixtures.store.champion_store``)."""
    return artifact_store(tmp_path_factory.mktemp("store"))
