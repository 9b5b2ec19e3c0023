"""The engine seam: which engine params.yaml picks, and the generic steps on both engines
(the stage-specific steps are compared engine against engine in each stage's tests)."""

from __future__ import annotations

import pytest

from data.params import ConfigError
from features.engine import DaskConfig
from pipelines.dask_fit import final_fit_dask
from pipelines.engines import DaskEngine, LocalEngine, engine_stage, stage_engine
from tests.fixtures.cluster import shared_client


def _no_local_fit() -> None:
    raise AssertionError("the Dask engine took the local step")


def _square_minus(x: int) -> int:
    return x * x - 1


def test_params_pick_the_engine() -> None:
    assert isinstance(stage_engine({}), LocalEngine)
    dask = stage_engine({"engine": "dask", "dask": {"n_workers": 3}})
    assert isinstance(dask, DaskEngine)
    assert dask.name == "dask" and dask.cfg.n_workers == 3
    with pytest.raises(ConfigError, match="engine"):
        stage_engine({"engine": "spark"})


def test_engine_stage_is_the_section_config_and_the_named_engine() -> None:
    from pipelines.common import load_params, stage_config
    from training.scoring import ScoreConfig

    cfg, engine = engine_stage(ScoreConfig, "score")
    assert cfg == stage_config(ScoreConfig, "score")
    assert engine.name == load_params().get("engine", "local")
    with pytest.raises(ConfigError, match="'no_such_stage'"):
        engine_stage(ScoreConfig, "no_such_stage")


def test_run_takes_the_step_of_its_engine() -> None:
    def local(x: int) -> str:
        return f"local {x}"

    def dask(engine: DaskEngine, x: int) -> str:
        return f"{engine.name} {x} on {engine.cfg.n_workers}"

    assert LocalEngine().run(local, dask, 3) == "local 3"
    assert DaskEngine(DaskConfig(n_workers=2)).run(local, dask, 3) == "dask 3 on 2"


def test_local_final_fit_is_the_default_fit() -> None:
    from pipelines.train_weakness import _local_fit

    with LocalEngine().run(_local_fit, final_fit_dask) as train_fn:
        assert train_fn is None


def test_map_keeps_the_items_order_on_both_engines() -> None:
    items = list(range(7))
    want = [_square_minus(x) for x in items]
    assert LocalEngine().map(_square_minus, items, desc="t") == want
    engine = DaskEngine(DaskConfig(scheduler_address=shared_client().scheduler.address))
    assert engine.map(_square_minus, items, desc="t") == want
    with engine.run(_no_local_fit, final_fit_dask) as train_fn:
        assert callable(train_fn)
