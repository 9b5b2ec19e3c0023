"""Fixtures shared by the stage tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def declare_stage_paths(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """``declare_stage_paths("package", metrics_file=tmp / "m.json", ...)``: the stage's
    ``main()`` (and whatever else reads ``pipelines.paths.stage_args``) gets these paths in place
    of the checkout's, so a test runs a whole stage without touching the repository's files.
    """
    from pipelines import paths

    declared = paths.stage_args
    overrides: dict[str, dict[str, Path]] = {}

    def stage_args(stage: str) -> dict[str, Path]:
        return {**declared(stage), **overrides.get(stage, {})}  # a fresh dict: callers pop

    def declare(stage: str, **files: Any) -> None:
        unknown = set(files) - set(declared(stage))
        if unknown:
            raise KeyError(f"{stage}: no declared argument {sorted(unknown)}")
        overrides[stage] = {name: Path(path) for name, path in files.items()}

    monkeypatch.setattr(paths, "stage_args", stage_args)
    return declare
