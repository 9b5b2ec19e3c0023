"""The engine seam: which engine params.yaml picks, and the generic steps on both engines
(the stage-specific steps are compared engine against engine in each stage's tests)."""

from __future__ import annotations

import pytest

from data.params import ConfigError
from features.engine import DaskConfig
from pipelines.dask_engine import DaskEngine
from pipelines.engines import LocalEngine, stage_engine
from tests.fixtures.cluster import shared_client


def _square_minus(x: int) -> int:
    return x * x - 1


def test_params_pick_the_engine() -> None:
    assert isinstance(stage_engine({}), LocalEngine)
    dask = stage_engine({"engine": "dask", "dask": {"n_workers": 3}})
    assert isinstance(dask, DaskEngine)
    assert dask.name == "dask" and dask.cfg.n_workers == 3
    with pytest.raises(ConfigError, match="engine"):
        stage_engine({"engine": "spark"})


def test_local_final_fit_is_the_default_fit() -> None:
    with LocalEngine().final_fit() as train_fn:
        assert train_fn is None


def test_map_keeps_the_items_order_on_both_engines() -> None:
    items = list(range(7))
    want = [_square_minus(x) for x in items]
    assert LocalEngine().map(_square_minus, items, desc="t") == want
    engine = DaskEngine(DaskConfig(scheduler_address=shared_client().scheduler.address))
    assert engine.map(_square_minus, items, desc="t") == want
    with engine.final_fit() as train_fn:
        assert callable(train_fn)
